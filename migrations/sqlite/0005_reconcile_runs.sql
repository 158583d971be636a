-- Reconciliation runs; see migrations/mysql/0005 for what each column means.
CREATE TABLE IF NOT EXISTS efs_iam_reconcile_run (
	id TEXT NOT NULL PRIMARY KEY,
	portal_id INTEGER NOT NULL,
	dry_run INTEGER NOT NULL,
	kind TEXT NOT NULL,
	state TEXT NOT NULL,
	created_at DATETIME NOT NULL,
	started_at DATETIME NULL DEFAULT NULL,
	finished_at DATETIME NULL DEFAULT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	locked_by TEXT NULL DEFAULT NULL,
	locked_until DATETIME NULL DEFAULT NULL,
	report TEXT NULL,
	error_type TEXT NULL DEFAULT NULL,
	error TEXT NULL
);
CREATE INDEX IF NOT EXISTS efs_iam_reconcile_run_state ON efs_iam_reconcile_run (state, created_at);
CREATE INDEX IF NOT EXISTS efs_iam_reconcile_run_portal ON efs_iam_reconcile_run (portal_id, created_at);
