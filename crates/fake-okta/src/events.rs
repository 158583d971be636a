//! Okta Event Hooks: the fake tells a registered endpoint about changes made in its
//! "Admin Console" (the [`FakeOkta`](crate::FakeOkta) state helpers), as Okta does.
//!
//! What Okta does, and so the fake: a hook has a URL and one authentication header
//! (name and secret) sent with every request. Verification is a `GET` carrying
//! `X-Okta-Verification-Challenge`, answered `{"verification": <the same value>}`.
//! Deliveries are `POST`s of an envelope (`eventType: com.okta.event_hook`,
//! `cloudEventsVersion: 0.1`, `data.events[]`, each a System Log event with `uuid`,
//! `published`, `eventType`, `actor`, `target[]`). A delivery not answered 2xx within
//! 3 s is retried once; after that Okta gives up (and logs `event_hook.delivery`).
//! Events may arrive more than once and out of order: the receiver must not care.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A registered event hook.
#[derive(Debug, Clone)]
pub struct EventHook {
    pub url: String,
    /// The authentication header's name (Okta's Admin Console calls it
    /// "Authentication field"), e.g. `Authorization`.
    pub auth_header: String,
    pub secret: String,
    /// Wait before the one retry of a failed delivery (Okta's is not documented; the
    /// fake's default is short so that tests do not wait).
    pub retry_after: Duration,
}

impl EventHook {
    pub fn new(url: impl Into<String>, auth_header: &str, secret: &str) -> Self {
        Self {
            url: url.into(),
            auth_header: auth_header.to_owned(),
            secret: secret.to_owned(),
            retry_after: Duration::from_millis(200),
        }
    }
}

/// One delivery as the fake made it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `uuid`s of the events it carried.
    pub events: Vec<String>,
    /// Each attempt's answer: the status, or `None` for no answer within 3 s.
    pub attempts: Vec<Option<u16>>,
}

impl Delivery {
    /// Whether an attempt was answered 2xx.
    pub fn delivered(&self) -> bool {
        self.attempts
            .iter()
            .any(|a| a.is_some_and(|s| (200..300).contains(&s)))
    }
}

#[derive(Default)]
pub(crate) struct Events {
    hook: Option<EventHook>,
    queue: Option<mpsc::UnboundedSender<Vec<Value>>>,
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
    pub pending: Arc<std::sync::atomic::AtomicUsize>,
}

impl Events {
    /// Registers the hook and starts its delivery task (deliveries go out one after
    /// the other, as a single Okta hook's do).
    pub fn register(&mut self, hook: EventHook, base_url: &str) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<Value>>();
        let deliveries = self.deliveries.clone();
        let pending = self.pending.clone();
        let source = format!(
            "{base_url}/api/v1/eventHooks/who{}",
            crate::ids::random_alnum(17)
        );
        let task_hook = hook.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .expect("a client");
            while let Some(events) = rx.recv().await {
                let envelope = json!({
                    "eventType": "com.okta.event_hook",
                    "eventTypeVersion": "1.0",
                    "cloudEventsVersion": "0.1",
                    "source": source,
                    "eventId": uuid::Uuid::new_v4().to_string(),
                    "data": {"events": events},
                    "eventTime": crate::ids::timestamp(&chrono::Utc::now()),
                    "contentType": "application/json",
                });
                let uuids = events
                    .iter()
                    .filter_map(|e| e["uuid"].as_str().map(str::to_owned))
                    .collect();
                let mut delivery = Delivery {
                    events: uuids,
                    attempts: Vec::new(),
                };
                for attempt in 0..2 {
                    if attempt > 0 {
                        tokio::time::sleep(task_hook.retry_after).await;
                    }
                    let answer = client
                        .post(&task_hook.url)
                        .header(task_hook.auth_header.as_str(), task_hook.secret.as_str())
                        .header("Accept", "application/json")
                        .json(&envelope)
                        .send()
                        .await
                        .ok()
                        .map(|r| r.status().as_u16());
                    delivery.attempts.push(answer);
                    if answer.is_some_and(|s| (200..300).contains(&s)) {
                        break;
                    }
                }
                deliveries.lock().unwrap().push(delivery);
                pending.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        self.hook = Some(hook);
        self.queue = Some(tx);
    }

    pub fn hook(&self) -> Option<&EventHook> {
        self.hook.as_ref()
    }

    /// Queues one delivery of `events` (nothing without a hook).
    pub fn deliver(&self, events: Vec<Value>) {
        if let Some(queue) = &self.queue {
            self.pending
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = queue.send(events);
        }
    }
}

/// One System Log event as an event hook carries it.
pub fn event(event_type: &str, targets: Vec<Value>) -> Value {
    let display = match event_type {
        "user.lifecycle.deactivate" => "Deactivate Okta user",
        "user.lifecycle.suspend" => "Suspend Okta user",
        "user.lifecycle.unsuspend" => "Unsuspend Okta user",
        "user.lifecycle.reactivate" => "Reactivate Okta user",
        "user.lifecycle.activate" => "Activate Okta user",
        "user.lifecycle.delete.initiated" => "Delete Okta user",
        "group.user_membership.add" => "Add user to group membership",
        "group.user_membership.remove" => "Remove user from group membership",
        "user.account.update_profile" => "Update user profile for Okta",
        _ => "Okta event",
    };
    json!({
        "uuid": uuid::Uuid::new_v4().to_string(),
        "published": crate::ids::timestamp(&chrono::Utc::now()),
        "eventType": event_type,
        "version": "0",
        "displayMessage": display,
        "severity": "INFO",
        "client": {"userAgent": null, "zone": "null", "device": "Computer", "id": null,
                   "ipAddress": "203.0.113.7", "geographicalContext": null},
        "device": null,
        "actor": {"id": "00uADMIN000000000000", "type": "User",
                  "alternateId": "admin@example.com", "displayName": "Okta Admin",
                  "detailEntry": null},
        "outcome": {"result": "SUCCESS", "reason": null},
        "target": targets,
        "transaction": {"type": "WEB", "id": crate::ids::random_alnum(27), "detail": {}},
        "debugContext": {"debugData": {}},
        "legacyEventType": null,
        "authenticationContext": {"authenticationStep": 0, "externalSessionId": crate::ids::random_alnum(25)},
        "securityContext": {},
        "insertionTimestamp": null
    })
}

/// A user as an event target.
pub fn user_target(id: &str, login: &str, display_name: &str) -> Value {
    json!({"id": id, "type": "User", "alternateId": login, "displayName": display_name,
           "detailEntry": null})
}

/// A group as an event target (Okta's `alternateId` for groups is "unknown").
pub fn group_target(id: &str, name: &str) -> Value {
    json!({"id": id, "type": "UserGroup", "alternateId": "unknown", "displayName": name,
           "detailEntry": null})
}
