//! The one set of HTTP helpers: any test server with a client and a base URL gets
//! `get`, `put`, `post`, `patch`, `delete` answering `(status, parsed body)`.

use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

/// A running service a test talks to.
#[allow(async_fn_in_trait)]
pub trait Api {
    fn client(&self) -> &reqwest::Client;
    /// The absolute URL of `path`.
    fn url(&self, path: &str) -> String;

    /// Sends `body` as JSON (or nothing) and returns status and parsed body.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.client().request(method, self.url(path));
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request")).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }
}

/// Status and body of an answer: JSON parsed, anything else as a string, `null` when
/// empty.
pub async fn read(res: Response) -> (StatusCode, Value) {
    let status = res.status();
    let bytes = res.bytes().await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

/// Asserts a problem document of the given status and type slug; returns the field of
/// each entry of `errors`, `""` for an entry that names none.
#[track_caller]
pub fn assert_problem(
    got: &(reqwest::StatusCode, serde_json::Value),
    status: u16,
    slug: &str,
) -> Vec<String> {
    let (code, body) = got;
    assert_eq!(code.as_u16(), status, "unexpected status, body: {body}");
    assert_eq!(
        body["type"],
        format!("urn:efs-iam:problem:{slug}"),
        "body: {body}"
    );
    assert_eq!(body["status"], status, "body: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "body: {body}"
    );
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
