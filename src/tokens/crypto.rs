//! Encryption at rest (AES-256-GCM, RustCrypto `aes-gcm`) and the keyed hash of
//! session ids and Okta subjects (HMAC-SHA-256, RustCrypto `hmac` + `sha2`).
//!
//! # Envelope
//!
//! A sealed value is text, because `iam_token_data.idp_response` is a `LONGTEXT` in a
//! `utf8` table and binary would not survive it:
//!
//! ```text
//! efs1:<key id>:<base64url(nonce(12) || ciphertext || tag(16))>
//! ```
//!
//! The key id travels with every value so that any key of the ring can open it; the
//! first key of the ring seals. The additional authenticated data binds the ciphertext
//! to the format version, the key id and the record's storage key (the hashed session
//! id): a value copied under another session's row does not open. Anything that does
//! not start with `efs1:` is a legacy plaintext row (EFS wrote JSON there).
//!
//! Nonces are 96 random bits from the OS per seal. With random nonces NIST's bound is
//! 2^32 seals per key, far more than one key sees between rotations here.
//!
//! # Keyed hashes
//!
//! The stored session id is `0x01 || HMAC-SHA-256(hash key, "session-id\0" || id)`:
//! 33 bytes, fitting `VARBINARY(50)`. The leading `0x01` is not a visible ASCII
//! character, and raw session ids (legacy rows, and everything the API accepts) are
//! visible ASCII only, so a hashed id can never equal a raw one. The Okta subject of
//! a session (for "log out everywhere") is stored as `HMAC(hash key, "subject\0" || sub)`.
//!
//! The hash key is a separate secret (`EFS_IAM_SESSION_HASH_KEY`), not derived from the
//! encryption keys: encryption keys rotate, and a hash key that rotated with them
//! would orphan every stored session at each rotation.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::SessionId;

/// Marks a sealed value (format version 1).
pub const ENVELOPE_PREFIX: &str = "efs1:";
/// First byte of a hashed session id (hash scheme 1).
pub const HASHED_ID_MARKER: u8 = 0x01;
/// Length of a hashed session id.
pub const HASHED_ID_LEN: usize = 33;
const NONCE_LEN: usize = 12;
const AAD_LABEL: &[u8] = b"efs-iam token v1\0";
const MAX_KEY_ID_LEN: usize = 32;

/// One AES-256 key with its id.
#[derive(Clone)]
struct RingKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The configured encryption keys: the first seals, every one opens.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<RingKey>,
    ephemeral: bool,
}

/// Never prints key material: only the ids.
impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids())
            .field("ephemeral", &self.ephemeral)
            .finish()
    }
}

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The value was sealed with a key that is not in the ring.
    #[error("sealed with key `{0}`, which is not configured in EFS_IAM_TOKEN_KEYS")]
    UnknownKey(String),
    /// Tampered, truncated, bound to another record, or not an envelope at all.
    #[error("failed its integrity check")]
    Corrupt,
}

