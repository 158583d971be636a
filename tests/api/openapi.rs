//! `openapi/openapi.json` is the document the server serves. Regenerate it with
//! `UPDATE_OPENAPI=1 cargo test --test api openapi`.

use crate::common::spawn_app;
use crate::common::Api;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");

#[tokio::test]
async fn committed_spec_matches_the_served_one() {
    let generated = efs_iam::http::openapi().to_pretty_json().unwrap() + "\n";
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run UPDATE_OPENAPI=1 cargo test --test api openapi"
    );
    let app = spawn_app().await;
    let (status, served) = app.get("/api-docs/openapi.json").await;
    assert_eq!(status, 200);
    let committed: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert_eq!(served, committed);
}

#[tokio::test]
async fn every_api_operation_documents_its_problems() {
    let spec: serde_json::Value = serde_json::to_value(efs_iam::http::openapi()).unwrap();
    let mut operations = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "put", "post", "patch", "delete"].contains(&method.as_str())
                || path.starts_with("/health")
            {
                continue;
            }
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.iter().any(|(code, r)| code.starts_with('4')
                    && r["content"]["application/problem+json"].is_object()),
                "{method} {path} documents no 4xx problem"
            );
            assert!(
                responses.contains_key("503"),
                "{method} {path} documents no 503"
            );
            assert!(
                op["summary"].is_string() || op["description"].is_string(),
                "{method} {path} undocumented"
            );
        }
    }
    assert!(operations >= 20, "only {operations} operations found");
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/swagger-ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let res = app
        .client
        .get(app.url("/swagger-ui/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("/api-docs/openapi.json"));
}

/// Every problem answer the document promises is one the server has: each documented
/// error status is the status of some problem type, and a problem type named in a
/// response's description (`portal-not-linked`) answers with that response's status.
/// The document's own table of problem types is the server's.
#[tokio::test]
async fn documented_problems_match_the_problem_table() {
    use efs_iam::http::problem::ProblemType;
    let spec: serde_json::Value = serde_json::to_value(efs_iam::http::openapi()).unwrap();
    let table = spec["components"]["schemas"]["Problem"]["properties"]["type"]["description"]
        .as_str()
        .unwrap();
    for p in ProblemType::ALL {
        let row = format!("| `{}` | {} | {} |", p.slug, p.status.as_u16(), p.title);
        assert!(table.contains(&row), "the document's table lacks {row}");
    }
    let statuses: std::collections::HashSet<String> = ProblemType::ALL
        .iter()
        .map(|p| p.status.as_u16().to_string())
        .collect();
    let mut named = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            for (code, response) in responses {
                if response["content"]["application/problem+json"].is_null() {
                    continue;
                }
                assert!(
                    statuses.contains(code),
                    "{method} {path}: {code} is the status of no problem type"
                );
                let description = response["description"].as_str().unwrap_or("");
                let mut slugs: Vec<&str> = ProblemType::ALL.iter().map(|p| p.slug).collect();
                slugs.dedup();
                for slug in slugs {
                    if description.contains(&format!("`{slug}`")) {
                        named += 1;
                        assert!(
                            ProblemType::ALL
                                .iter()
                                .any(|p| p.slug == slug && p.status.as_u16().to_string() == *code),
                            "{method} {path}: `{slug}` is documented under {code}, a status it \
                             never has"
                        );
                    }
                }
            }
        }
    }
    assert!(named >= 10, "only {named} problem types named in responses");
}

/// Two answers that share a schema name would silently share a schema in the
/// document: each 202 of a trigger names its own body.
#[test]
fn each_accepted_answer_documents_its_own_body() {
    let spec: serde_json::Value = serde_json::to_value(efs_iam::http::openapi()).unwrap();
    let body_of = |path: &str| {
        let reference = spec["paths"][path]["post"]["responses"]["202"]["content"]
            ["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        spec["components"]["schemas"][&reference]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    let reconcile = body_of("/sync/portals/{portal_id}/reconcile");
    assert!(reconcile.contains(&"run_id".to_owned()), "{reconcile:?}");
    let run = body_of("/sync/unassignments/run");
    assert!(run.contains(&"triggered".to_owned()), "{run:?}");
    let job = body_of("/sync/portals/{portal_id}/users");
    assert!(job.contains(&"job_id".to_owned()), "{job:?}");
}

/// The public documents cost little to serve: gzip'ed once, cacheable, and a repeat
/// with the `ETag` gets a bodiless 304 (SECURITY.md §5: no amplifier).
#[tokio::test]
async fn the_public_documents_are_compressed_and_cacheable() {
    use std::io::Read;
    let app = spawn_app().await;
    for path in ["/api-docs/openapi.json", "/swagger-ui/swagger-ui-bundle.js"] {
        let plain = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{path}");
        let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
        assert!(plain.headers()["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age="));
        let plain = plain.bytes().await.unwrap();

        let zipped = app
            .client
            .get(app.url(path))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        let zipped = zipped.bytes().await.unwrap();
        assert!(
            zipped.len() * 3 < plain.len(),
            "{path}: {} of {}",
            zipped.len(),
            plain.len()
        );
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&zipped[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain, "{path}");

        let again = app
            .client
            .get(app.url(path))
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
        assert!(again.bytes().await.unwrap().is_empty());
    }
    let missing = app
        .client
        .get(app.url("/swagger-ui/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}
