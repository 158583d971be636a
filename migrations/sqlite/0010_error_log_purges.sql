-- Error-log purges; see migrations/mysql/0010 for what each column means.
CREATE TABLE IF NOT EXISTS efs_iam_error_log_purge (
	id TEXT NOT NULL PRIMARY KEY,
	purge_before DATETIME NOT NULL,
	requested_by TEXT NOT NULL,
	state TEXT NOT NULL,
	created_at DATETIME NOT NULL,
	started_at DATETIME NULL DEFAULT NULL,
	finished_at DATETIME NULL DEFAULT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	deleted INTEGER NOT NULL DEFAULT 0,
	locked_by TEXT NULL DEFAULT NULL,
	locked_until DATETIME NULL DEFAULT NULL,
	error TEXT NULL
);
CREATE INDEX IF NOT EXISTS efs_iam_error_log_purge_state ON efs_iam_error_log_purge (state, created_at);
