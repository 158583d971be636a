-- Okta's event ids compare exactly: two events whose uuids differ only in case are two
-- events (the tables' default collation folds case).
ALTER TABLE `efs_iam_okta_event`
	MODIFY `uuid` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE `efs_iam_okta_event_watermark`
	MODIFY `event_uuid` VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

-- A watermark more than five minutes in the future came from an event published in the
-- future (stored before efs-iam clamped such times at receipt); it would hold every
-- genuine later event back. efs-iam no longer believes one; here they go.
DELETE FROM `efs_iam_okta_event_watermark`
WHERE `published` > UTC_TIMESTAMP(3) + INTERVAL 5 MINUTE;
