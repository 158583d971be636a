-- The token vault; see migrations/mysql/0003 for what each column is for.
ALTER TABLE iam_token_data ADD COLUMN stored_at DATETIME NULL DEFAULT NULL;
ALTER TABLE iam_token_data ADD COLUMN expires_at DATETIME NULL DEFAULT NULL;
ALTER TABLE iam_token_data ADD COLUMN subject_hash BLOB NULL DEFAULT NULL;
CREATE INDEX IF NOT EXISTS iam_token_data_expires_at ON iam_token_data (expires_at);
CREATE INDEX IF NOT EXISTS iam_token_data_subject_hash ON iam_token_data (subject_hash);
