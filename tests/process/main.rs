//! The `efs-iam` binary as operators run it, as child processes: settings errors,
//! subcommands, signals, and several instances draining one queue.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod migrations;
mod sync_process;
