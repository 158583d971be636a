-- Purges of the error log asked for through the API (`DELETE /api/v1/errors?before=`),
-- done by a worker in paced batches outside any request. Claimed with a lease like
-- queue rows and runs: a purge whose holder died is taken over once its lease runs out
-- and goes on where the rows still are (each batch deletes what is left before the
-- bound, so nothing is deleted twice and nothing after the bound).
--   purge_before  every entry created before this time is deleted
--   requested_by  the caller's `sub`
--   state         pending, running, succeeded, failed
--   deleted       entries deleted so far (by every holder of the purge)
--   error         why it failed (failed), or the last failure of a purge to be retried
CREATE TABLE IF NOT EXISTS `efs_iam_error_log_purge` (
	`id` CHAR(36) NOT NULL,
	`purge_before` DATETIME NOT NULL,
	`requested_by` VARCHAR(255) NOT NULL,
	`state` VARCHAR(16) NOT NULL,
	`created_at` DATETIME NOT NULL,
	`started_at` DATETIME NULL DEFAULT NULL,
	`finished_at` DATETIME NULL DEFAULT NULL,
	`attempts` INT(11) NOT NULL DEFAULT 0,
	`deleted` BIGINT(20) NOT NULL DEFAULT 0,
	`locked_by` VARCHAR(64) NULL DEFAULT NULL,
	`locked_until` DATETIME NULL DEFAULT NULL,
	`error` TEXT NULL,
	PRIMARY KEY (`id`),
	INDEX `state` (`state`, `created_at`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;
