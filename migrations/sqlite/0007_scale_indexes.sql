-- Indexes for EFS-sized tables; see migrations/mysql/0007 for which listing each one
-- serves. SQLite appends the rowid (`id`) to every index itself.
CREATE INDEX IF NOT EXISTS iam_portal_user_reference_portal_status_id
	ON iam_portal_user_reference (portal_id, status, id);
CREATE INDEX IF NOT EXISTS iam_portal_user_reference_portal_changes_id
	ON iam_portal_user_reference (portal_id, has_data_changes, id);

CREATE INDEX IF NOT EXISTS iam_error_log_status_code_created_at_id
	ON iam_error_log (status_code, created_at, id);
CREATE INDEX IF NOT EXISTS iam_error_log_error_code_created_at_id
	ON iam_error_log (error_code, created_at, id);
DROP INDEX IF EXISTS iam_error_log_error_code;

CREATE INDEX IF NOT EXISTS iam_unassignment_portal_id_id
	ON iam_portal_user_group_unassignment_queue (portal_id, id);

CREATE INDEX IF NOT EXISTS efs_iam_sync_job_item_job_state_seq
	ON efs_iam_sync_job_item (job_id, state, seq, attempts);
