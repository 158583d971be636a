-- Okta Event Hook deliveries; see migrations/mysql/0006 for what each column means.
CREATE TABLE IF NOT EXISTS efs_iam_okta_event (
	uuid TEXT NOT NULL PRIMARY KEY,
	event_type TEXT NOT NULL,
	published DATETIME NOT NULL,
	received_at DATETIME NOT NULL,
	payload TEXT NOT NULL,
	state TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at DATETIME NULL DEFAULT NULL,
	locked_by TEXT NULL DEFAULT NULL,
	locked_until DATETIME NULL DEFAULT NULL,
	processed_at DATETIME NULL DEFAULT NULL,
	outcome TEXT NULL
);
CREATE INDEX IF NOT EXISTS efs_iam_okta_event_state ON efs_iam_okta_event (state, published);

CREATE TABLE IF NOT EXISTS efs_iam_okta_event_watermark (
	okta_user_id TEXT NOT NULL,
	subject TEXT NOT NULL,
	published DATETIME NOT NULL,
	event_uuid TEXT NOT NULL,
	PRIMARY KEY (okta_user_id, subject)
);
