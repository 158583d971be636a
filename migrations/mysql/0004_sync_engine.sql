-- efs-iam's own tables for the sync engine (the `efs_iam_` prefix keeps them apart
-- from the seed's `iam_*` tables). utf8mb4, unlike the legacy utf8 tables: a stored
-- profile is sent to Okta as it came, emoji included.

-- A batch sync of portal users (POST /sync/portals/{portal_id}/users). Progress is
-- counted from the items; `finished_at` is set once no item is pending.
CREATE TABLE IF NOT EXISTS `efs_iam_sync_job` (
	`id` CHAR(36) NOT NULL,
	`portal_id` INT(11) NOT NULL,
	`total` INT(11) NOT NULL,
	`created_at` DATETIME NOT NULL,
	`finished_at` DATETIME NULL DEFAULT NULL,
	PRIMARY KEY (`id`),
	INDEX `finished_at` (`finished_at`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;

-- One user of a job. Items are claimed with leases (`locked_by`/`locked_until`) like
-- the unassignment queue, so several instances share a job and a crashed instance's
-- items are picked up again once its lease runs out.
--   state      pending, succeeded, failed
--   outcome    created, linked, updated, unchanged (succeeded items)
--   error_type the problem type slug of a failed item; error its detail; error_field
--              the profile field Okta refused
CREATE TABLE IF NOT EXISTS `efs_iam_sync_job_item` (
	`id` BIGINT(20) NOT NULL AUTO_INCREMENT,
	`job_id` CHAR(36) NOT NULL,
	`seq` INT(11) NOT NULL,
	`user_id` INT(11) NOT NULL,
	`profile` MEDIUMTEXT NOT NULL,
	`state` VARCHAR(16) NOT NULL DEFAULT 'pending',
	`outcome` VARCHAR(16) NULL DEFAULT NULL,
	`okta_user_id` VARCHAR(64) NULL DEFAULT NULL,
	`error_type` VARCHAR(64) NULL DEFAULT NULL,
	`error` TEXT NULL,
	`error_field` VARCHAR(128) NULL DEFAULT NULL,
	`attempts` INT(11) NOT NULL DEFAULT 0,
	`next_attempt_at` DATETIME NULL DEFAULT NULL,
	`locked_by` VARCHAR(64) NULL DEFAULT NULL,
	`locked_until` DATETIME NULL DEFAULT NULL,
	`finished_at` DATETIME NULL DEFAULT NULL,
	PRIMARY KEY (`id`),
	UNIQUE INDEX `job_seq` (`job_id`, `seq`),
	INDEX `due` (`state`, `next_attempt_at`),
	CONSTRAINT `efs_iam_sync_job_item_job` FOREIGN KEY (`job_id`) REFERENCES `efs_iam_sync_job` (`id`) ON DELETE CASCADE
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;

-- Named leases that serialise the sync of one EFS user (and one login) across
-- requests, workers and instances: taken by inserting the row, taken over only once
-- `locked_until` has passed (a crashed holder), given back by deleting it.
CREATE TABLE IF NOT EXISTS `efs_iam_sync_lock` (
	`name` VARCHAR(191) NOT NULL,
	`locked_by` VARCHAR(64) NOT NULL,
	`locked_until` DATETIME NOT NULL,
	PRIMARY KEY (`name`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;