fn decode_key_bytes(b64: &str) -> Option<[u8; 32]> {
    let b64 = b64.trim();
    let bytes = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(b64).ok())?;
    bytes.try_into().ok()
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl KeyRing {
    /// Parses `id:base64-of-32-bytes[,id:base64…]`. Error messages name the entry by
    /// position and never echo key material.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut keys: Vec<RingKey> = Vec::new();
        for (i, entry) in raw.split(',').enumerate() {
            let n = i + 1;
            let entry = entry.trim();
            if entry.is_empty() {
                return Err(format!("entry {n} is empty"));
            }
            let (id, b64) = entry
                .split_once(':')
                .ok_or_else(|| format!("entry {n} is not of the form id:base64-key"))?;
            let id = id.trim();
            if !valid_key_id(id) {
                return Err(format!(
                    "entry {n}: the key id must be 1 to {MAX_KEY_ID_LEN} ASCII letters, digits or _ - ."
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("entry {n}: key id `{id}` appears twice"));
            }
            let bytes = decode_key_bytes(b64).ok_or_else(|| {
                format!("entry {n} (`{id}`): the key must be base64 of exactly 32 bytes")
            })?;
            keys.push(RingKey {
                id: id.to_owned(),
                cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(bytes)),
            });
        }
        Ok(Self {
            keys,
            ephemeral: false,
        })
    }

    /// A random key that lives as long as the process: development without
    /// configured keys. Values sealed with it are unreadable after a restart.
    pub fn ephemeral() -> Self {
        Self {
            keys: vec![RingKey {
                id: "ephemeral".into(),
                cipher: Aes256Gcm::new(&Aes256Gcm::generate_key(&mut OsRng)),
            }],
            ephemeral: true,
        }
    }

    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    fn aad(key_id: &str, bound_to: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_LABEL.len() + key_id.len() + 1 + bound_to.len());
        aad.extend_from_slice(AAD_LABEL);
        aad.extend_from_slice(key_id.as_bytes());
        aad.push(0);
        aad.extend_from_slice(bound_to);
        aad
    }

    /// Seals `plaintext` with the current key, bound to `bound_to` (the record's key).
    pub fn seal(&self, plaintext: &[u8], bound_to: &[u8]) -> String {
        let key = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = Self::aad(&key.id, bound_to);
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut body = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        body.extend_from_slice(&nonce);
        body.extend_from_slice(&ciphertext);
        format!(
            "{ENVELOPE_PREFIX}{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(body)
        )
    }

    /// Whether `value` is an envelope at all (as opposed to a legacy plaintext row).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(ENVELOPE_PREFIX)
    }

    /// The key id an envelope names, if it is one.
    pub fn key_id_of(value: &str) -> Option<&str> {
        value
            .strip_prefix(ENVELOPE_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .map(|(id, _)| id)
    }

    /// Opens an envelope sealed for `bound_to` with any key of the ring.
    pub fn open(&self, value: &str, bound_to: &[u8]) -> Result<Vec<u8>, OpenError> {
        let rest = value
            .strip_prefix(ENVELOPE_PREFIX)
            .ok_or(OpenError::Corrupt)?;
        let (id, body) = rest.split_once(':').ok_or(OpenError::Corrupt)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let body = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| OpenError::Corrupt)?;
        if body.len() < NONCE_LEN + 16 {
            return Err(OpenError::Corrupt);
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Corrupt)?;
        let aad = Self::aad(id, bound_to);
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Corrupt)
    }
}

/// The secret behind the keyed hashes of session ids and Okta subjects.
#[derive(Clone)]
pub struct SessionHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for SessionHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionHasher(<redacted>)")
    }
}

impl SessionHasher {
    /// Parses base64 of exactly 32 bytes; the error never echoes the value.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bytes =
            decode_key_bytes(raw).ok_or_else(|| "must be base64 of exactly 32 bytes".to_owned())?;
        Ok(Self::from_bytes(&bytes))
    }

    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self {
            mac: <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"),
        }
    }

    /// A random hash key for the life of the process (development without keys).
    pub fn ephemeral() -> Self {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        let bytes: [u8; 32] = key.into();
        Self::from_bytes(&bytes)
    }

    fn mac(&self, label: &[u8], value: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }

    /// What `iam_token_data.session_id` holds for this session: 33 bytes.
    pub fn session_key(&self, session: &SessionId) -> Vec<u8> {
        self.hash_raw_session(session.as_bytes())
    }

    /// The hashed form of a raw session id as found in a legacy row.
    pub fn hash_raw_session(&self, raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HASHED_ID_LEN);
        out.push(HASHED_ID_MARKER);
        out.extend_from_slice(&self.mac(b"session-id\0", raw));
        out
    }

    /// The stored form of an Okta user id (the id_token's `sub`).
    pub fn subject_key(&self, sub: &str) -> Vec<u8> {
        self.mac(b"subject\0", sub.as_bytes()).to_vec()
    }
}

