//! The sync engine end to end: the service over real HTTP against the fake Okta
//! (src/fake_okta), on SQLite and, where the test says so, on MariaDB.

#[path = "../common/mod.rs"]
mod common;

mod helpers;
mod jobs;
mod portals;
mod reconcile;
mod status;
mod unassignments;
mod users;

/// Runs each named test on SQLite and (when `TEST_MYSQL_URL` is set) on MariaDB.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::TestDb::sqlite().await).await;
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some(db) = $crate::common::TestDb::mysql().await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}
