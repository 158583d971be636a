//! DPoP against a fake Okta whose service app requires it (Okta's default for API
//! Services apps since 2024): the nonce dance, one token for every call, renewal after
//! expiry and after Okta's nonce changes, a fresh proof on every retry, `htu` as Okta
//! compares it, and the fake refusing what Okta refuses (so these tests can fail).

use std::time::Duration;

use crate::okta_env::*;
use efs_iam::okta::{DpopKey, DpopMode, OktaAuth, OktaError, PrivateKeyJwt};
use fake_okta::{DpopProofSeen, FakeOkta, FakeOktaConfig, FaultKind, UserStatus};
use reqwest::{StatusCode, Url};
use serde_json::Value;

fn service_app(mode: DpopMode) -> OktaAuth {
    OktaAuth::PrivateKeyJwt(
        PrivateKeyJwt::from_pem(
            FakeOkta::TEST_CLIENT_ID,
            FakeOkta::test_client_private_key_pem(),
            Some("efs-iam-test".into()),
            vec![
                "okta.users.manage".into(),
                "okta.groups.manage".into(),
                "okta.roles.read".into(),
            ],
        )
        .unwrap()
        .with_dpop(mode, None),
    )
}

/// A fake whose app requires DPoP and takes no API token.
async fn dpop_okta(lifetime: Duration) -> FakeOkta {
    FakeOkta::start(FakeOktaConfig {
        api_token: None,
        require_dpop: true,
        access_token_lifetime: lifetime,
        ..FakeOktaConfig::default()
    })
    .await
}

fn proofs(fake: &FakeOkta, endpoint: &str) -> Vec<DpopProofSeen> {
    fake.dpop_proofs()
        .into_iter()
        .filter(|p| p.endpoint == endpoint)
        .collect()
}

fn distinct_jtis(proofs: &[DpopProofSeen]) -> bool {
    let jtis: std::collections::HashSet<&str> = proofs.iter().map(|p| p.jti.as_str()).collect();
    jtis.len() == proofs.len()
}

#[tokio::test]
async fn auto_follows_okta_into_dpop_and_one_token_serves_every_call() {
    let e = env_with(
        dpop_okta(Duration::from_secs(3600)).await,
        service_app(DpopMode::Auto),
        |_| {},
    )
    .await;
    let id = e.seed_user("dpop@example.com");
    let group = e.fake.create_group("DPoP panel");
    // Concurrent calls before any token: one fetch, the others wait for it.
    let calls: Vec<_> = (0..6).map(|_| e.okta.get_user(&id)).collect();
    for found in futures::future::join_all(calls).await {
        assert!(found.unwrap().is_some());
    }
    e.okta.add_group_member(&group, &id).await.unwrap();
    assert_eq!(e.okta.list_group_members(&group).await.unwrap().len(), 1);

    // No proof (auto), "header is missing"; a proof without nonce, use_dpop_nonce; then
    // the token.
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 3);
    let token = proofs(&e.fake, "token");
    assert_eq!(token.len(), 2, "{token:?}");
    assert!(token[0].nonce.is_none() && token[0].outcome.contains("requires nonce"));
    assert!(token[1].nonce.is_some() && token[1].outcome == "accepted");
    let api = proofs(&e.fake, "api");
    assert_eq!(api.len(), 8, "a proof per Management API request");
    assert!(api.iter().all(|p| p.outcome == "accepted"), "{api:?}");
    assert!(distinct_jtis(&api));
    for r in e.fake.requests() {
        if r.route.starts_with("/api/v1") {
            assert_eq!(r.auth_scheme.as_deref(), Some("DPoP"), "{}", r.path);
            assert!(
                r.status.is_some_and(|s| s < 300),
                "{} {:?}",
                r.path,
                r.status
            );
        }
    }
    let status = e.okta.status();
    assert_eq!(status.dpop, Some((DpopMode::Auto, true)));
    assert!(
        status.last_auth_failure.is_none(),
        "the challenges are routine"
    );
    assert!(e.errors().await.is_empty(), "{:?}", e.errors().await);
}

#[tokio::test]
async fn on_sends_a_proof_from_the_first_token_request() {
    let e = env_with(
        dpop_okta(Duration::from_secs(3600)).await,
        service_app(DpopMode::On),
        |_| {},
    )
    .await;
    let id = e.seed_user("on@example.com");
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 2);
}

