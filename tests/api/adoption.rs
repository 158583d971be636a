//! Adopting an existing EFS database: the seed's tables with legacy rows (duplicates,
//! NULLs, short uuids) next to EFS's own `users`/`panelists`. efs-iam starts on it,
//! serves every row, and changes none of the seed's data.

use std::sync::Arc;

use efs_iam::storage::SqlStore;
use serde_json::{json, Value};
use sqlx::{MySqlPool, Row};

use crate::common::{assert_problem, Api};
use crate::common::{options, spawn_app_on, TestDb};

/// The schema document's DDL as EFS has it (the queue table as far as the document
/// goes), plus EFS core tables with more columns than efs-iam's stand-ins.
const LEGACY_SCHEMA: &[&str] = &[
    "CREATE TABLE `users` (`uid` INT(11) NOT NULL AUTO_INCREMENT, `login` VARCHAR(100) NOT NULL, PRIMARY KEY (`uid`)) COLLATE='utf8_general_ci' ENGINE=InnoDB",
    "CREATE TABLE `panelists` (`uid` INT(11) NOT NULL AUTO_INCREMENT, `email` VARCHAR(255) NULL, PRIMARY KEY (`uid`)) COLLATE='utf8_general_ci' ENGINE=InnoDB",
    "CREATE TABLE `iam_error_log` (`id` INT(11) NOT NULL AUTO_INCREMENT, `created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, `message` TEXT NULL, `status_code` SMALLINT(3) NOT NULL DEFAULT '0', `trace` LONGTEXT NULL, `error_code` VARCHAR(36) NOT NULL DEFAULT '', PRIMARY KEY (`id`)) COLLATE='utf8_general_ci' ENGINE=InnoDB",
    "CREATE TABLE `iam_portal_settings` (`id` INT(11) NOT NULL AUTO_INCREMENT, `portal_id` INT(11) NOT NULL, `key` VARCHAR(50) NULL DEFAULT NULL, `value` VARCHAR(255) NULL DEFAULT NULL, PRIMARY KEY (`id`), INDEX `id` (`id`), INDEX `portal_id` (`portal_id`)) COLLATE='utf8_general_ci' ENGINE=InnoDB",
    "CREATE TABLE `iam_portal_user_reference` (`id` INT(11) NOT NULL AUTO_INCREMENT, `portal_id` INT(11) NULL DEFAULT NULL, `user_id` INT(11) NULL DEFAULT NULL, `uuid` BINARY(20) NULL DEFAULT NULL, `created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, `updated_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, `status` TINYINT(4) NULL DEFAULT NULL, `has_data_changes` TINYINT(1) NULL DEFAULT '0', PRIMARY KEY (`id`), INDEX `id` (`id`), INDEX `user_id` (`user_id`), INDEX `portal_id` (`portal_id`), INDEX `uuid` (`uuid`), INDEX `status` (`status`), INDEX `has_data_changes` (`has_data_changes`), CONSTRAINT `user_id_panelists_uid_idx` FOREIGN KEY (`user_id`) REFERENCES `panelists` (`uid`) ON UPDATE CASCADE ON DELETE CASCADE) COLLATE='utf8_general_ci' ENGINE=InnoDB",
    "CREATE TABLE `iam_token_data` (`session_id` VARBINARY(50) NOT NULL, `idp_response` LONGTEXT NULL, INDEX `session_id` (`session_id`)) COLLATE='utf8_general_ci' ENGINE=InnoDB",
    "CREATE TABLE `iam_user_reference` (`id` INT(11) NOT NULL AUTO_INCREMENT, `user_id` INT(11) NULL DEFAULT NULL, `uuid` BINARY(20) NULL DEFAULT NULL, `created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, `updated_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`id`), INDEX `id` (`id`), INDEX `user_id` (`user_id`), INDEX `uuid` (`uuid`), CONSTRAINT `user_id_users_uid_idx` FOREIGN KEY (`user_id`) REFERENCES `users` (`uid`) ON UPDATE CASCADE ON DELETE CASCADE) COLLATE='utf8_general_ci' ENGINE=InnoDB",
    "CREATE TABLE `iam_portal_user_group_unassignment_queue` (`id` INT(11) NOT NULL AUTO_INCREMENT, `user_id` INT(11) NULL DEFAULT NULL, `uuid` BINARY(20) NULL DEFAULT NULL, `email` VARCHAR(255) NULL DEFAULT NULL, `created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (`id`)) COLLATE='utf8_general_ci' ENGINE=InnoDB",
];

