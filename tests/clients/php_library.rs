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
        restartable: deployment.restartable.clone(),
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
        (
            "EFS_IAM_TEST_RESTARTABLE_URL",
            deployment.restartable.address.clone(),
        ),
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

    // The README's examples, run exactly as written from a scratch project outside the
    // repository, laid out as the README's install section says (the library copied to
    // vendor/efs-iam), with the four documented variables and nothing else.
    let project = ScratchProject::create(&client_dir);
    let documented = [
        ("EFS_IAM_URL", deployment.main.address.as_str()),
        ("EFS_IAM_AUTH_HS256_SECRET", SECRET),
        ("EFS_IAM_AUTH_ISSUER", ISSUER),
        ("EFS_IAM_AUTH_AUDIENCE", AUDIENCE),
    ];
    let example = |args: &[&str]| {
        let mut command = Command::new(&php);
        command
            .current_dir(&project.dir)
            .args(args)
            .env_clear()
            .envs(documented);
        command
    };

    let printed = project
        .expect_success("quickstart.php", example(&["quickstart.php"]))
        .await;
    assert!(
        printed.contains("portal 12 settings:\n") && printed.contains("  theme = dark\n"),
        "{printed}"
    );
    assert!(
        printed.contains("refused (validation-failed, request id ")
            && printed.contains("  okta_user_id: may contain only ASCII letters and digits"),
        "{printed}"
    );

    let printed = project
        .expect_success("paging.php", example(&["paging.php"]))
        .await;
    assert!(
        printed.contains("5 entries in 3 pages, newest first: ")
            && printed.contains("#5, ")
            && printed
                .trim_end()
                .lines()
                .next()
                .is_some_and(|l| l.ends_with("#1")),
        "{printed}"
    );
    assert!(
        printed.contains("3 entries in 2 pages with max: 3\n"),
        "{printed}"
    );

    let printed = project
        .expect_success("errors.php", example(&["errors.php"]))
        .await;
    for expected in [
        "bad Okta user id: fix the input: {\"okta_user_id\":",
        "unknown admin user: nothing there: ",
        "portal without a group: not now (portal-not-linked): ",
        "wrong secret: not allowed (unauthorized)",
    ] {
        assert!(printed.contains(expected), "{expected:?} in:\n{printed}");
    }

    let printed = project
        .expect_success("logging.php", example(&["logging.php"]))
        .await;
    assert!(
        printed.contains("[debug] ")
            && printed.contains("\"operation\":\"putPortalSetting\"")
            && printed.contains("\"request_id\":\"efs-admin-"),
        "{printed}"
    );
    // A fresh database: the example's setting is new.
    assert!(printed.ends_with("\ncreated\n"), "{printed}");
    assert!(
        !printed.contains(SECRET) && !printed.contains("Bearer"),
        "{printed}"
    );

    let printed = project
        .expect_success("fpm.php", example(&["-d", "apc.enable_cli=1", "fpm.php"]))
        .await;
    assert!(printed.contains("tokens in APCu: 1\n"), "{printed}");

    // The unit test with the client mocked, as the README says to run it.
    let mut unit = Command::new(&phpunit);
    unit.current_dir(&project.dir)
        .args([
            "--colors=never",
            "--bootstrap",
            "vendor/efs-iam/autoload.php",
        ])
        .arg("PortalGroupsTest.php")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let printed = project.expect_success("PortalGroupsTest.php", unit).await;
    assert!(printed.contains("OK (2 tests, "), "{printed}");

    deployment.stop().await;
}

/// A PHP project outside the repository, as an EFS-Admin developer sets one up from
/// the README: the library copied to vendor/efs-iam, the examples beside it.
struct ScratchProject {
    dir: PathBuf,
}

impl ScratchProject {
    fn create(client_dir: &Path) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "efs-iam-php-project-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        assert!(
            !dir.starts_with(ROOT),
            "the scratch project must lie outside the repository"
        );
        let library = dir.join("vendor/efs-iam");
        copy_tree(&client_dir.join("src"), &library.join("src"));
        for file in ["autoload.php", "composer.json"] {
            std::fs::copy(client_dir.join(file), library.join(file)).expect("copy the library");
        }
        for entry in std::fs::read_dir(client_dir.join("examples")).expect("the examples") {
            let path = entry.expect("an example").path();
            std::fs::copy(&path, dir.join(path.file_name().expect("a file name")))
                .expect("copy an example");
        }
        Self { dir }
    }

    /// Runs `command`, asserts it succeeded and returns what it printed.
    async fn expect_success(&self, what: &str, command: Command) -> String {
        let out = run(command).await;
        assert!(out.status.success(), "{}", report(what, &out));
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("--- {what} ---\n{printed}");
        printed
    }
}

impl Drop for ScratchProject {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder of the scratch project");
    for entry in std::fs::read_dir(from).expect("read the library") {
        let path = entry.expect("a library file").path();
        let target = to.join(path.file_name().expect("a file name"));
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy a library file");
        }
    }
}
