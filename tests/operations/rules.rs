//! The alert rules and the dashboard against `promtool`.

use std::process::Command;

use crate::{dashboard_queries, deploy, tool_available};

fn promtool(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// `promtool check rules`, the rules' unit tests (each alert fires on series that should
/// trigger it and stays silent on series that should not), and the example scrape
/// configuration.
#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    if !tool_available("promtool") {
        return;
    }
    let dir = deploy().join("prometheus");
    let checked = promtool(&dir, &["check", "rules", "efs-iam-rules.yml"]);
    assert!(checked.contains("SUCCESS: 17 rules found"), "{checked}");
    let tested = promtool(&dir, &["test", "rules", "efs-iam-rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    promtool(&dir, &["check", "config", "prometheus.yml"]);
}

/// Every alert in the rules file has a unit test that makes it fire.
#[test]
fn every_alert_has_a_firing_test() {
    let tests =
        std::fs::read_to_string(deploy().join("prometheus/efs-iam-rules.test.yml")).unwrap();
    for (alert, _) in crate::rule_expressions() {
        let firing = tests
            .split("alertname: ")
            .skip(1)
            .filter(|case| case.starts_with(&format!("{alert}\n")))
            .any(|case| !case.contains("exp_alerts: []"));
        assert!(firing, "no test makes {alert} fire");
    }
}

/// Every query of the dashboard is valid PromQL: each becomes a recording rule that
/// `promtool check rules` parses.
#[test]
fn the_dashboard_queries_parse() {
    if !tool_available("promtool") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, q) in dashboard_queries().iter().enumerate() {
        // `$job` is a dashboard variable; any regex stands in for it.
        let q = q.replace("$job", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&q).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    promtool(dir.path(), &["check", "rules", "dashboard.yml"]);
}
