use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::common::TestApp;

/// Sends `body` as JSON (or nothing) and returns status and parsed body.
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    read(res).await
}

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

pub async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    call(app, Method::GET, path, None).await
}

pub async fn put(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, Method::PUT, path, Some(body)).await
}

pub async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, Method::POST, path, Some(body)).await
}

pub async fn patch(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, Method::PATCH, path, Some(body)).await
}

pub async fn delete(app: &TestApp, path: &str) -> (StatusCode, Value) {
    call(app, Method::DELETE, path, None).await
}

pub use crate::common::assert_problem;