/// Whether a stored `session_id` is a keyed hash (as opposed to a legacy raw id).
pub fn is_hashed_id(stored: &[u8]) -> bool {
    stored.len() == HASHED_ID_LEN && stored[0] == HASHED_ID_MARKER
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn seals_and_opens_with_any_ring_key() {
        let old = KeyRing::parse(&format!("k1:{K1}")).unwrap();
        let sealed = old.seal(b"{\"access_token\":\"secret\"}", b"row");
        assert!(sealed.starts_with("efs1:k1:"));
        assert!(!sealed.contains("secret"));
        let rotated = KeyRing::parse(&format!("k2:{K2}, k1:{K1}")).unwrap();
        assert_eq!(
            rotated.open(&sealed, b"row").unwrap(),
            b"{\"access_token\":\"secret\"}"
        );
        assert!(rotated.seal(b"x", b"row").starts_with("efs1:k2:"));
        let only_new = KeyRing::parse(&format!("k2:{K2}")).unwrap();
        assert_eq!(
            only_new.open(&sealed, b"row"),
            Err(OpenError::UnknownKey("k1".into()))
        );
    }

    #[test]
    fn tampering_and_rebinding_are_detected() {
        let ring = KeyRing::parse(&format!("k1:{K1}")).unwrap();
        let sealed = ring.seal(b"payload", b"row-a");
        assert_eq!(ring.open(&sealed, b"row-b"), Err(OpenError::Corrupt));
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 5;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(ring.open(&tampered, b"row-a"), Err(OpenError::Corrupt));
        assert_eq!(ring.open("efs1:k1:", b"row-a"), Err(OpenError::Corrupt));
        assert_eq!(ring.open("{\"a\":1}", b"row-a"), Err(OpenError::Corrupt));
        // Same key bytes under another id: the id is authenticated too.
        let renamed = sealed.replacen("efs1:k1:", "efs1:k9:", 1);
        let ring9 = KeyRing::parse(&format!("k9:{K1}")).unwrap();
        assert_eq!(ring9.open(&renamed, b"row-a"), Err(OpenError::Corrupt));
    }

    #[test]
    fn key_ring_errors_name_the_entry_not_the_key() {
        for bad in [
            "",
            "k1",
            ":AAAA",
            "k1:short",
            "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &format!("k 1:{K1}"),
            &format!("k1:{K1},k1:{K2}"),
            &format!("k1:{K1},"),
        ] {
            let err = KeyRing::parse(bad).unwrap_err();
            assert!(!err.contains(K1) && !err.contains(K2), "{err}");
        }
        assert_eq!(
            KeyRing::parse(&format!("a:{K1},b.c-d_e:{K2}"))
                .unwrap()
                .ids(),
            vec!["a", "b.c-d_e"]
        );
        let debug = format!("{:?}", KeyRing::parse(&format!("k1:{K1}")).unwrap());
        assert!(!debug.contains(K1), "{debug}");
    }

    #[test]
    fn hashed_ids_fit_the_column_and_never_look_raw() {
        let h = SessionHasher::parse(K1).unwrap();
        let s = SessionId::parse("abc123,-def").unwrap();
        let stored = h.session_key(&s);
        assert_eq!(stored.len(), HASHED_ID_LEN);
        assert!(stored.len() <= 50, "fits VARBINARY(50)");
        assert!(is_hashed_id(&stored));
        assert!(!is_hashed_id(s.as_bytes()));
        assert_eq!(stored, h.session_key(&s), "deterministic");
        let other = SessionHasher::parse(K2).unwrap();
        assert_ne!(stored, other.session_key(&s), "keyed");
        assert_ne!(
            h.subject_key("00u1"),
            h.session_key(&SessionId::parse("00u1").unwrap())[1..]
        );
        assert!(SessionHasher::parse("nope").is_err());
        assert!(!format!("{h:?}").contains(K1));
    }
}
