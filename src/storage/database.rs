//! The database as a whole: how to reach it, what health probes ask of it, and the
//! clock of every timestamp efs-iam writes.

use async_trait::async_trait;
use chrono::NaiveDateTime;

use super::error::StorageResult;

/// The database as a whole: what health probes and metrics ask.
#[async_trait]
pub trait DatabaseStatus: Send + Sync + 'static {
    /// `mysql` or `sqlite`, for logs and health answers.
    fn backend(&self) -> &'static str;
    /// Database reachable and every migration this build knows applied.
    async fn check_ready(&self) -> StorageResult<()>;
    /// Connections in use and idle, for `/metrics`.
    fn pool_stats(&self) -> PoolStats;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// Options shared by both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    /// The whole wait for a connection (a free one, a new one, or one reset).
    pub acquire_timeout: std::time::Duration,
    /// The whole of one storage operation: a statement, or a short transaction.
    pub statement_timeout: std::time::Duration,
}

impl Default for ConnectOptions {
    /// The settings' defaults.
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: std::time::Duration::from_secs(3),
            statement_timeout: std::time::Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    MySql,
    Sqlite,
}

pub fn scheme(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("mysql://") {
        Ok(Backend::MySql)
    } else if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        anyhow::bail!("must start with mysql:// or sqlite:")
    }
}

/// Timestamps are written by efs-iam in UTC with whole seconds, because `DATETIME`
/// without a fraction would round (MySQL) or cut (MariaDB) anything finer.
pub fn now() -> NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(0)
}
