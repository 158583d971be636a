-- See migrations/mysql/0009. SQLite's TEXT keys compare exactly already (BINARY).
DELETE FROM efs_iam_okta_event_watermark
WHERE published > strftime('%Y-%m-%d %H:%M:%S', 'now', '+5 minutes');
