//! The token vault's contract, run on every backend: SQLite always, MariaDB when
//! `TEST_MYSQL_URL` is set, a real memcached when `TEST_MEMCACHED_SERVERS` is set
//! (each required under `EFS_IAM_REQUIRE_MYSQL=1` / `EFS_IAM_REQUIRE_MEMCACHED=1`).
//! Time is a [`ManualClock`]: expiry is tested by moving it, never by sleeping.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    memcached_servers, test_settings, use_keys, use_memcached, TestDb, KEY_1, KEY_2,
};
use efs_iam::config::Settings;
use efs_iam::domain::{OktaUserId, PortalId, SessionId, SettingKey};
use efs_iam::startup::build_vault;
use efs_iam::storage::{PortalSettingsStore, TokenKey, TokenStoreError};
use efs_iam::tokens::crypto::OpenError;
use efs_iam::tokens::{Clock, ManualClock, SessionHasher, Stored, TokenVault, VaultError};
use fake_okta::{FakeOkta, FakeOktaConfig};
use serde_json::{json, Map, Value};

/// One backend under test, with settings that tests may change and rebuild the vault
/// from (key rotation).
struct Env {
    db: TestDb,
    settings: Settings,
    clock: ManualClock,
    memcached: Option<String>,
}

impl Env {
    fn vault(&self) -> TokenVault {
        build_vault(&self.settings, &self.db.store, Arc::new(self.clock.clone())).expect("vault")
    }

    fn with_keys(&mut self, ring: &str) -> TokenVault {
        use_keys(&mut self.settings, ring);
        self.vault()
    }
}

async fn env_on(db: TestDb, memcached: Option<String>) -> Env {
    let mut settings = test_settings(&db.url);
    use_keys(&mut settings, KEY_1);
    settings.tokens.token_default_lifetime = Duration::from_secs(600);
    settings.tokens.token_max_lifetime = Duration::from_secs(7200);
    if let Some(servers) = &memcached {
        use_memcached(&mut settings, servers);
    }
    Env {
        db,
        settings,
        clock: ManualClock::new(),
        memcached,
    }
}

/// The memcached variants of `$name`s (references on SQLite), in module `$module`.
macro_rules! on_memcached {
    ($module:ident; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(servers) = super::memcached_servers() {
                        let db = super::TestDb::sqlite().await;
                        super::$name(super::env_on(db, Some(servers)).await).await;
                    }
                }
            )*
        }
    };
}

/// The token-store contract: every backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        crate::backend_matrix!(
            #[tokio::test] sqlite, mysql, |db| super::env_on(db, None); $($name),*
        );
        on_memcached!(memcached; $($name),*);
    };
}

contract!(
    ready,
    put_get_replace_delete,
    expiry_follows_expires_in,
    refresh_tokens_live_for_the_maximum_lifetime,
    bad_expires_in_is_refused,
    key_rotation,
    tampered_values_are_errors_not_garbage,
    a_dump_reveals_no_token_and_no_session_id,
    logout_everywhere_deletes_every_session_of_the_user,
);

/// What only the SQL backend has (legacy rows and their re-encryption, the purge).
mod sql_only {
    use super::*;

    crate::backend_matrix!(
        #[tokio::test] sqlite, mysql, |db| super::super::env_on(db, None);
        legacy_plaintext_rows_stay_readable_and_are_sealed_when_rewritten,
        reencrypt_rewrites_everything_under_the_newest_key,
        expired_rows_are_purged,
    );
}

// What only memcached has (re-encryption over a key dump).
on_memcached!(
    memcached_only;
    reencrypt_rewrites_every_memcached_entry_keeping_its_ttl,
    reencrypt_keeps_a_memcached_ttl_beyond_thirty_days,
    a_forged_plaintext_entry_is_never_served,
);

