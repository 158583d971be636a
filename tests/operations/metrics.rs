//! The metrics the alert rules and the dashboard use are the metrics efs-iam exports.

use std::collections::BTreeSet;
use std::time::Duration;

use efs_iam::http::metrics::CATALOGUE;
use efs_iam::startup::Application;
use fake_okta::{FakeOkta, FakeOktaConfig, UserStatus};
use reqwest::Url;
use serde_json::json;

use crate::common::{test_settings, Api, Running, TestDb};

struct Live {
    client: reqwest::Client,
    address: String,
    _running: Running,
}

impl Api for Live {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }
}

async fn live(okta: &FakeOkta) -> Live {
    let db = TestDb::sqlite().await;
    let mut s = test_settings(&db.url);
    s.okta.org_url = Some(Url::parse(&okta.base_url()).unwrap());
    s.okta.api_token = Some("test-token".to_owned().into());
    s.sync.poll_interval = Duration::from_millis(100);
    let app = Application::with_storage(&s, db.store.clone())
        .await
        .unwrap();
    let address = format!("http://{}", app.local_addr());
    // The database lives as long as the test process needs it.
    std::mem::forget(db);
    Live {
        client: reqwest::Client::new(),
        address,
        _running: Running::start(app),
    }
}

/// Metric names in a `/metrics` page (histograms by their base name too).
fn exported(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                names.insert(base.to_owned());
            }
        }
        names.insert(name);
    }
    names
}

/// The metric names a PromQL expression reads (efs-iam's own; `up` is Prometheus's).
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if ["efs_iam_", "http_", "db_pool_"]
            .iter()
            .any(|p| word.starts_with(p))
        {
            names.push(std::mem::take(&mut word));
        }
        word.clear();
    }
    names
}

/// Each rule's and dashboard query's metrics are on a live instance's `/metrics` after
/// a short exercise, so a renamed metric fails here; and every metric of the catalogue
/// but the latency histograms is there from start-up, at zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_the_dashboard_use_is_exported() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let app = live(&okta).await;
    let (status, page) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let at_start = exported(page.as_str().unwrap());
    for (name, _) in CATALOGUE {
        if name.ends_with("_seconds") && !name.contains("age") {
            continue; // histograms appear with their first observation
        }
        assert!(
            at_start.contains(*name),
            "{name} is not exported at start-up"
        );
    }

    // A short exercise: a lookup, the token store, Okta through a sync, the queue.
    let group = okta.create_group("Portal 1");
    let member = okta.create_user(
        "m@example.com",
        "m@example.com",
        "M",
        "N",
        UserStatus::Active,
    );
    okta.add_group_member(&group, &member);
    assert!(app
        .put(
            "/api/v1/portals/1/settings/okta_group_id",
            json!({"value": group})
        )
        .await
        .0
        .is_success());
    assert_eq!(app.get("/api/v1/portals/1/settings").await.0, 200);
    let token = "/api/v1/sessions/metrics-session/token";
    assert_eq!(app.put(token, json!({"access_token": "a"})).await.0, 204);
    assert_eq!(app.get(token).await.0, 200);
    assert_eq!(app.delete(token).await.0, 204);
    let profile = json!({"login": "s@example.com", "email": "s@example.com", "first_name": "S", "last_name": "T"});
    let (status, synced) = app.post("/api/v1/sync/portals/1/users/7", profile).await;
    assert_eq!(status, 200);
    // The user efs-iam created leaves the group; `member`, someone else's, stays.
    let (status, _) = app
        .post(
            "/api/v1/portals/1/unassignments",
            json!({"users": [{"user_id": 7, "okta_user_id": synced["okta_user_id"]}]}),
        )
        .await;
    assert_eq!(status, 202);
    for _ in 0..100 {
        if okta.group_members(&group).len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, page) = app.get("/metrics").await;
    let page = page.as_str().unwrap().to_owned();
    let names = exported(&page);

    for (name, _) in CATALOGUE {
        assert!(
            names.contains(*name),
            "{name} is in the catalogue but not exported"
        );
    }
    let mut used = Vec::new();
    for (alert, expr) in crate::rule_expressions() {
        used.extend(metric_names(&expr).into_iter().map(|m| (alert.clone(), m)));
    }
    for query in crate::dashboard_queries() {
        used.extend(
            metric_names(&query)
                .into_iter()
                .map(|m| ("dashboard".to_owned(), m)),
        );
    }
    assert!(used.len() > 40);
    for (user, metric) in used {
        assert!(
            names.contains(&metric),
            "{user} uses {metric}, which efs-iam does not export"
        );
    }
    // The exercise shows in the figures.
    assert!(page.contains(r#"efs_iam_okta_configured 1"#), "{page}");
    assert!(
        page.lines().any(|l| l
            .starts_with("efs_iam_unassignments_completed_total{result=\"removed\"}")
            && !l.ends_with(" 0")),
        "the drained row is counted"
    );
}
