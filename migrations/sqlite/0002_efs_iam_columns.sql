-- efs-iam's additions; see migrations/mysql/0002 for why each exists.
ALTER TABLE iam_portal_user_group_unassignment_queue ADD COLUMN portal_id INTEGER NULL DEFAULT NULL;
ALTER TABLE iam_portal_user_group_unassignment_queue ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE iam_portal_user_group_unassignment_queue ADD COLUMN last_error TEXT NULL;
ALTER TABLE iam_portal_user_group_unassignment_queue ADD COLUMN next_attempt_at DATETIME NULL DEFAULT NULL;
ALTER TABLE iam_portal_user_group_unassignment_queue ADD COLUMN dead_at DATETIME NULL DEFAULT NULL;
ALTER TABLE iam_portal_user_group_unassignment_queue ADD COLUMN locked_by TEXT NULL DEFAULT NULL;
ALTER TABLE iam_portal_user_group_unassignment_queue ADD COLUMN locked_until DATETIME NULL DEFAULT NULL;
CREATE INDEX IF NOT EXISTS iam_unassignment_portal_dead ON iam_portal_user_group_unassignment_queue (portal_id, dead_at);
CREATE INDEX IF NOT EXISTS iam_unassignment_due ON iam_portal_user_group_unassignment_queue (dead_at, next_attempt_at);

CREATE INDEX IF NOT EXISTS iam_error_log_created_at_id ON iam_error_log (created_at, id);
CREATE INDEX IF NOT EXISTS iam_error_log_error_code ON iam_error_log (error_code);
