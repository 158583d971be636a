-- efs-iam's sync-engine tables; see migrations/mysql/0004 for what each column means.
CREATE TABLE IF NOT EXISTS efs_iam_sync_job (
	id TEXT NOT NULL PRIMARY KEY,
	portal_id INTEGER NOT NULL,
	total INTEGER NOT NULL,
	created_at DATETIME NOT NULL,
	finished_at DATETIME NULL DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS efs_iam_sync_job_finished_at ON efs_iam_sync_job (finished_at);

CREATE TABLE IF NOT EXISTS efs_iam_sync_job_item (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	job_id TEXT NOT NULL REFERENCES efs_iam_sync_job (id) ON DELETE CASCADE,
	seq INTEGER NOT NULL,
	user_id INTEGER NOT NULL,
	profile TEXT NOT NULL,
	state TEXT NOT NULL DEFAULT 'pending',
	outcome TEXT NULL DEFAULT NULL,
	okta_user_id TEXT NULL DEFAULT NULL,
	error_type TEXT NULL DEFAULT NULL,
	error TEXT NULL,
	error_field TEXT NULL DEFAULT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt_at DATETIME NULL DEFAULT NULL,
	locked_by TEXT NULL DEFAULT NULL,
	locked_until DATETIME NULL DEFAULT NULL,
	finished_at DATETIME NULL DEFAULT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS efs_iam_sync_job_item_job_seq ON efs_iam_sync_job_item (job_id, seq);
CREATE INDEX IF NOT EXISTS efs_iam_sync_job_item_due ON efs_iam_sync_job_item (state, next_attempt_at);

CREATE TABLE IF NOT EXISTS efs_iam_sync_lock (
	name TEXT NOT NULL PRIMARY KEY,
	locked_by TEXT NOT NULL,
	locked_until DATETIME NOT NULL
);