/// memcached never held EFS's legacy rows: a plaintext value there was written by
/// someone who is not efs-iam, and is not served, whatever the adoption switch says.
async fn a_forged_plaintext_entry_is_never_served(mut env: Env) {
    env.settings.tokens.token_accept_legacy_plaintext = true;
    let vault = env.vault();
    let s = session("forged-in-memcached");
    write_raw(&vault, &s, r#"{"access_token":"forged"}"#, &env).await;
    assert!(vault.get(&s).await.unwrap().is_none());
    // A sealed one next to it is served.
    let real = session("sealed-in-memcached");
    vault
        .put(&real, obj(json!({"access_token": "real"})), None)
        .await
        .unwrap();
    assert!(vault.get(&real).await.unwrap().is_some());
}

fn session(s: &str) -> SessionId {
    SessionId::parse(s).unwrap()
}

/// How long a put's record lives.
fn lifetime(stored: &Stored) -> chrono::Duration {
    stored.expires_at - stored.stored_at
}

/// The IdP response `vault` serves for session `name`, which must be there.
async fn served(vault: &TokenVault, name: &str) -> Value {
    vault
        .get(&session(name))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} not served"))
        .idp_response
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn hashed(s: &SessionId) -> Vec<u8> {
    SessionHasher::parse(crate::common::HASH_KEY)
        .unwrap()
        .session_key(s)
}

async fn raw_value(_env: &Env, vault: &TokenVault, s: &SessionId) -> String {
    let h = hashed(s);
    vault
        .store()
        .get_token(TokenKey {
            hashed: &h,
            legacy: None,
        })
        .await
        .unwrap()
        .expect("stored")
        .idp_response
        .expect("a value")
}

async fn write_raw(vault: &TokenVault, s: &SessionId, value: &str, env: &Env) {
    let h = hashed(s);
    let now = env.clock.now();
    vault
        .store()
        .put_token(
            TokenKey {
                hashed: &h,
                legacy: None,
            },
            &efs_iam::storage::NewTokenRecord {
                value,
                stored_at: now,
                expires_at: now + chrono::Duration::hours(1),
                subject: None,
            },
        )
        .await
        .unwrap();
}

async fn ready(env: Env) {
    env.vault().check_ready().await.expect("ready");
}

async fn put_get_replace_delete(env: Env) {
    let vault = env.vault();
    let s = session("sess-abc,123");
    assert!(vault.get(&s).await.unwrap().is_none());
    let first = json!({"token_type": "Bearer", "expires_in": 3600, "access_token": "at-1", "x": {"kept": [1, 2]}});
    let stored = vault.put(&s, obj(first.clone()), None).await.unwrap();
    assert_eq!(stored.stored_at, env.clock.now());
    assert_eq!(
        stored.expires_at,
        stored.stored_at + chrono::Duration::seconds(3600)
    );
    let got = vault.get(&s).await.unwrap().unwrap();
    assert_eq!(got.idp_response, first);
    assert_eq!(got.stored_at, Some(stored.stored_at));
    assert_eq!(got.expires_at, Some(stored.expires_at));
    assert!(got.claims.is_none());

    let second = json!({"access_token": "at-2", "expires_in": 60});
    vault.put(&s, obj(second.clone()), None).await.unwrap();
    assert_eq!(vault.get(&s).await.unwrap().unwrap().idp_response, second);

    let other = session(&"o".repeat(50));
    vault
        .put(&other, obj(json!({"access_token": "other"})), None)
        .await
        .unwrap();
    assert!(vault.delete(&s).await.unwrap());
    assert!(!vault.delete(&s).await.unwrap());
    assert!(vault.get(&s).await.unwrap().is_none());
    assert_eq!(
        vault.get(&other).await.unwrap().unwrap().idp_response["access_token"],
        "other"
    );
}

async fn expiry_follows_expires_in(env: Env) {
    let vault = env.vault();
    let s = session("expiring");
    vault
        .put(
            &s,
            obj(json!({"access_token": "a", "expires_in": 60})),
            None,
        )
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(59));
    assert!(vault.get(&s).await.unwrap().is_some(), "alive at 59s");
    env.clock.advance(Duration::from_secs(1));
    assert!(vault.get(&s).await.unwrap().is_none(), "gone at 60s");

    // No expires_in: the default lifetime (600 s here).
    let d = session("default-lifetime");
    vault
        .put(&d, obj(json!({"access_token": "a"})), None)
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(599));
    assert!(vault.get(&d).await.unwrap().is_some());
    env.clock.advance(Duration::from_secs(1));
    assert!(vault.get(&d).await.unwrap().is_none());

    // An expires_in beyond the maximum lifetime (7200 s here) is capped.
    let c = session("capped");
    let stored = vault
        .put(
            &c,
            obj(json!({"access_token": "a", "expires_in": "999999"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(lifetime(&stored), chrono::Duration::seconds(7200));
}

async fn refresh_tokens_live_for_the_maximum_lifetime(env: Env) {
    let vault = env.vault();
    let s = session("with-refresh");
    let stored = vault
        .put(
            &s,
            obj(json!({"access_token": "a", "expires_in": 60, "refresh_token": "r"})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(lifetime(&stored), chrono::Duration::seconds(7200));
    env.clock.advance(Duration::from_secs(3600));
    assert!(
        vault.get(&s).await.unwrap().is_some(),
        "outlives its access token"
    );
    env.clock.advance(Duration::from_secs(3600));
    assert!(vault.get(&s).await.unwrap().is_none());
}

async fn bad_expires_in_is_refused(env: Env) {
    let vault = env.vault();
    let s = session("bad-expiry");
    for bad in [json!(-5), json!(1.5), json!("soon"), json!({"s": 1})] {
        let err = vault
            .put(
                &s,
                obj(json!({"access_token": "a", "expires_in": bad})),
                None,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, VaultError::Invalid { field, .. } if field == "expires_in"),
            "{err:?}"
        );
    }
    assert!(vault.get(&s).await.unwrap().is_none(), "nothing stored");
}

async fn key_rotation(mut env: Env) {
    let old = env.with_keys(KEY_1);
    let s1 = session("before-rotation");
    old.put(&s1, obj(json!({"access_token": "one"})), None)
        .await
        .unwrap();
    assert!(raw_value(&env, &old, &s1).await.starts_with("efs1:k1:"));

    // New key first: the old key still decrypts, the new one encrypts.
    let rotated = env.with_keys(&format!("{KEY_2},{KEY_1}"));
    assert_eq!(
        rotated.get(&s1).await.unwrap().unwrap().idp_response["access_token"],
        "one"
    );
    let s2 = session("after-rotation");
    rotated
        .put(&s2, obj(json!({"access_token": "two"})), None)
        .await
        .unwrap();
    assert!(raw_value(&env, &rotated, &s2).await.starts_with("efs1:k2:"));

    // With the old key removed, its values are an error, not garbage.
    let new_only = env.with_keys(KEY_2);
    assert_eq!(
        new_only.get(&s2).await.unwrap().unwrap().idp_response["access_token"],
        "two"
    );
    let err = new_only.get(&s1).await.unwrap_err();
    assert!(
        matches!(&err, VaultError::Unreadable(OpenError::UnknownKey(k)) if k == "k1"),
        "{err:?}"
    );
}

async fn tampered_values_are_errors_not_garbage(env: Env) {
    let vault = env.vault();
    let a = session("tamper-a");
    let b = session("tamper-b");
    vault
        .put(&a, obj(json!({"access_token": "secret-a"})), None)
        .await
        .unwrap();
    let sealed = raw_value(&env, &vault, &a).await;

    // One flipped character of the ciphertext.
    let mut bytes = sealed.clone().into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
    write_raw(&vault, &a, &String::from_utf8(bytes).unwrap(), &env).await;
    let err = vault.get(&a).await.unwrap_err();
    assert!(
        matches!(err, VaultError::Unreadable(OpenError::Corrupt)),
        "{err:?}"
    );

    // A valid value moved under another session's key.
    write_raw(&vault, &b, &sealed, &env).await;
    let err = vault.get(&b).await.unwrap_err();
    assert!(
        matches!(err, VaultError::Unreadable(OpenError::Corrupt)),
        "{err:?}"
    );

    // Truncated.
    write_raw(&vault, &a, &sealed[..sealed.len() / 2], &env).await;
    assert!(matches!(
        vault.get(&a).await.unwrap_err(),
        VaultError::Unreadable(OpenError::Corrupt)
    ));
}

type DumpRow = (
    Vec<u8>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
);

/// Everything the backend holds, as text, for the dump checks.
async fn dump(env: &Env) -> Vec<String> {
    match &env.memcached {
        Some(servers) => {
            let mut out = Vec::new();
            for server in servers.split(',') {
                for (k, v) in
                    crate::common::memcached_dump(server, &env.settings.tokens.memcached_key_prefix)
                        .await
                {
                    out.push(k);
                    out.push(String::from_utf8_lossy(&v).into_owned());
                }
            }
            out
        }
        None => {
            let sql = "SELECT session_id, idp_response, stored_at, expires_at, subject_hash FROM iam_token_data";
            let rows: Vec<DumpRow> = match env.db.store.db() {
                efs_iam::storage::sql::Db::Sqlite(s) => sqlx::query_as(&sql.replace(
                    "stored_at, expires_at",
                    "CAST(stored_at AS TEXT), CAST(expires_at AS TEXT)",
                ))
                .fetch_all(s)
                .await
                .unwrap(),
                efs_iam::storage::sql::Db::MySql(s) => sqlx::query_as(&sql.replace(
                    "stored_at, expires_at",
                    "CAST(stored_at AS CHAR), CAST(expires_at AS CHAR)",
                ))
                .fetch_all(s)
                .await
                .unwrap(),
            };
            rows.into_iter()
                .flat_map(|(id, v, a, b, sub)| {
                    assert!(
                        efs_iam::tokens::crypto::is_hashed_id(&id),
                        "session ids are stored hashed"
                    );
                    [
                        String::from_utf8_lossy(&id).into_owned(),
                        v.unwrap_or_default(),
                        a.unwrap_or_default(),
                        b.unwrap_or_default(),
                        String::from_utf8_lossy(&sub.unwrap_or_default()).into_owned(),
                    ]
                })
                .collect()
        }
    }
}

async fn a_dump_reveals_no_token_and_no_session_id(mut env: Env) {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    configure_portal(&mut env, 7, &okta).await;
    let vault = env.vault();
    let s = session("dump-session-SECRETID");
    let id_token =
        okta.mint_id_token(json!({"sub": "00uDUMPUSER000000000", "email": "dump@example.com"}));
    vault
        .put(
            &s,
            obj(json!({"access_token": "AT-DUMP-SECRET", "refresh_token": "RT-DUMP-SECRET", "id_token": id_token, "scope": "openid email"})),
            Some(PortalId::new(7).unwrap()),
        )
        .await
        .unwrap();
    let dumped = dump(&env).await;
    assert!(!dumped.is_empty(), "the dump sees the entry");
    let all = dumped.join("\n");
    let signature = id_token.rsplit('.').next().unwrap();
    for secret in [
        "AT-DUMP-SECRET",
        "RT-DUMP-SECRET",
        signature,
        "SECRETID",
        "dump-session",
        "00uDUMPUSER",
        "dump@example.com",
        "openid",
    ] {
        assert!(!all.contains(secret), "the dump shows {secret}");
    }
}

/// Links `portal` to the fake's issuer, and allows that issuer.
async fn configure_portal(env: &mut Env, portal: i32, okta: &FakeOkta) {
    env.settings.tokens.oidc_allowed_issuers = vec![reqwest::Url::parse(&okta.base_url()).unwrap()];
    env.db
        .store
        .put_portal_settings(
            PortalId::new(portal).unwrap(),
            &[
                (
                    SettingKey::parse("okta_issuer").unwrap(),
                    Some(okta.base_url()),
                ),
                (
                    SettingKey::parse("okta_client_id").unwrap(),
                    Some(FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE.into()),
                ),
            ],
        )
        .await
        .unwrap();
}

async fn logout_everywhere_deletes_every_session_of_the_user(mut env: Env) {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    configure_portal(&mut env, 3, &okta).await;
    let vault = env.vault();
    let portal = Some(PortalId::new(3).unwrap());
    let put = |s: &'static str, sub: &'static str| {
        let vault = &vault;
        let okta = &okta;
        async move {
            let id_token =
                okta.mint_id_token(json!({"sub": sub, "email": format!("{sub}@example.com")}));
            vault
                .put(
                    &session(s),
                    obj(json!({"access_token": s, "id_token": id_token})),
                    portal,
                )
                .await
                .unwrap()
        }
    };
    let stored = put("alice-laptop", "00uALICE").await;
    assert_eq!(stored.claims.as_ref().unwrap().sub, "00uALICE");
    put("alice-phone", "00uALICE").await;
    put("bob-laptop", "00uBOB").await;
    // Stored without a portal: not linked to any user.
    vault
        .put(
            &session("anonymous"),
            obj(json!({"access_token": "x"})),
            None,
        )
        .await
        .unwrap();
    let got = vault.get(&session("alice-phone")).await.unwrap().unwrap();
    assert_eq!(
        got.claims.unwrap().email.as_deref(),
        Some("00uALICE@example.com")
    );
    assert_eq!(got.portal_id, Some(3));

    let alice = OktaUserId::parse("00uALICE").unwrap();
    assert_eq!(vault.delete_user_sessions(&alice).await.unwrap(), 2);
    assert!(vault.get(&session("alice-laptop")).await.unwrap().is_none());
    assert!(vault.get(&session("alice-phone")).await.unwrap().is_none());
    assert!(vault.get(&session("bob-laptop")).await.unwrap().is_some());
    assert!(vault.get(&session("anonymous")).await.unwrap().is_some());
    assert_eq!(vault.delete_user_sessions(&alice).await.unwrap(), 0);
}

async fn sql_exec(env: &Env, sql: &str) {
    match env.db.store.db() {
        efs_iam::storage::sql::Db::Sqlite(s) => {
            sqlx::query(sql).execute(s).await.unwrap();
        }
        efs_iam::storage::sql::Db::MySql(s) => {
            sqlx::query(sql).execute(s).await.unwrap();
        }
    }
}

async fn raw_session_ids(env: &Env) -> Vec<Vec<u8>> {
    let sql = "SELECT session_id FROM iam_token_data ORDER BY id";
    match env.db.store.db() {
        efs_iam::storage::sql::Db::Sqlite(s) => sqlx::query_scalar(sql).fetch_all(s).await.unwrap(),
        efs_iam::storage::sql::Db::MySql(s) => sqlx::query_scalar(sql).fetch_all(s).await.unwrap(),
    }
}

/// Rows as EFS wrote them before efs-iam: raw session ids, plaintext values.
const LEGACY: &str = "INSERT INTO iam_token_data (session_id, idp_response) VALUES \
    (X'6c65676163792d6a736f6e', '{\"access_token\":\"legacy-older\"}'), \
    (X'6c65676163792d6a736f6e', '{\"access_token\":\"legacy-newer\"}'), \
    (X'6c65676163792d6e756c6c', NULL), \
    (X'6c65676163792d74657874', 'not json')";

async fn legacy_plaintext_rows_stay_readable_and_are_sealed_when_rewritten(mut env: Env) {
    sql_exec(&env, LEGACY).await;
    // Not in the sealed format: not served unless the adoption switch is on.
    let json_s = session("legacy-json");
    assert!(env.vault().get(&json_s).await.unwrap().is_none());
    env.settings.tokens.token_accept_legacy_plaintext = true;
    let vault = env.vault();
    let got = vault.get(&json_s).await.unwrap().unwrap();
    assert_eq!(got.idp_response, json!({"access_token": "legacy-newer"}));
    assert_eq!((got.stored_at, got.expires_at), (None, None));
    assert_eq!(served(&vault, "legacy-null").await, Value::Null);
    assert_eq!(served(&vault, "legacy-text").await, "not json");

    vault
        .put(&json_s, obj(json!({"access_token": "rewritten"})), None)
        .await
        .unwrap();
    let ids = raw_session_ids(&env).await;
    assert_eq!(ids.len(), 3, "both raw duplicates replaced by one row");
    assert!(!ids.iter().any(|id| id == b"legacy-json"));
    assert!(raw_value(&env, &vault, &json_s)
        .await
        .starts_with("efs1:k1:"));
    assert_eq!(
        vault.get(&json_s).await.unwrap().unwrap().idp_response["access_token"],
        "rewritten"
    );
    // Deleting works on raw rows too.
    assert!(vault.delete(&session("legacy-text")).await.unwrap());
    assert!(vault.get(&session("legacy-text")).await.unwrap().is_none());
}

/// Puts KEY_2 first (KEY_1 still decrypts), runs `tokens re-encrypt` twice and checks
/// both reports as (scanned, rewritten, current, failed).
async fn rotate_and_reencrypt_twice(
    env: &mut Env,
    first: (u64, u64, u64, u64),
    second: (u64, u64, u64, u64),
) {
    let rotated = env.with_keys(&format!("{KEY_2},{KEY_1}"));
    for expected in [first, second] {
        let r = rotated.reencrypt().await.unwrap();
        assert_eq!(
            (r.scanned, r.rewritten, r.current, r.failed),
            expected,
            "{r:?}"
        );
    }
}

async fn reencrypt_rewrites_everything_under_the_newest_key(mut env: Env) {
    sql_exec(&env, LEGACY).await;
    let old = env.with_keys(KEY_1);
    let s = session("sealed-with-k1");
    old.put(
        &s,
        obj(json!({"access_token": "k1-value", "expires_in": 300})),
        None,
    )
    .await
    .unwrap();
    let before = old.get(&s).await.unwrap().unwrap();
    // A row nobody can open.
    sql_exec(
        &env,
        "INSERT INTO iam_token_data (session_id, idp_response) VALUES (X'01', 'efs1:gone:AAAA')",
    )
    .await;

    rotate_and_reencrypt_twice(&mut env, (6, 5, 0, 1), (6, 0, 5, 1)).await;

    // Only the new key is needed now; every legacy row is hashed and sealed.
    let new_only = env.with_keys(KEY_2);
    let after = new_only.get(&s).await.unwrap().unwrap();
    assert_eq!(after.idp_response, before.idp_response);
    assert_eq!(after.expires_at, before.expires_at, "expiry kept");
    assert_eq!(
        served(&new_only, "legacy-json").await,
        json!({"access_token": "legacy-newer"})
    );
    assert_eq!(served(&new_only, "legacy-null").await, Value::Null);
    assert_eq!(served(&new_only, "legacy-text").await, "not json");
    let ids = raw_session_ids(&env).await;
    assert_eq!(
        ids.iter()
            .filter(|id| efs_iam::tokens::crypto::is_hashed_id(id))
            .count(),
        5
    );
}

async fn expired_rows_are_purged(mut env: Env) {
    env.settings.tokens.token_accept_legacy_plaintext = true;
    let vault = env.vault();
    vault
        .put(
            &session("short"),
            obj(json!({"access_token": "a", "expires_in": 10})),
            None,
        )
        .await
        .unwrap();
    vault
        .put(
            &session("long"),
            obj(json!({"access_token": "b", "expires_in": 1000})),
            None,
        )
        .await
        .unwrap();
    sql_exec(&env, LEGACY).await;
    assert_eq!(vault.purge_expired().await.unwrap(), 0);
    env.clock.advance(Duration::from_secs(10));
    assert_eq!(vault.purge_expired().await.unwrap(), 1);
    assert_eq!(raw_session_ids(&env).await.len(), 5);
    // Legacy rows got an expiry (the maximum lifetime) on the first purge.
    let got = vault.get(&session("legacy-json")).await.unwrap().unwrap();
    assert!(got.expires_at.is_some());
    env.clock.advance(Duration::from_secs(7200));
    assert_eq!(
        vault.purge_expired().await.unwrap(),
        5,
        "long and the legacy rows"
    );
    assert!(raw_session_ids(&env).await.is_empty());
}

#[tokio::test]
async fn memcached_rejects_over_large_responses_and_server_limits() {
    let Some(servers) = memcached_servers() else {
        return;
    };
    let mut env = env_on(TestDb::sqlite().await, Some(servers)).await;
    env.settings.tokens.memcached_max_item_bytes = 8 * 1024;
    let vault = env.vault();
    let s = session("big");
    let big = "x".repeat(16 * 1024);
    let err = vault
        .put(&s, obj(json!({"access_token": big})), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::Store(TokenStoreError::TooLarge { .. })),
        "{err:?}"
    );
    assert!(
        vault.get(&s).await.unwrap().is_none(),
        "nothing stored, nothing cut"
    );
    // Configured above the server's own 1 MiB limit: memcached refuses, same answer.
    env.settings.tokens.memcached_max_item_bytes = 4 * 1024 * 1024;
    let vault = env.vault();
    let err = vault
        .put(
            &s,
            obj(json!({"access_token": "y".repeat(1536 * 1024)})),
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, VaultError::Store(TokenStoreError::TooLarge { .. })),
        "{err:?}"
    );
    assert!(vault.get(&s).await.unwrap().is_none());
    // The connection is still usable afterwards.
    vault
        .put(&s, obj(json!({"access_token": "small"})), None)
        .await
        .unwrap();
    assert!(vault.get(&s).await.unwrap().is_some());
}

/// Two memcached "servers" (two forwarders to the real one): keys spread over both,
/// and each key is always found on the server it was written to.
#[tokio::test]
async fn memcached_keys_spread_over_several_servers() {
    let Some(servers) = memcached_servers() else {
        return;
    };
    let real = servers.split(',').next().unwrap().trim().to_owned();
    let a = crate::common::CuttableProxy::start(&real).await;
    let b = crate::common::CuttableProxy::start(&real).await;
    let mut env = env_on(TestDb::sqlite().await, Some(servers)).await;
    use_memcached(&mut env.settings, &format!("{},{}", a.addr, b.addr));
    let vault = env.vault();
    for i in 0..40 {
        vault
            .put(&session(&format!("spread-{i}")), obj(json!({"n": i})), None)
            .await
            .unwrap();
    }
    assert!(a.accepted() > 0 && b.accepted() > 0, "both servers used");
    // With server A gone, its keys fail (503) rather than silently moving to B.
    a.cut();
    let mut unavailable = 0;
    let mut found = 0;
    for i in 0..40 {
        match vault.get(&session(&format!("spread-{i}"))).await {
            Ok(Some(t)) => {
                assert_eq!(t.idp_response["n"], i);
                found += 1;
            }
            Err(VaultError::Store(TokenStoreError::Unavailable(_))) => unavailable += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(
        found > 0 && unavailable > 0,
        "{found} found, {unavailable} unavailable"
    );
    assert_eq!(found + unavailable, 40);
    a.restore();
    for i in 0..40 {
        assert!(vault
            .get(&session(&format!("spread-{i}")))
            .await
            .unwrap()
            .is_some());
    }
}

async fn reencrypt_rewrites_every_memcached_entry_keeping_its_ttl(mut env: Env) {
    let old = env.with_keys(KEY_1);
    let short = session("memcached-short");
    let long = session("memcached-long");
    old.put(
        &short,
        obj(json!({"access_token": "short-lived", "expires_in": 300})),
        None,
    )
    .await
    .unwrap();
    old.put(
        &long,
        obj(json!({"access_token": "default-lifetime"})),
        None,
    )
    .await
    .unwrap();
    // An entry nobody can open: counted as failed and left as it is.
    write_raw(
        &old,
        &session("memcached-unreadable"),
        "efs1:gone:AAAA",
        &env,
    )
    .await;
    let before = old.get(&short).await.unwrap().unwrap();

    rotate_and_reencrypt_twice(&mut env, (3, 2, 0, 1), (3, 0, 2, 1)).await;

    let new_only = env.with_keys(KEY_2);
    let after = new_only.get(&short).await.unwrap().unwrap();
    assert_eq!(after.idp_response, before.idp_response);
    assert_eq!(
        after.expires_at, before.expires_at,
        "the record's expiry kept"
    );
    assert_eq!(
        new_only.get(&long).await.unwrap().unwrap().idp_response["access_token"],
        "default-lifetime"
    );
    assert!(raw_value(&env, &new_only, &short)
        .await
        .starts_with("efs1:k2:"));
    // memcached's own expiry was kept too: the short entry still goes in about 300 s.
    let h = hashed(&short);
    let rows = new_only.store().scan_tokens(0, 10).await.unwrap().unwrap();
    let row = rows.iter().find(|r| r.session_id == h).expect("listed");
    let left = row.expires_at.expect("a TTL") - chrono::Utc::now().naive_utc();
    assert!(
        (280..=301).contains(&left.num_seconds()),
        "remaining TTL {left:?}"
    );
}

/// memcached reads an exptime above 30 days as an absolute time: a rewrite that passed
/// the remaining seconds as they are would expire the entry at once.
async fn reencrypt_keeps_a_memcached_ttl_beyond_thirty_days(mut env: Env) {
    let forty_days = Duration::from_secs(40 * 24 * 3600);
    env.settings.tokens.token_max_lifetime = forty_days;
    let old = env.with_keys(KEY_1);
    let s = session("memcached-refresh");
    old.put(
        &s,
        obj(json!({"access_token": "at", "refresh_token": "rt", "expires_in": 300})),
        None,
    )
    .await
    .unwrap();

    let rotated = env.with_keys(&format!("{KEY_2},{KEY_1}"));
    let report = rotated.reencrypt().await.unwrap();
    assert_eq!((report.scanned, report.rewritten), (1, 1), "{report:?}");
    assert_eq!(
        rotated.get(&s).await.unwrap().unwrap().idp_response["refresh_token"],
        "rt"
    );
    let rows = rotated.store().scan_tokens(0, 10).await.unwrap().unwrap();
    let left = rows[0].expires_at.expect("a TTL") - chrono::Utc::now().naive_utc();
    let expected = forty_days.as_secs() as i64;
    // Beyond 30 days the rewrite gives memcached an absolute time: the system's clock
    // plus the remaining seconds memcached reported by its own clock, which counts whole
    // seconds and trails the system's by up to about two. That reading, and the one
    // here, can each stand that much long (CI saw +4 s); an entry expired at once (the
    // bug this guards against) would read 0.
    assert!(
        (expected - 60..=expected + 6).contains(&left.num_seconds()),
        "remaining TTL {left:?}"
    );
}

/// Nothing listens on port 1: the key dump fails, and re-encryption reports the store
/// as unavailable instead of an empty, "successful" run.
#[tokio::test]
async fn reencrypt_with_memcached_down_is_an_error() {
    let env = env_on(TestDb::sqlite().await, Some("127.0.0.1:1".into())).await;
    let err = env.vault().reencrypt().await.unwrap_err();
    assert!(
        matches!(&err, VaultError::Store(TokenStoreError::Unavailable(m)) if m.contains("127.0.0.1:1")),
        "{err:?}"
    );
}
