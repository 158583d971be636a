//! What operators and developers plug in, checked as they use it: the alert rules and
//! their unit tests (`promtool`), the Grafana dashboard's queries, every metric those
//! use exported by a live efs-iam, and Swagger UI driven in headless Chromium.
//!
//! Needs `promtool` (Debian's `prometheus`) and `chromium`; `scripts/test` installs
//! them and sets `EFS_IAM_REQUIRE_OPERATIONS_TOOLS=1`, under which a missing tool fails
//! the test instead of skipping it.

#[path = "../common/mod.rs"]
mod common;

mod browser;
mod metrics;
mod rules;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's `deploy/` folder.
pub fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Whether `tool` can be run; panics when it cannot but the suite requires it.
pub fn tool_available(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found && std::env::var_os("EFS_IAM_REQUIRE_OPERATIONS_TOOLS").is_some() {
        panic!("EFS_IAM_REQUIRE_OPERATIONS_TOOLS is set but `{tool}` cannot be run");
    }
    if !found {
        eprintln!("skipped: `{tool}` is not installed (scripts/test installs it)");
    }
    found
}

/// Every PromQL expression of the dashboard.
pub fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(deploy().join("grafana/efs-iam-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(queries.len() > 20, "the dashboard has its queries");
    queries
}

/// Every alert rule's expression.
pub fn rule_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy().join("prometheus/efs-iam-rules.yml")).unwrap();
    // The rules file is YAML; its `alert:` and `expr:` lines are all this needs (a
    // multi-line `expr: |` block runs until the next key).
    let mut rules = Vec::new();
    let mut alert = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert: ") {
            alert = name.to_owned();
        } else if let Some(expr) = t.strip_prefix("expr: ") {
            let mut expr = expr.to_owned();
            if expr == "|" {
                expr.clear();
                while let Some(next) = lines.peek() {
                    let n = next.trim();
                    if n.is_empty()
                        || n.ends_with(':')
                        || n.starts_with("for:")
                        || n.starts_with("labels:")
                    {
                        break;
                    }
                    expr.push_str(n);
                    expr.push(' ');
                    lines.next();
                }
            }
            rules.push((alert.clone(), expr.trim().to_owned()));
        }
    }
    assert!(rules.len() >= 10, "{rules:?}");
    rules
}