const LEGACY_ROWS: &[&str] = &[
    "INSERT INTO users (uid, login) VALUES (1, 'admin1'), (2, 'admin2')",
    "INSERT INTO panelists (uid, email) VALUES (10, 'a@x'), (11, 'b@x'), (12, 'c@x')",
    // Duplicate keys (no unique index), a NULL value, a NULL key.
    "INSERT INTO iam_portal_settings (id, portal_id, `key`, value) VALUES (1, 5, 'okta_client_id', 'old-client'), (2, 5, 'okta_client_id', 'new-client'), (3, 5, 'okta_group_id', NULL), (4, 5, NULL, 'orphan'), (5, 6, 'okta_client_id', 'p6')",
    // Short uuids are zero-padded by BINARY(20); NULL status, unknown status 7, NULL flag.
    "INSERT INTO iam_portal_user_reference (id, portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes) VALUES (1, 5, 10, '00uSHORT', '2024-01-02 03:04:05', '2024-01-02 03:04:05', 1, 0), (2, 5, 11, '00ub0oNGTSWTBKOLGLNR', '2024-01-02 03:04:05', '2024-02-02 03:04:05', NULL, NULL), (3, 6, 10, '00uSHORT', '2024-01-02 03:04:05', '2024-01-02 03:04:05', 7, 1), (4, NULL, NULL, NULL, '2024-01-02 03:04:05', '2024-01-02 03:04:05', NULL, 0)",
    "INSERT INTO iam_user_reference (id, user_id, uuid, created_at, updated_at) VALUES (1, 1, '00uSHORT', '2023-05-06 07:08:09', '2023-05-06 07:08:09'), (2, NULL, '00uNOUSER', '2023-05-06 07:08:09', '2023-05-06 07:08:09')",
    // The same session id twice (no key), a NULL response, a non-JSON response.
    "INSERT INTO iam_token_data (session_id, idp_response) VALUES ('sess-dup', '{\"access_token\":\"older\"}'), ('sess-dup', '{\"access_token\":\"newer\"}'), ('sess-null', NULL), ('sess-text', 'not json')",
    "INSERT INTO iam_error_log (id, created_at, message, status_code, trace, error_code) VALUES (1, '2022-01-01 00:00:00', NULL, 0, NULL, ''), (2, '2022-01-02 00:00:00', 'Rate limit exceeded', 429, 'GET /api/v1/users', 'E0000047')",
    "INSERT INTO iam_portal_user_group_unassignment_queue (id, user_id, uuid, email, created_at) VALUES (1, 99, '00uGONE', 'gone@x', '2024-03-03 00:00:00')",
];

/// The seed's columns of every table, as text, in a stable order.
async fn snapshot(pool: &MySqlPool) -> Vec<String> {
    let queries = [
        "SELECT CONCAT_WS('|', id, portal_id, IFNULL(`key`, 'NULL'), IFNULL(value, 'NULL')) FROM iam_portal_settings ORDER BY id",
        "SELECT CONCAT_WS('|', id, IFNULL(portal_id, 'NULL'), IFNULL(user_id, 'NULL'), IFNULL(HEX(uuid), 'NULL'), created_at, updated_at, IFNULL(status, 'NULL'), IFNULL(has_data_changes, 'NULL')) FROM iam_portal_user_reference ORDER BY id",
        "SELECT CONCAT_WS('|', id, IFNULL(user_id, 'NULL'), HEX(uuid), created_at, updated_at) FROM iam_user_reference ORDER BY id",
        "SELECT CONCAT_WS('|', HEX(session_id), IFNULL(idp_response, 'NULL')) FROM iam_token_data ORDER BY session_id, idp_response",
        "SELECT CONCAT_WS('|', id, created_at, IFNULL(message, 'NULL'), status_code, IFNULL(trace, 'NULL'), error_code) FROM iam_error_log ORDER BY id",
        "SELECT CONCAT_WS('|', id, user_id, HEX(uuid), email, created_at) FROM iam_portal_user_group_unassignment_queue ORDER BY id",
        "SELECT CONCAT_WS('|', uid, login) FROM users ORDER BY uid",
        "SELECT CONCAT_WS('|', uid, email) FROM panelists ORDER BY uid",
    ];
    let mut out = Vec::new();
    for q in queries {
        for row in sqlx::query(q).fetch_all(pool).await.unwrap() {
            out.push(row.get::<String, _>(0));
        }
    }
    out
}

