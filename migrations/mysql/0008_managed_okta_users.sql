-- The Okta users efs-iam manages: EFS's own. efs-iam creates, updates, deactivates,
-- changes the group memberships of, or links a reference to an Okta user only if it is
-- here (and holds no Okta admin role). A user gets here when efs-iam creates it, or
-- when an iam:admin adopts it (one user, or a bulk adoption run below).
--   okta_user_id  as the legacy `uuid` columns hold it (BINARY(20), NUL-padded), so it
--                 compares exactly and joins with them
--   origin        created, adopted
--   managed_by    `efs-iam` for users it created; the adopting caller's `sub`
--   login         the Okta login when it came under management (for operators)
CREATE TABLE IF NOT EXISTS `efs_iam_managed_okta_user` (
	`okta_user_id` BINARY(20) NOT NULL,
	`origin` VARCHAR(16) NOT NULL,
	`managed_by` VARCHAR(255) NOT NULL,
	`managed_at` DATETIME NOT NULL,
	`login` VARCHAR(100) NULL DEFAULT NULL,
	PRIMARY KEY (`okta_user_id`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;

-- Logins efs-iam is creating an Okta user for, marked before the create is sent: when
-- the create's answer is lost (a timeout, a crash), the user Okta made is recognised
-- as efs-iam's by this mark (and its creation time) instead of being refused as
-- someone else's. Removed once the user is recorded as managed.
--   login_key  the login in lower case
CREATE TABLE IF NOT EXISTS `efs_iam_okta_user_creation` (
	`login_key` VARCHAR(191) NOT NULL,
	`started_at` DATETIME NOT NULL,
	PRIMARY KEY (`login_key`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_bin
;

-- Bulk adoption: every Okta user the EFS tables already reference, checked and (unless
-- a dry run) brought under management by a worker. Run and items are leased like
-- queue rows, so a run survives a restart and instances share it.
--   state  collecting (its items are being listed), checking, succeeded, failed
CREATE TABLE IF NOT EXISTS `efs_iam_adoption_run` (
	`id` CHAR(36) NOT NULL,
	`dry_run` TINYINT(1) NOT NULL,
	`state` VARCHAR(16) NOT NULL,
	`requested_by` VARCHAR(255) NOT NULL,
	`created_at` DATETIME NOT NULL,
	`collected_at` DATETIME NULL DEFAULT NULL,
	`finished_at` DATETIME NULL DEFAULT NULL,
	`locked_by` VARCHAR(64) NULL DEFAULT NULL,
	`locked_until` DATETIME NULL DEFAULT NULL,
	PRIMARY KEY (`id`),
	INDEX `state` (`state`, `created_at`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;

--   state   pending; adopted, already_managed, would_adopt (dry run), refused (with
--           the reason: no such Okta user, deactivated, admin roles), failed (Okta
--           could not be asked, after the retries)
CREATE TABLE IF NOT EXISTS `efs_iam_adoption_item` (
	`id` BIGINT NOT NULL AUTO_INCREMENT,
	`run_id` CHAR(36) NOT NULL,
	`okta_user_id` BINARY(20) NOT NULL,
	`state` VARCHAR(16) NOT NULL,
	`reason` TEXT NULL,
	`login` VARCHAR(100) NULL DEFAULT NULL,
	`attempts` INT(11) NOT NULL DEFAULT 0,
	`next_attempt_at` DATETIME NULL DEFAULT NULL,
	`locked_by` VARCHAR(64) NULL DEFAULT NULL,
	`locked_until` DATETIME NULL DEFAULT NULL,
	`finished_at` DATETIME NULL DEFAULT NULL,
	PRIMARY KEY (`id`),
	UNIQUE INDEX `run_user` (`run_id`, `okta_user_id`),
	INDEX `run_state_id` (`run_id`, `state`, `id`),
	INDEX `state_id` (`state`, `id`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;