#[tokio::test]
async fn tokens_are_renewed_after_expiry_and_after_okta_changes_its_nonce() {
    let e = env_with(
        dpop_okta(Duration::from_secs(2)).await,
        service_app(DpopMode::On),
        |_| {},
    )
    .await;
    let id = e.seed_user("renew@example.com");
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 2);

    // A rotated nonce: the previous one still works, so the renewal takes one request.
    e.fake.rotate_dpop_nonce();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 3);

    // An expired nonce: Okta says use_dpop_nonce with the new one, efs-iam asks again.
    e.fake.expire_dpop_nonce();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 5);
    let token = proofs(&e.fake, "token");
    assert_eq!(
        token
            .iter()
            .map(|p| p.outcome == "accepted")
            .collect::<Vec<_>>(),
        [false, true, true, false, true]
    );
    assert!(e.okta.last_auth_failure().is_none());
    assert!(
        e.fake.requests().iter().all(|r| r.status != Some(401)),
        "renewed before Okta refused a token"
    );
}

#[tokio::test]
async fn every_retry_carries_a_fresh_proof() {
    // A short rate-limit window, so the injected 429's reset is the window's own.
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        require_dpop: true,
        window: Duration::from_secs(1),
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, service_app(DpopMode::On), |_| {}).await;
    let id = e.seed_user("retry@example.com");
    e.okta.get_user(&id).await.unwrap().unwrap();
    let before = proofs(&e.fake, "api").len();
    e.fail_next_user_read(FaultKind::RateLimited {
        reset_after: Duration::from_millis(200),
    });
    e.fail_next_user_read(FaultKind::InternalServerError);
    // The fake burns the proof of each faulted request, as Okta does: a replay on the
    // retry would be refused "already been used".
    e.okta
        .get_user(&id)
        .await
        .unwrap()
        .expect("answered after the retries");
    let api = proofs(&e.fake, "api");
    assert_eq!(
        api.len() - before,
        1,
        "the faulted attempts never got checked"
    );
    assert_eq!(e.fake.request_count("GET", "/api/v1/users/{id}"), 4);
    assert!(api.iter().all(|p| p.outcome == "accepted"), "{api:?}");
}

#[tokio::test]
async fn htu_names_a_percent_encoded_path_as_okta_compares_it() {
    let e = env_with(
        dpop_okta(Duration::from_secs(3600)).await,
        service_app(DpopMode::On),
        |_| {},
    )
    .await;
    // A login with `@`, a space, `%` and `+` in the path: Okta decodes the path, so
    // `htu` carries `@` and `+` as they are and encodes only `%`, space, `"`, `#`.
    let odd = "o brien+x%y@example.com";
    assert!(e.okta.get_user_by_login(odd).await.unwrap().is_none());
    let api = proofs(&e.fake, "api");
    let last = api.last().unwrap();
    assert_eq!(last.outcome, "accepted", "{last:?}");
    assert!(
        last.htu
            .ends_with("/api/v1/users/o%20brien+x%25y@example.com"),
        "{}",
        last.htu
    );
    let sent = e.fake.requests().into_iter().last().unwrap();
    assert_eq!(sent.path, "/api/v1/users/o%20brien+x%25y@example.com");
}

#[tokio::test]
async fn off_against_an_app_that_requires_dpop_is_a_named_auth_failure() {
    let e = env_with(
        dpop_okta(Duration::from_secs(3600)).await,
        service_app(DpopMode::Off),
        |c| c.max_retries = 0,
    )
    .await;
    let err = e.okta.get_user("00u1").await.unwrap_err();
    let OktaError::Auth(api) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(api.error_code, "invalid_dpop_proof");
    assert!(
        api.summary.contains("EFS_IAM_OKTA_DPOP=off"),
        "{}",
        api.summary
    );
    let failure = e.okta.last_auth_failure().expect("a refusal is remembered");
    assert_eq!(failure.error_code, "invalid_dpop_proof");
    assert_eq!(e.okta.status().dpop, Some((DpopMode::Off, false)));
}

