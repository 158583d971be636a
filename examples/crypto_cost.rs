//! What encrypting a session token costs, per operation (see BENCHMARKS.md):
//! seals and opens a realistic ~1.9 KB Okta token response with the vault's key ring
//! and reports the median time of each over batches, beside a plain copy of the same
//! bytes as the baseline.
//!
//!     cargo run --release --example crypto_cost

use std::hint::black_box;
use std::time::Instant;

use efs_iam::tokens::KeyRing;

const BATCH: usize = 2_000;
const BATCHES: usize = 25;

fn median_ns_per_op(mut f: impl FnMut()) -> f64 {
    let mut samples: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..BATCH {
                f();
            }
            t.elapsed().as_nanos() as f64 / BATCH as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[BATCHES / 2]
}

fn main() {
    let ring = KeyRing::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key ring");
    let body = format!(
        r#"{{"token_type":"Bearer","expires_in":3600,"scope":"openid email offline_access","access_token":"{}","id_token":"{}","refresh_token":"{}"}}"#,
        "a".repeat(800),
        "i".repeat(900),
        "r".repeat(40)
    );
    let bound = [1u8; 33];
    let sealed = ring.seal(body.as_bytes(), &bound);
    let copy = median_ns_per_op(|| {
        black_box(black_box(body.as_bytes()).to_vec());
    });
    let seal = median_ns_per_op(|| {
        black_box(ring.seal(black_box(body.as_bytes()), &bound));
    });
    let open = median_ns_per_op(|| {
        black_box(ring.open(black_box(&sealed), &bound).expect("opens"));
    });
    println!(
        "payload {} bytes, sealed {} bytes",
        body.len(),
        sealed.len()
    );
    println!("copy (baseline): {:>8.0} ns/op", copy);
    println!("seal:            {:>8.0} ns/op", seal);
    println!("open:            {:>8.0} ns/op", open);
}
