//! The PHP client library (clients/php) against a live efs-iam: its PHPUnit suite
//! (every operation, every problem type, retries, tokens, drift from the OpenAPI
//! document), then its quick-start script exactly as the README shows it. Needs `php`
//! and `phpunit` (Debian's php-cli, phpunit, php-guzzlehttp-guzzle); scripts/test
//! installs them and sets EFS_IAM_REQUIRE_PHP so that CI cannot skip this.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::control::{self, Control};
use crate::deployment::{Deployment, AUDIENCE, DEAD_ISSUER, ISSUER, SECRET};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// `program`'s path on PATH, if it can be run.
fn find(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// `php` and `phpunit`, or `None` (a skip) — a failure under EFS_IAM_REQUIRE_PHP.
fn php_tools() -> Option<(PathBuf, PathBuf)> {
    let found = find("php").zip(find("phpunit"));
    if found.is_none() && std::env::var_os("EFS_IAM_REQUIRE_PHP").is_some() {
        panic!(
            "EFS_IAM_REQUIRE_PHP is set but `php` or `phpunit` cannot be found on PATH \
             (Debian: apt-get install php-cli php-curl php-mbstring phpunit php-guzzlehttp-guzzle)"
        );
    }
    found
}

fn report(what: &str, out: &Output) -> String {
    format!(
        "{what} exited with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a child process off the runtime's threads, so the servers in this process keep
/// answering it.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("start a PHP process"))
        .await
        .expect("the PHP process's thread")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn phpunit_suite_and_quickstart_pass_against_a_live_efs_iam() {
    let Some((php, phpunit)) = php_tools() else {
        eprintln!("skipped: php or phpunit not installed (scripts/test installs them)");
        return;
    };
    let Some(mut deployment) = Deployment::start().await else {
        return; // no MariaDB and not required (TestDb::mysql said so)
    };
    let control_url = control::serve(Control {
        okta: deployment.okta.clone(),
        slow_okta: deployment.slow_okta.clone(),
        caller_idp: deployment.caller_idp.clone(),
        main_store: deployment.main_db.store.clone(),
        tight_admin: deployment.tight_db.store.clone(),
        tight_store: deployment.tight_store.clone(),
        tight_url: deployment.tight.address.clone(),
        memcached_proxy: deployment.memcached_proxy.clone(),
        http: reqwest::Client::new(),
    })
    .await;

    let mut environment = vec![
        ("EFS_IAM_URL", deployment.main.address.clone()),
        ("EFS_IAM_AUTH_HS256_SECRET", SECRET.to_owned()),
        ("EFS_IAM_AUTH_ISSUER", ISSUER.to_owned()),
        ("EFS_IAM_AUTH_AUDIENCE", AUDIENCE.to_owned()),
        ("EFS_IAM_TEST_PEER_URL", deployment.peer.address.clone()),
        ("EFS_IAM_TEST_TIGHT_URL", deployment.tight.address.clone()),
        ("EFS_IAM_TEST_JWKS_URL", deployment.jwks.address.clone()),
        ("EFS_IAM_TEST_CONTROL_URL", control_url),
        ("EFS_IAM_TEST_OKTA_URL", deployment.okta.base_url()),
        ("EFS_IAM_TEST_DEAD_ISSUER", DEAD_ISSUER.to_owned()),
        (
            "EFS_IAM_TEST_OPENAPI",
            format!("{ROOT}/openapi/openapi.json"),
        ),
    ];
    if let Some(cache) = &deployment.cache {
        environment.push(("EFS_IAM_TEST_CACHE_URL", cache.address.clone()));
    }
    // For working on the suite: the deployment stays up this many seconds, its
    // variables printed, instead of running phpunit here.
    if let Some(seconds) = std::env::var("EFS_IAM_CLIENTS_SERVE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        for (name, value) in &environment {
            println!("export {name}={value}");
        }
        tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
        return;
    }

    let client_dir = Path::new(ROOT).join("clients/php");
    let mut suite = Command::new(&phpunit);
    suite
        .current_dir(&client_dir)
        .args(["-c", "phpunit.xml.dist", "--colors=never"])
        .env_remove("EFS_IAM_TEST_CACHE_URL")
        .envs(environment.iter().map(|(k, v)| (k, v)));
    let out = run(suite).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", report("phpunit", &out));
    // Every test ran and passed (a suite that ran nothing, or skipped its way through,
    // must not pass); without memcached, its two tests may skip, and only they.
    let ran = stdout
        .split_once("\nOK (")
        .and_then(|(_, rest)| rest.split_once(' '))
        .and_then(|(n, _)| n.parse::<u32>().ok());
    let complete = ran.is_some_and(|n| n >= 70);
    let without_memcached = deployment.cache.is_none()
        && stdout.contains("OK, but incomplete, skipped, or risky tests!")
        && stdout.contains(", Skipped: 2.")
        && !stdout.contains("Risky")
        && !stdout.contains("Incomplete");
    assert!(complete || without_memcached, "{}", report("phpunit", &out));
    println!("{stdout}");

    // The README's quick start, run exactly as written with the four documented
    // variables and nothing else.
    let mut quickstart = Command::new(&php);
    quickstart
        .current_dir(client_dir.join("examples"))
        .arg("quickstart.php")
        .env_clear()
        .env("EFS_IAM_URL", &deployment.main.address)
        .env("EFS_IAM_AUTH_HS256_SECRET", SECRET)
        .env("EFS_IAM_AUTH_ISSUER", ISSUER)
        .env("EFS_IAM_AUTH_AUDIENCE", AUDIENCE);
    let out = run(quickstart).await;
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", report("quickstart.php", &out));
    assert!(
        printed.contains("portal 12 settings:") && printed.contains("theme = dark"),
        "{}",
        report("quickstart.php", &out)
    );
    assert!(
        printed.contains("refused (validation-failed, request id ")
            && printed.contains("  okta_user_id: may contain only ASCII letters and digits"),
        "{}",
        report("quickstart.php", &out)
    );
    println!("{printed}");

    deployment.stop().await;
}
