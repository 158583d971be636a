//! Storage on both dialects: the storage contracts (run on SQLite always and on MariaDB
//! when `TEST_MYSQL_URL` is set, required under `EFS_IAM_REQUIRE_MYSQL=1`), the
//! connection pool, and the token vault's contract on SQL and memcached. Each test gets
//! a fresh database.

#[path = "../common/mod.rs"]
mod common;

mod boundary_contract;
mod connection_pool;
mod contract;
mod scale_contract;
mod sync_contract;
mod token_vault;
