//! Swagger UI as a developer uses it, in headless Chromium driven over the DevTools
//! protocol: every tag and operation listed, Authorize taking a pasted bearer token,
//! and "Try it out" on a reference lookup answering 200 with the JSON body. The last
//! screen is kept as `target/artifacts/swagger-ui.png` (not committed).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{spawn_app_on, Api, TestDb};
use crate::tool_available;

const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

struct Chromium {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: String,
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chromium {
    fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--remote-debugging-port=0",
                "--window-size=1400,2000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().unwrap();
        let mut devtools = None;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                devtools = Some(url.trim().to_owned());
                break;
            }
        }
        let devtools = devtools.expect("chromium prints its DevTools address");
        Self {
            child,
            _profile: profile,
            devtools,
        }
    }

    /// The DevTools WebSocket of the first page.
    async fn page(&self) -> Page {
        let http = self
            .devtools
            .replacen("ws://", "http://", 1)
            .split("/devtools/")
            .next()
            .unwrap()
            .to_owned();
        let targets: Value = reqwest::get(format!("{http}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_owned();
        let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Page { socket, next: 0 }
    }
}

struct Page {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
}

impl Page {
    /// Sends a DevTools command and waits for its answer (events in between are not
    /// needed by this test and are skipped).
    async fn send(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let message = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap();
        while let Some(msg) = self.socket.next().await {
            let Message::Text(text) = msg.unwrap() else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                assert!(answer.get("error").is_none(), "{method}: {answer}");
                return answer["result"].clone();
            }
        }
        panic!("DevTools closed the connection");
    }

    /// Evaluates JavaScript in the page; its (JSON) value.
    async fn eval(&mut self, script: &str) -> Value {
        let result = self
            .send(
                "Runtime.evaluate",
                json!({"expression": script, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{script}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `script` evaluates to something truthy; its value.
    async fn wait_for(&mut self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(script).await;
            if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
                return v;
            }
            if started.elapsed() > Duration::from_secs(20) {
                self.screenshot("swagger-ui-failed.png").await;
                panic!("timed out waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        use base64::Engine;
        let shot = self
            .send(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

/// Types into a React-controlled input the way a user does (Swagger UI ignores a value
/// set without an input event).
fn type_into(selector: &str, text: &str) -> String {
    format!(
        r#"(() => {{
            const input = document.querySelector({selector});
            if (!input) return false;
            const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
            set.call(input, {text});
            input.dispatchEvent(new Event('input', {{ bubbles: true }}));
            return true;
        }})()"#,
        selector = serde_json::to_string(selector).unwrap(),
        text = serde_json::to_string(text).unwrap(),
    )
}

fn click(selector: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({}); if (!e) return false; e.click(); return true; }})()",
        serde_json::to_string(selector).unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_authorizes_and_tries_a_lookup_in_chromium() {
    if !tool_available("chromium") {
        return;
    }
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        s.auth.hs256_secret = Some(SECRET.to_owned().into());
        s.auth.issuer = Some("efs-admin".into());
        s.auth.audience = Some("efs-iam".into());
    })
    .await;
    let token = efs_iam::auth::mint_hs256(
        &SECRET.to_owned().into(),
        "efs-admin",
        "efs-iam",
        "swagger-ui-test",
        &["iam:read", "iam:write"],
        Duration::from_secs(600),
    )
    .unwrap();
    // A reference to look up, to an Okta user efs-iam manages.
    app.db.manage_okta_users(&["00ub0oNGTSWTBKOLGLNR"]).await;
    let res = app
        .client
        .put(app.url("/api/v1/user-references/42"))
        .bearer_auth(&token)
        .json(&json!({"okta_user_id": "00ub0oNGTSWTBKOLGLNR"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let spec: Value = app.get("/api-docs/openapi.json").await.1;
    let mut operations = 0;
    for item in spec["paths"].as_object().unwrap().values() {
        operations += ["get", "put", "post", "delete", "patch"]
            .iter()
            .filter(|m| item.get(**m).is_some())
            .count();
    }
    let tags: Vec<String> = spec["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();

    let chromium = Chromium::start();
    let mut page = chromium.page().await;
    page.send("Page.enable", json!({})).await;
    page.send("Page.navigate", json!({"url": app.url("/swagger-ui/")}))
        .await;
    page.wait_for(
        "the operations",
        &format!("document.querySelectorAll('.opblock').length >= {operations}"),
    )
    .await;
    let shown = page
        .eval("document.querySelectorAll('.opblock').length")
        .await;
    assert_eq!(shown, json!(operations), "every operation is listed");
    let shown_tags = page
        .eval("[...document.querySelectorAll('.opblock-tag')].map(e => e.getAttribute('data-tag'))")
        .await;
    assert_eq!(
        shown_tags,
        json!(tags),
        "every tag, in the document's order"
    );
    let title = page
        .eval("document.querySelector('.info .title')?.textContent")
        .await;
    assert!(title.as_str().unwrap().contains("efs-iam"), "{title}");

    // Authorize with a pasted bearer token.
    assert_eq!(page.eval(&click(".btn.authorize")).await, json!(true));
    page.wait_for(
        "the Authorize dialog",
        "!!document.querySelector('.modal-ux input')",
    )
    .await;
    let dialog = page
        .eval("document.querySelector('.modal-ux').innerText")
        .await;
    assert!(dialog.as_str().unwrap().contains("bearer"), "{dialog}");
    assert_eq!(
        page.eval(&type_into(".modal-ux input", &token)).await,
        json!(true)
    );
    assert_eq!(
        page.eval(&click(".modal-ux .auth-btn-wrapper .btn.modal-btn.auth"))
            .await,
        json!(true)
    );
    page.wait_for(
        "the token to be accepted",
        "document.querySelector('.modal-ux').innerText.includes('Logout')",
    )
    .await;
    page.eval(&click(".modal-ux .btn-done")).await;
    page.eval(&click(".modal-ux .close-modal")).await;

    // Try it out: the admin user reference lookup.
    let block = "#operations-user_references-get_admin_user_reference";
    assert_eq!(
        page.eval(&click(&format!("{block} .opblock-summary-control")))
            .await,
        json!(true),
        "the lookup is listed"
    );
    page.wait_for(
        "Try it out",
        &format!("!!document.querySelector('{block} .try-out__btn')"),
    )
    .await;
    page.eval(&click(&format!("{block} .try-out__btn"))).await;
    page.wait_for(
        "the parameter input",
        &format!("!!document.querySelector('{block} tr[data-param-name=\"user_id\"] input')"),
    )
    .await;
    page.eval(&type_into(
        &format!("{block} tr[data-param-name=\"user_id\"] input"),
        "42",
    ))
    .await;
    // Swagger UI takes parameter input through a debounced field.
    tokio::time::sleep(Duration::from_millis(800)).await;
    page.eval(&click(&format!("{block} .execute"))).await;
    let status = page
        .wait_for(
            "the answer",
            &format!(
                "document.querySelector('{block} .live-responses-table .response .response-col_status')?.innerText"
            ),
        )
        .await;
    let body = page
        .eval(&format!(
            "document.querySelector('{block} .live-responses-table .response .response-col_description pre')?.innerText"
        ))
        .await;
    let path = page.screenshot("swagger-ui.png").await;
    eprintln!("screenshot: {}", path.display());
    assert_eq!(status.as_str().unwrap().trim(), "200", "{body}");
    let body: Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
    assert_eq!(body["user_id"], 42);
    assert_eq!(body["okta_user_id"], "00ub0oNGTSWTBKOLGLNR");
    let curl = page
        .eval(&format!(
            "document.querySelector('{block} .curl-command')?.innerText"
        ))
        .await;
    assert!(
        curl.as_str()
            .unwrap()
            .contains("/api/v1/user-references/42")
            && curl.as_str().unwrap().contains("Authorization: Bearer"),
        "the request went to the served API with the token: {curl}"
    );
}
