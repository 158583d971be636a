//! The README's PHP client (examples/php/efs_iam.php) against a live, secured efs-iam:
//! its hand-signed HS256 token is accepted, its scope is enforced, and a problem answer
//! becomes an exception carrying the status. Needs `php` (Debian's php-cli); scripts/test
//! installs it and sets EFS_IAM_REQUIRE_PHP so that CI cannot skip this.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::auth::{hs256, spawn_secured, AUDIENCE, ISSUER, SECRET};
use crate::common::read;

fn php_available() -> bool {
    let found = Command::new("php").arg("--version").output().is_ok();
    if !found && std::env::var_os("EFS_IAM_REQUIRE_PHP").is_some() {
        panic!("EFS_IAM_REQUIRE_PHP is set but `php` cannot be run");
    }
    found
}

#[tokio::test]
async fn the_php_client_calls_efs_iam_with_its_own_token() {
    if !php_available() {
        eprintln!("skipped: php not installed (scripts/test installs it)");
        return;
    }
    let app = spawn_secured().await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/php_smoke.php");
    let address = app.address.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("php")
            .arg(script)
            .env("EFS_IAM_URL", address)
            .env("EFS_IAM_AUTH_HS256_SECRET", SECRET)
            .env("EFS_IAM_AUTH_ISSUER", ISSUER)
            .env("EFS_IAM_AUTH_AUDIENCE", AUDIENCE)
            .output()
            .expect("run php")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "php failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(
        seen,
        json!({"read_back": "0oa-from-php", "without_write_scope": 403, "without_admin_scope": 403})
    );

    // The write really landed, as seen by a caller with a token minted in Rust.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = hs256(
        &json!({"sub": "t", "scope": "iam:read", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 60}),
    );
    let res = app
        .client
        .get(app.url("/api/v1/portals/77/settings"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["settings"]["okta_client_id"], "0oa-from-php");
}

/// The README's PHP configuration and quick start are the scripts the client's test
/// suite runs as they stand.
#[test]
fn the_readme_quick_start_is_the_tested_script() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for example in ["efs-iam.php", "quickstart.php"] {
        let script =
            std::fs::read_to_string(root.join("clients/php/examples").join(example)).unwrap();
        assert!(
            readme.contains(&format!("```php\n{}\n```", script.trim_end())),
            "README.md's PHP {example} differs from clients/php/examples/{example}"
        );
    }
}