#[tokio::test]
async fn without_required_dpop_the_bearer_path_is_unchanged() {
    let fake = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        ..FakeOktaConfig::default()
    })
    .await;
    let e = env_with(fake, service_app(DpopMode::Auto), |_| {}).await;
    let id = e.seed_user("bearer@example.com");
    e.okta.get_user(&id).await.unwrap().unwrap();
    e.okta.get_user(&id).await.unwrap().unwrap();
    assert_eq!(e.fake.request_count("POST", "/oauth2/v1/token"), 1);
    assert!(e.fake.dpop_proofs().is_empty());
    for r in e.fake.requests() {
        assert!(r.header("dpop").is_none(), "{}", r.path);
        if r.route.starts_with("/api/v1") {
            assert_eq!(r.auth_scheme.as_deref(), Some("Bearer"));
        }
    }
    assert_eq!(e.okta.status().dpop, Some((DpopMode::Auto, false)));
    let scopes = e.okta.status().scopes.unwrap();
    assert!(scopes.missing.is_empty(), "{scopes:?}");
    assert_eq!(scopes.granted.unwrap().len(), 3);
}

// ---- the fake refuses what Okta refuses ------------------------------------------

/// A DPoP token from the fake, fetched by hand: the nonce dance with our own key.
async fn hand_made_token(fake: &FakeOkta, key: &DpopKey) -> String {
    let http = reqwest::Client::new();
    let url = Url::parse(&format!("{}/oauth2/v1/token", fake.base_url())).unwrap();
    let mut nonce: Option<String> = None;
    for _ in 0..2 {
        let proof = key.proof("POST", &url, nonce.as_deref(), None).unwrap();
        let res = http
            .post(url.clone())
            .header("DPoP", proof)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "okta.users.manage"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &fake.test_client_assertion()),
            ])
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::BAD_REQUEST {
            nonce = res
                .headers()
                .get("dpop-nonce")
                .map(|v| v.to_str().unwrap().to_owned());
            continue;
        }
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["token_type"], "DPoP");
        return body["access_token"].as_str().unwrap().to_owned();
    }
    panic!("no token after the nonce dance");
}

#[tokio::test]
async fn the_fake_refuses_a_reused_proof_a_wrong_htu_a_missing_ath_and_bearer() {
    let fake = dpop_okta(Duration::from_secs(3600)).await;
    let id = fake.create_user(
        "u@example.com",
        "u@example.com",
        "U",
        "V",
        UserStatus::Active,
    );
    let key = DpopKey::generate();
    let token = hand_made_token(&fake, &key).await;
    let url = Url::parse(&format!("{}/api/v1/users/{id}", fake.base_url())).unwrap();
    let http = reqwest::Client::new();
    let send = |scheme: &str, proof: Option<String>| {
        let mut r = http
            .get(url.clone())
            .header("authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        r.send()
    };
    let refusal = |res: &reqwest::Response| {
        res.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };

    let good = key.proof("GET", &url, None, Some(&token)).unwrap();
    let res = send("DPoP", Some(good.clone())).await.unwrap();
    assert_eq!(res.status(), 200);
    let res = send("DPoP", Some(good)).await.unwrap();
    assert_eq!(res.status(), 400);
    assert!(
        refusal(&res).contains("already been used"),
        "{}",
        refusal(&res)
    );
    assert!(
        res.text().await.unwrap().is_empty(),
        "Okta's refusal has no body"
    );

    let elsewhere = Url::parse(&format!("{}/api/v1/users/00uOTHER", fake.base_url())).unwrap();
    let res = send(
        "DPoP",
        Some(key.proof("GET", &elsewhere, None, Some(&token)).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    assert!(refusal(&res).contains("error=\"invalid_dpop_proof\""));
    assert!(refusal(&res).contains("'htu'"), "{}", refusal(&res));

    let res = send("DPoP", Some(key.proof("GET", &url, None, None).unwrap()))
        .await
        .unwrap();
    assert!(refusal(&res).contains("'ath'"), "{}", refusal(&res));

    let res = send("DPoP", None).await.unwrap();
    assert!(
        refusal(&res).contains("header is missing"),
        "{}",
        refusal(&res)
    );

    let stranger = DpopKey::generate();
    let res = send(
        "DPoP",
        Some(stranger.proof("GET", &url, None, Some(&token)).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    assert!(refusal(&res).contains("binding"), "{}", refusal(&res));

    let res = send("Bearer", None).await.unwrap();
    assert_eq!(res.status(), 401, "a bound token as Bearer");
    assert!(refusal(&res).contains("invalid_token"), "{}", refusal(&res));
}
