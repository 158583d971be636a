-- The token vault (efs-iam's own columns; nothing of the seed's is changed, and
-- re-running on an adopted database is harmless).
--   stored_at     when efs-iam stored the response (NULL on legacy rows)
--   expires_at    when it stops being served; expired rows are purged in the
--                 background. Legacy rows get one (now + EFS_IAM_TOKEN_MAX_LIFETIME)
--                 the first time the purge sees them.
--   subject_hash  keyed hash of the verified Okta user id (id_token `sub`), for
--                 "log out everywhere"; NULL when no id_token was verified.
-- `session_id` keeps its type: efs-iam writes a 33-byte keyed hash into it, legacy
-- rows keep their raw ids until they are rewritten.
ALTER TABLE `iam_token_data`
	ADD COLUMN IF NOT EXISTS `stored_at` DATETIME NULL DEFAULT NULL,
	ADD COLUMN IF NOT EXISTS `expires_at` DATETIME NULL DEFAULT NULL,
	ADD COLUMN IF NOT EXISTS `subject_hash` VARBINARY(32) NULL DEFAULT NULL,
	ADD INDEX IF NOT EXISTS `expires_at` (`expires_at`),
	ADD INDEX IF NOT EXISTS `subject_hash` (`subject_hash`);
