//! A rolling deploy that brings a migration: several instances start at the same
//! instant on a database whose schema is behind. Every one starts, and the schema ends
//! complete, each migration applied once (MariaDB, real processes).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::common::TestDb;

const BIN: &str = env!("CARGO_BIN_EXE_efs-iam");

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound listener").port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_started_at_once_on_a_pending_migration_all_start() {
    let Some((url, admin, name)) = TestDb::empty_mysql().await else {
        return;
    };
    let expected = crate::common::migration_files("mysql");
    for attempt in 0..3 {
        let db_name = format!("{name}_{attempt}");
        let db_url = url.replace(&name, &db_name);
        let admin_pool = sqlx::MySqlPool::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE `{db_name}`"))
            .execute(&admin_pool)
            .await
            .unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut instances: Vec<Killed> = ports
            .iter()
            .map(|port| {
                Killed(
                    Command::new(BIN)
                        .arg("serve")
                        .env_clear()
                        .env("PATH", std::env::var("PATH").unwrap_or_default())
                        .env("EFS_IAM_DATABASE_URL", &db_url)
                        .env("EFS_IAM_LISTEN", format!("127.0.0.1:{port}"))
                        .env("EFS_IAM_LOG", "warn")
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .expect("start efs-iam"),
                )
            })
            .collect();
        let client = reqwest::Client::new();
        let started = Instant::now();
        let mut ready = vec![false; ports.len()];
        while ready.iter().any(|r| !r) && started.elapsed() < Duration::from_secs(60) {
            for (i, port) in ports.iter().enumerate() {
                if let Some(status) = instances[i].0.try_wait().unwrap() {
                    let mut err = String::new();
                    use std::io::Read;
                    instances[i]
                        .0
                        .stderr
                        .take()
                        .unwrap()
                        .read_to_string(&mut err)
                        .unwrap();
                    panic!("attempt {attempt}: instance {i} exited ({status}): {err}");
                }
                ready[i] = ready[i]
                    || client
                        .get(format!("http://127.0.0.1:{port}/health/ready"))
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            ready.iter().all(|r| *r),
            "attempt {attempt}: ready {ready:?}"
        );
        let pool = sqlx::MySqlPool::connect(&db_url).await.unwrap();
        let (applied, ok): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(CASE WHEN success THEN 1 END) FROM _sqlx_migrations",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(
            (applied, ok),
            (expected, expected),
            "attempt {attempt}: every migration applied once"
        );
        pool.close().await;
        instances.clear();
        sqlx::query(&format!("DROP DATABASE `{db_name}`"))
            .execute(&admin_pool)
            .await
            .unwrap();
    }
    let admin_pool = sqlx::MySqlPool::connect(&admin).await.unwrap();
    sqlx::query(&format!("DROP DATABASE `{name}`"))
        .execute(&admin_pool)
        .await
        .unwrap();
}
