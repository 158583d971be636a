//! Client libraries against live efs-iam instances: the PHP client in clients/php, its
//! PHPUnit suite and quick-start script, run against several instances in this process
//! (MariaDB behind them, fake Okta orgs for sync) and a control server through which
//! the suite arranges what efs-iam's API cannot (`control.rs`).

#[path = "../common/mod.rs"]
mod common;

mod control;
mod deployment;
mod php_library;
