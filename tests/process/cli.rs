//! The binary as operators run it: settings errors, subcommands, start-up on the
//! embedded default, the container health check and shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_efs-iam");

fn efs_iam(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run efs-iam")
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let cases = [
        ("EFS_IAM_LISTEN", "not-an-address"),
        ("EFS_IAM_DATABASE_URL", "postgres://user:hunter2@db/efs"),
        ("EFS_IAM_REQUEST_TIMEOUT", "soon"),
        ("EFS_IAM_DATABASE_MAX_CONNECTIONS", "0"),
        ("EFS_IAM_LOG_FORMAT", "xml"),
    ];
    for (var, value) in cases {
        let out = efs_iam(&["serve"], &[(var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{var}: {stderr}");
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("hunter2"), "secret echoed: {stderr}");
    }
}

#[test]
fn openapi_subcommand_prints_the_committed_spec() {
    let out = efs_iam(&["openapi"], &[]);
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn serves_on_the_embedded_default_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    // `migrate` creates and migrates the default database file in the working directory.
    let out = Command::new(BIN)
        .arg("migrate")
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("efs-iam.db").exists());

    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("EFS_IAM_LISTEN", &listen)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let healthy = loop {
        let probe = efs_iam(&["healthcheck"], &[("EFS_IAM_LISTEN", &listen)]);
        if probe.status.success() {
            break true;
        }
        if started.elapsed() > Duration::from_secs(20) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(healthy, "never became healthy");

    let rc = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(rc.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful exit on SIGTERM, got {status}");
    let probe = efs_iam(&["healthcheck"], &[("EFS_IAM_LISTEN", &listen)]);
    assert_eq!(
        probe.status.code(),
        Some(1),
        "healthcheck fails once stopped"
    );
}

#[test]
fn refuses_a_public_address_without_caller_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite:{}", dir.path().join("x.db").display());
    let out = efs_iam(
        &["serve"],
        &[
            ("EFS_IAM_LISTEN", "0.0.0.0:0"),
            ("EFS_IAM_DATABASE_URL", &db),
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("EFS_IAM_AUTH_HS256_SECRET"), "{stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line, no backtrace: {stderr}"
    );
    assert!(
        !dir.path().join("x.db").exists(),
        "refused before touching the database"
    );
}

#[test]
fn token_subcommand_mints_a_verifiable_token() {
    let env = [
        (
            "EFS_IAM_AUTH_HS256_SECRET",
            "an-hs256-secret-of-at-least-32-bytes!",
        ),
        ("EFS_IAM_AUTH_ISSUER", "efs-admin"),
        ("EFS_IAM_AUTH_AUDIENCE", "efs-iam"),
    ];
    let out = efs_iam(
        &["token", "--scope", "iam:read iam:sync", "--ttl", "5m"],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&["efs-admin"]);
    validation.set_audience(&["efs-iam"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_secret(b"an-hs256-secret-of-at-least-32-bytes!"),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["scope"], "iam:read iam:sync");
    let ttl = data.claims["exp"].as_u64().unwrap() - data.claims["iat"].as_u64().unwrap();
    assert_eq!(ttl, 300);

    let out = efs_iam(&["token", "--scope", "iam:everything"], &env);
    assert!(!out.status.success());
    let out = efs_iam(&["token", "--scope", "iam:read"], &[]);
    assert!(!out.status.success(), "no secret, no token");
    let out = efs_iam(
        &["token", "--scope", "iam:read"],
        &[("EFS_IAM_AUTH_HS256_SECRET", "too-short")],
    );
    assert_eq!(out.status.code(), Some(2));
}