#[tokio::test]
async fn existing_efs_database_is_adopted_without_loss() {
    let Some(empty) = TestDb::empty_mysql().await else {
        return;
    };
    let raw = MySqlPool::connect(&empty.0).await.unwrap();
    for stmt in LEGACY_SCHEMA.iter().chain(LEGACY_ROWS) {
        sqlx::query(stmt).execute(&raw).await.unwrap();
    }
    let before = snapshot(&raw).await;
    assert_eq!(before.len(), 5 + 4 + 2 + 4 + 2 + 1 + 2 + 3);

    // Start efs-iam on it, migrations included; twice, as a restart would.
    for _ in 0..2 {
        let store = SqlStore::connect(&empty.0, &options()).await.unwrap();
        store.migrate().await.unwrap();
    }
    assert_eq!(
        snapshot(&raw).await,
        before,
        "adoption changed the seed's data"
    );

    let store = Arc::new(SqlStore::connect(&empty.0, &options()).await.unwrap());
    // Adopting: EFS's plaintext token rows are served until re-encrypt seals them.
    let app = spawn_app_on(TestDb::from_mysql(empty, store), |s| {
        s.tokens.token_accept_legacy_plaintext = true
    })
    .await;
    assert_eq!(app.get("/health/ready").await.0, 200);

    // Settings: the newest duplicate wins; NULL values kept; NULL keys not addressable.
    let (_, body) = app.get("/api/v1/portals/5/settings").await;
    assert_eq!(
        body["settings"],
        json!({"okta_client_id": "new-client", "okta_group_id": null})
    );
    assert_eq!(
        app.get("/api/v1/portals/5/settings/okta_client_id").await.1["value"],
        "new-client"
    );
    assert_eq!(
        app.get("/api/v1/portals/6/settings/okta_client_id").await.1["value"],
        "p6"
    );

    // Portal user references, including NULLs and an unknown status code.
    let (_, r) = app.get("/api/v1/portals/5/user-references/10").await;
    assert_eq!(
        (
            r["okta_user_id"].clone(),
            r["status"].clone(),
            r["created_at"].clone()
        ),
        (
            json!("00uSHORT"),
            json!("synced"),
            json!("2024-01-02T03:04:05Z")
        )
    );
    let (_, r) = app.get("/api/v1/portals/5/user-references/11").await;
    assert_eq!(
        (
            r["status"].clone(),
            r["status_code"].clone(),
            r["has_data_changes"].clone()
        ),
        (Value::Null, Value::Null, Value::Null)
    );
    assert_eq!(r["updated_at"], "2024-02-02T03:04:05Z");
    let (_, r) = app.get("/api/v1/portals/6/user-references/10").await;
    assert_eq!(
        (
            r["status"].clone(),
            r["status_code"].clone(),
            r["has_data_changes"].clone()
        ),
        (Value::Null, json!(7), json!(true))
    );
    let (_, page) = app.get("/api/v1/portals/5/user-references").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);

    // Reverse lookup across both tables, including a reference with a NULL user.
    let (_, refs) = app.get("/api/v1/okta-users/00uSHORT/references").await;
    assert_eq!(refs["admin_users"].as_array().unwrap().len(), 1);
    assert_eq!(refs["admin_users"][0]["user_id"], 1);
    assert_eq!(refs["portal_users"].as_array().unwrap().len(), 2);
    let (_, refs) = app.get("/api/v1/okta-users/00uNOUSER/references").await;
    assert_eq!(refs["admin_users"][0]["user_id"], Value::Null);
    assert_eq!(
        app.get("/api/v1/user-references/1").await.1["okta_user_id"],
        "00uSHORT"
    );

    // Tokens: the later of two rows for one session; NULL and non-JSON served as is.
    assert_eq!(
        app.get("/api/v1/sessions/sess-dup/token").await.1["idp_response"],
        json!({"access_token": "newer"})
    );
    assert_eq!(
        app.get("/api/v1/sessions/sess-null/token").await.1["idp_response"],
        Value::Null
    );
    assert_eq!(
        app.get("/api/v1/sessions/sess-text/token").await.1["idp_response"],
        "not json"
    );

    // Error log and the legacy queue row (no portal: listed nowhere per portal, kept).
    let (_, log) = app.get("/api/v1/errors").await;
    let ids: Vec<i64> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![2, 1]);
    assert_eq!(
        app.get("/api/v1/errors/2").await.1["error_code"],
        "E0000047"
    );
    assert_eq!(snapshot(&raw).await, before, "reading changed data");

    // Writes on legacy duplicates: every duplicate follows, nothing is dropped.
    assert_eq!(
        app.put(
            "/api/v1/portals/5/settings/okta_client_id",
            json!({"value": "rotated"})
        )
        .await
        .0,
        200
    );
    let values: Vec<String> = sqlx::query_scalar("SELECT value FROM iam_portal_settings WHERE portal_id = 5 AND `key` = 'okta_client_id' ORDER BY id")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(values, vec!["rotated", "rotated"]);
    assert_eq!(
        app.put(
            "/api/v1/sessions/sess-dup/token",
            json!({"access_token": "fresh"})
        )
        .await
        .0,
        204
    );
    // The write replaces both raw duplicates with one row under the keyed hash of the
    // session id (the token vault stores no raw session ids), sealed.
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM iam_token_data WHERE session_id = 'sess-dup'")
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(n, 0, "a write replaces the session's raw duplicates");
    let rows: Vec<(Vec<u8>, String)> = sqlx::query_as(
        "SELECT session_id, idp_response FROM iam_token_data WHERE LENGTH(session_id) = 33",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].1.starts_with("efs1:") && !rows[0].1.contains("fresh"));
    assert_eq!(
        app.get("/api/v1/sessions/sess-dup/token").await.1["idp_response"],
        json!({"access_token": "fresh"})
    );
    // A reference to a panelist EFS does not have is refused by the seed's foreign key.
    app.db.manage_okta_users(&["00u4040"]).await;
    let got = app
        .put(
            "/api/v1/portals/5/user-references/4040",
            json!({"okta_user_id": "00u4040", "status": "synced"}),
        )
        .await;
    assert_eq!(
        assert_problem(&got, 422, "unknown-efs-user"),
        vec!["user_id"]
    );
    raw.close().await;
}
