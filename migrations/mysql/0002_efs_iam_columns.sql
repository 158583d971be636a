-- efs-iam's additions. Only ADD ... IF NOT EXISTS (MariaDB syntax): nothing of the
-- seed's is changed or dropped, and re-running on an adopted database is harmless.

-- The unassignment queue must know each user's portal (hence its Okta group), and the
-- worker needs retry bookkeeping and leases so several instances can drain it.
--   portal_id        the portal whose Okta group the user leaves (NULL on legacy rows:
--                    they cannot be processed until re-queued with a portal)
--   attempts         Okta calls tried so far
--   last_error       the last failure, kept for operators
--   next_attempt_at  not before this time (backoff); NULL = now
--   dead_at          retries exhausted: a dead letter, kept until re-queued
--   locked_by/until  lease of the instance working on the row
ALTER TABLE `iam_portal_user_group_unassignment_queue`
	ADD COLUMN IF NOT EXISTS `portal_id` INT(11) NULL DEFAULT NULL,
	ADD COLUMN IF NOT EXISTS `attempts` INT(11) NOT NULL DEFAULT '0',
	ADD COLUMN IF NOT EXISTS `last_error` TEXT NULL,
	ADD COLUMN IF NOT EXISTS `next_attempt_at` DATETIME NULL DEFAULT NULL,
	ADD COLUMN IF NOT EXISTS `dead_at` DATETIME NULL DEFAULT NULL,
	ADD COLUMN IF NOT EXISTS `locked_by` VARCHAR(64) NULL DEFAULT NULL,
	ADD COLUMN IF NOT EXISTS `locked_until` DATETIME NULL DEFAULT NULL,
	ADD INDEX IF NOT EXISTS `portal_id_dead_at` (`portal_id`, `dead_at`),
	ADD INDEX IF NOT EXISTS `due` (`dead_at`, `next_attempt_at`);

-- iam_token_data has no key: a row id orders legacy duplicates of one session id
-- ("newest wins") and gives InnoDB a real clustered key. Existing rows are numbered
-- in table order when the column is added.
ALTER TABLE `iam_token_data`
	ADD COLUMN IF NOT EXISTS `id` BIGINT(20) NOT NULL AUTO_INCREMENT UNIQUE;

-- The error log is read newest first and filtered by time.
ALTER TABLE `iam_error_log`
	ADD INDEX IF NOT EXISTS `created_at_id` (`created_at`, `id`),
	ADD INDEX IF NOT EXISTS `error_code` (`error_code`);
