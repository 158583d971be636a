-- SQLite mirror of EFS's iam_* tables, for the embedded zero-setup default. Column
-- types map MySQL's (INT -> INTEGER, BINARY/VARBINARY -> BLOB, DATETIME -> TEXT in
-- 'YYYY-MM-DD HH:MM:SS' UTC); lengths are enforced by efs-iam before any write.
-- There is no EFS core (users, panelists) in an embedded database, so the seed's
-- foreign keys to them have no counterpart here.
CREATE TABLE IF NOT EXISTS iam_error_log (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	message TEXT NULL,
	status_code INTEGER NOT NULL DEFAULT 0,
	trace TEXT NULL,
	error_code TEXT NOT NULL DEFAULT ''
);

-- `key` compares case-insensitively, as utf8_general_ci does on MySQL.
CREATE TABLE IF NOT EXISTS iam_portal_settings (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	portal_id INTEGER NOT NULL,
	`key` TEXT NULL DEFAULT NULL COLLATE NOCASE,
	value TEXT NULL DEFAULT NULL
);
CREATE INDEX IF NOT EXISTS iam_portal_settings_portal_id ON iam_portal_settings (portal_id);

CREATE TABLE IF NOT EXISTS iam_portal_user_reference (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	portal_id INTEGER NULL DEFAULT NULL,
	user_id INTEGER NULL DEFAULT NULL,
	uuid BLOB NULL DEFAULT NULL,
	created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	status INTEGER NULL DEFAULT NULL,
	has_data_changes INTEGER NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS iam_portal_user_reference_user_id ON iam_portal_user_reference (user_id);
CREATE INDEX IF NOT EXISTS iam_portal_user_reference_portal_id ON iam_portal_user_reference (portal_id);
CREATE INDEX IF NOT EXISTS iam_portal_user_reference_uuid ON iam_portal_user_reference (uuid);
CREATE INDEX IF NOT EXISTS iam_portal_user_reference_status ON iam_portal_user_reference (status);

-- `id` (also added on MySQL by 0002) orders duplicates of one session id.
CREATE TABLE IF NOT EXISTS iam_token_data (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	session_id BLOB NOT NULL,
	idp_response TEXT NULL
);
CREATE INDEX IF NOT EXISTS iam_token_data_session_id ON iam_token_data (session_id);

CREATE TABLE IF NOT EXISTS iam_user_reference (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id INTEGER NULL DEFAULT NULL,
	uuid BLOB NULL DEFAULT NULL,
	created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
	updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS iam_user_reference_user_id ON iam_user_reference (user_id);
CREATE INDEX IF NOT EXISTS iam_user_reference_uuid ON iam_user_reference (uuid);

CREATE TABLE IF NOT EXISTS iam_portal_user_group_unassignment_queue (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id INTEGER NULL DEFAULT NULL,
	uuid BLOB NULL DEFAULT NULL,
	email TEXT NULL DEFAULT NULL,
	created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
