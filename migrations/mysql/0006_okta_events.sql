-- Okta Event Hook deliveries (POST /hooks/okta/events), one row per event, stored
-- before the delivery is answered and processed by a worker (claimed with a lease like
-- queue rows). `uuid` is Okta's event id: a redelivered event is stored once.
--   state    pending, processed, ignored (a type efs-iam does not act on), superseded
--            (a newer event about the same user and subject was applied first), failed
--   outcome  what processing changed, or why it failed
CREATE TABLE IF NOT EXISTS `efs_iam_okta_event` (
	`uuid` VARCHAR(64) NOT NULL,
	`event_type` VARCHAR(128) NOT NULL,
	`published` DATETIME(3) NOT NULL,
	`received_at` DATETIME NOT NULL,
	`payload` MEDIUMTEXT NOT NULL,
	`state` VARCHAR(16) NOT NULL,
	`attempts` INT(11) NOT NULL DEFAULT 0,
	`next_attempt_at` DATETIME NULL DEFAULT NULL,
	`locked_by` VARCHAR(64) NULL DEFAULT NULL,
	`locked_until` DATETIME NULL DEFAULT NULL,
	`processed_at` DATETIME NULL DEFAULT NULL,
	`outcome` TEXT NULL,
	PRIMARY KEY (`uuid`),
	INDEX `state_published` (`state`, `published`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;

-- The newest event applied per Okta user and subject ('user' for lifecycle and profile
-- events, the group id for membership events): an older event arriving later changes
-- nothing.
CREATE TABLE IF NOT EXISTS `efs_iam_okta_event_watermark` (
	`okta_user_id` VARCHAR(64) NOT NULL,
	`subject` VARCHAR(64) NOT NULL,
	`published` DATETIME(3) NOT NULL,
	`event_uuid` VARCHAR(64) NOT NULL,
	PRIMARY KEY (`okta_user_id`, `subject`)
)
ENGINE=InnoDB
DEFAULT CHARSET=utf8mb4
COLLATE=utf8mb4_unicode_ci
;
