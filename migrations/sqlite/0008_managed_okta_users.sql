-- The Okta users efs-iam manages, creation marks and bulk adoption; see
-- migrations/mysql/0008 for what each column means.
CREATE TABLE IF NOT EXISTS efs_iam_managed_okta_user (
	okta_user_id BLOB NOT NULL PRIMARY KEY,
	origin TEXT NOT NULL,
	managed_by TEXT NOT NULL,
	managed_at DATETIME NOT NULL,
	login TEXT NULL DEFAULT NULL
);

CREATE TABLE IF NOT EXISTS efs_iam_okta_user_creation (
	login_key TEXT NOT NULL PRIMARY KEY,
	started_at DATETIME NOT NULL
);

CREATE TABLE IF NOT EXISTS efs_iam_adoption_run (
	id TEXT NOT NULL PRIMARY KEY,
	dry_run INTEGER NOT NULL,
	state TEXT NOT NULL,
	requested_by TEXT NOT NULL,
	created_at DATETIME NOT NULL,
	collected_at DATETIME NULL DEFAULT NULL,
	finished_at DATETIME NULL DEFAULT NULL,
	locked_by TEXT NULL DEFAULT NULL,
	locked_until DATETIME NULL DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS efs_iam_adoption_run_state ON efs_iam_adoption_run (state, created_at);

CREATE TABLE IF NOT EXISTS efs_iam_adoption_item (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	run_id TEXT NOT NULL,
	okta_user_id BLOB NOT NULL,
	state TEXT NOT NULL,
	reason TEXT NULL,
	login TEXT NULL DEFAULT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at DATETIME NULL DEFAULT NULL,
	locked_by TEXT NULL DEFAULT NULL,
	locked_until DATETIME NULL DEFAULT NULL,
	finished_at DATETIME NULL DEFAULT NULL,
	UNIQUE (run_id, okta_user_id)
);
CREATE INDEX IF NOT EXISTS efs_iam_adoption_item_run_state ON efs_iam_adoption_item (run_id, state, id);
CREATE INDEX IF NOT EXISTS efs_iam_adoption_item_state ON efs_iam_adoption_item (state, id);
