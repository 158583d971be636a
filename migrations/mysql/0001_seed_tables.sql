-- The six iam_* tables exactly as EFS's schema document defines them. They may
-- already exist, with data, in the EFS database: hence IF NOT EXISTS everywhere, so
-- adopting an existing database changes nothing here.
--
-- `users` and `panelists` are EFS core tables that efs-iam does not own; the seed's
-- foreign keys point at them. On an EFS database they exist and are left alone. On an
-- empty (development or test) database, minimal stand-ins with just the referenced
-- `uid` key are created so that the seed's foreign keys can be declared unchanged.
CREATE TABLE IF NOT EXISTS `users` (
	`uid` INT(11) NOT NULL AUTO_INCREMENT,
	PRIMARY KEY (`uid`)
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;

CREATE TABLE IF NOT EXISTS `panelists` (
	`uid` INT(11) NOT NULL AUTO_INCREMENT,
	PRIMARY KEY (`uid`)
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;

CREATE TABLE IF NOT EXISTS `iam_error_log` (
	`id` INT(11) NOT NULL AUTO_INCREMENT,
	`created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	`message` TEXT NULL,
	`status_code` SMALLINT(3) NOT NULL DEFAULT '0',
	`trace` LONGTEXT NULL,
	`error_code` VARCHAR(36) NOT NULL DEFAULT '',
	PRIMARY KEY (`id`)
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;

CREATE TABLE IF NOT EXISTS `iam_portal_settings` (
	`id` INT(11) NOT NULL AUTO_INCREMENT,
	`portal_id` INT(11) NOT NULL,
	`key` VARCHAR(50) NULL DEFAULT NULL,
	`value` VARCHAR(255) NULL DEFAULT NULL,
	PRIMARY KEY (`id`),
	INDEX `id` (`id`),
	INDEX `portal_id` (`portal_id`)
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;

CREATE TABLE IF NOT EXISTS `iam_portal_user_reference` (
	`id` INT(11) NOT NULL AUTO_INCREMENT,
	`portal_id` INT(11) NULL DEFAULT NULL,
	`user_id` INT(11) NULL DEFAULT NULL,
	`uuid` BINARY(20) NULL DEFAULT NULL,
	`created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	`updated_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	`status` TINYINT(4) NULL DEFAULT NULL,
	`has_data_changes` TINYINT(1) NULL DEFAULT '0',
	PRIMARY KEY (`id`),
	INDEX `id` (`id`),
	INDEX `user_id` (`user_id`),
	INDEX `portal_id` (`portal_id`),
	INDEX `uuid` (`uuid`),
	INDEX `status` (`status`),
	INDEX `has_data_changes` (`has_data_changes`),
	CONSTRAINT `user_id_panelists_uid_idx` FOREIGN KEY (`user_id`) REFERENCES `panelists` (`uid`) ON UPDATE CASCADE ON DELETE CASCADE
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;

CREATE TABLE IF NOT EXISTS `iam_token_data` (
	`session_id` VARBINARY(50) NOT NULL,
	`idp_response` LONGTEXT NULL,
	INDEX `session_id` (`session_id`)
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;

CREATE TABLE IF NOT EXISTS `iam_user_reference` (
	`id` INT(11) NOT NULL AUTO_INCREMENT,
	`user_id` INT(11) NULL DEFAULT NULL,
	`uuid` BINARY(20) NULL DEFAULT NULL,
	`created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	`updated_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	PRIMARY KEY (`id`),
	INDEX `id` (`id`),
	INDEX `user_id` (`user_id`),
	INDEX `uuid` (`uuid`),
	CONSTRAINT `user_id_users_uid_idx` FOREIGN KEY (`user_id`) REFERENCES `users` (`uid`) ON UPDATE CASCADE ON DELETE CASCADE
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;

-- The schema document breaks off after `created_at`; the rest of the seed's
-- definition (the primary key) is completed here. efs-iam's own columns are added by
-- 0002 so that they also reach a table that already exists in the EFS database.
CREATE TABLE IF NOT EXISTS `iam_portal_user_group_unassignment_queue` (
	`id` INT(11) NOT NULL AUTO_INCREMENT,
	`user_id` INT(11) NULL DEFAULT NULL,
	`uuid` BINARY(20) NULL DEFAULT NULL,
	`email` VARCHAR(255) NULL DEFAULT NULL,
	`created_at` DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	PRIMARY KEY (`id`)
)
COLLATE='utf8_general_ci'
ENGINE=InnoDB
;
