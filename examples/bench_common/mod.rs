//! What the benchmark drivers (`bench_scale`, `bench_sync`, `bench_events`,
//! `bench_soak`) share: a free port for an efs-iam child, a fresh MariaDB database for
//! a run, percentiles.

#![allow(dead_code)] // each driver uses its part

/// The `p` quantile (0.0 to 1.0) of `sorted` by the nearest rank; NaN when empty.
pub fn percentile<T: Copy + Into<f64>>(sorted: &[T], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].into()
}

/// A port nothing listens on now, for an efs-iam child process.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound listener").port()
}

/// The MariaDB admin URL: the flag, else `TEST_MYSQL_URL`.
pub fn admin_url(flag: &Option<String>) -> Option<String> {
    flag.clone()
        .or_else(|| std::env::var("TEST_MYSQL_URL").ok())
}

/// Creates the database `name` afresh (dropped first if a killed run left it) on the
/// server of `admin`; its URL.
pub async fn fresh_database(admin: &str, name: &str) -> String {
    let pool = sqlx::MySqlPool::connect(admin)
        .await
        .expect("MariaDB admin");
    for statement in [
        format!("DROP DATABASE IF EXISTS `{name}`"),
        format!("CREATE DATABASE `{name}`"),
    ] {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    format!("{base}/{name}")
}

/// Drops the database `name` a run made.
pub async fn drop_database(admin: &str, name: &str) {
    let pool = sqlx::MySqlPool::connect(admin)
        .await
        .expect("MariaDB admin");
    sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute(&pool)
        .await
        .unwrap();
}

/// Waits (100 ms polls, `tries` at most) until the instance at `base` answers
/// `/health/ready` with a success; whether it did.
pub async fn wait_ready(http: &reqwest::Client, base: &str, tries: u32) -> bool {
    for _ in 0..tries {
        let answer = http.get(format!("{base}/health/ready")).send().await;
        if answer.is_ok_and(|r| r.status().is_success()) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

/// The peak resident set size (`VmHWM`) of process `pid` so far, in KiB; 0 when it
/// cannot be read.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:"));
    line.and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `efs-iam serve` as a child process on a free port of 127.0.0.1, with nothing of this
/// process's environment but `PATH`, its output to `log`; the caller adds its settings.
/// The command and the instance's base URL.
pub fn efs_iam_serve(
    bin: &std::path::Path,
    database_url: &str,
    log: &std::path::Path,
) -> (std::process::Command, String) {
    let port = free_port();
    let log = std::fs::File::create(log).expect("the instance's log file");
    let mut command = std::process::Command::new(bin);
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EFS_IAM_LISTEN", format!("127.0.0.1:{port}"))
        .env("EFS_IAM_DATABASE_URL", database_url)
        .env("EFS_IAM_LOG", "warn")
        .stdout(log.try_clone().expect("the log file again"))
        .stderr(log)
        .stdin(std::process::Stdio::null());
    (command, format!("http://127.0.0.1:{port}"))
}
