//! Which memcached server owns a key: a ketama-style consistent-hash ring. Each server
//! owns 160 points (SHA-256 of `"<host:port>-<n>"`); a key goes to the first point at
//! or after SHA-256 of the key. Adding or removing one of N servers moves about 1/N
//! of the keys.

use sha2::{Digest, Sha256};

/// Points per server on the ring.
const POINTS_PER_SERVER: usize = 160;

/// A consistent-hash ring over server indexes.
#[derive(Debug, Clone)]
pub struct Ring {
    points: Vec<(u32, usize)>,
}

fn point(bytes: &[u8]) -> u32 {
    let digest = Sha256::digest(bytes);
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

impl Ring {
    pub fn new(servers: &[String]) -> Self {
        let mut points = Vec::with_capacity(servers.len() * POINTS_PER_SERVER);
        for (i, server) in servers.iter().enumerate() {
            for n in 0..POINTS_PER_SERVER / 8 {
                let digest = Sha256::digest(format!("{server}-{n}").as_bytes());
                for chunk in digest.chunks_exact(4) {
                    points.push((
                        u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                        i,
                    ));
                }
            }
        }
        points.sort_unstable();
        Self { points }
    }

    /// Index of the server that owns `key`.
    pub fn server_for(&self, key: &[u8]) -> usize {
        let h = point(key);
        let i = self.points.partition_point(|(p, _)| *p < h);
        self.points[i % self.points.len()].1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:11211")).collect()
    }

    #[test]
    fn ring_spreads_keys_and_moves_few_when_a_server_joins() {
        let three = Ring::new(&servers(3));
        let four = Ring::new(&servers(4));
        let mut counts = [0usize; 3];
        let mut moved = 0;
        let n = 30_000;
        for i in 0..n {
            let key = format!("efs-iam:t:{i}");
            let a = three.server_for(key.as_bytes());
            counts[a] += 1;
            let b = four.server_for(key.as_bytes());
            if a != b {
                assert_eq!(b, 3, "keys only move to the new server");
                moved += 1;
            }
        }
        for c in counts {
            assert!(c > n / 3 * 7 / 10 && c < n / 3 * 13 / 10, "{counts:?}");
        }
        // About a quarter of the keys move to the fourth server.
        assert!(moved > n / 4 * 6 / 10 && moved < n / 4 * 14 / 10, "{moved}");
        let one = Ring::new(&servers(1));
        assert_eq!(one.server_for(b"anything"), 0);
    }
}
