-- A reconciliation of one portal's Okta group with its references, run by a worker:
-- asked for through the API (`POST /sync/portals/{portal_id}/reconcile?dry_run=false`)
-- or started by the schedule. Claimed with a lease like queue rows and job items.
--   kind     manual (asked through the API), scheduled
--   state    pending, running, succeeded, failed
--   report   the report as JSON (succeeded runs)
--   error_type, error   the problem type slug and why it failed (failed runs); error
--            also keeps the last failure of a run waiting for a retry
CREATE TABLE IF NOT EXISTS `efs_iam_reconcile_run` (
	`id` CHAR(36) NOT NULL,
	`portal_id` INT(11) NOT NULL,
	`dry_run` TINYINT(1) NOT NULL,
	`kind` VARCHAR(16) NOT NULL,
	`state` VARCHAR(16) NOT NULL,
	`created_at` DATETIME NOT NULL,
	`started_at` DATETIME NULL DEFAULT NULL,
	`finished_at` DATETIME NULL DEFAULT NULL,
	`attempts` INT(11) NOT NULL DEFAULT 0,
	`locked_by` VARCHAR(64) NULL DEFAULT NULL,
	`locked_until` DATETIME NULL DEFAULT NULL,
	`report` LONGTEXT NULL,
	`error_type` VARCHAR(64) NULL DEFAULT NULL,
	`error` TEXT NULL,
	PRIMARY KEY (`id`),
	INDEX `state` (`state`, `created_at`),
	INDEX `portal_created` (`portal_id`, `created_at`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;
