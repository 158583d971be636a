-- Indexes for EFS-sized tables (issue 15: a million portal user references, a million
-- error-log rows, 100,000 queued unassignments). Only ADD/DROP INDEX IF EXISTS on
-- efs-iam's own indexes: the seed's columns and indexes stay as they are. Each index
-- matches one keyset listing of the API: the filter's columns as equalities, then the
-- order the pages follow, so that any page costs one index dive and its own rows,
-- however deep it lies and however few rows match (BENCHMARKS.md, "EFS-sized proof").
-- InnoDB adds the primary key to every secondary index; `id` is named anyway so the
-- order is explicit (and the same on SQLite).

-- GET /portals/{id}/user-references?status=… and ?has_data_changes=… (the worklist),
-- alone or together: before, a portal where nothing was flagged scanned all of its
-- references to find none.
ALTER TABLE `iam_portal_user_reference`
	ADD INDEX IF NOT EXISTS `portal_status_id` (`portal_id`, `status`, `id`),
	ADD INDEX IF NOT EXISTS `portal_changes_id` (`portal_id`, `has_data_changes`, `id`);

-- GET /errors?status_code=… and ?error_code=…, newest first (with or without since/until).
-- `error_code_created_at_id` replaces 0002's `error_code`, its prefix.
ALTER TABLE `iam_error_log`
	ADD INDEX IF NOT EXISTS `status_code_created_at_id` (`status_code`, `created_at`, `id`),
	ADD INDEX IF NOT EXISTS `error_code_created_at_id` (`error_code`, `created_at`, `id`),
	DROP INDEX IF EXISTS `error_code`;

-- GET /portals/{id}/unassignments without a state (0002's `portal_id_dead_at` orders a
-- portal's rows by dead_at first), and the dead letters without a portal.
ALTER TABLE `iam_portal_user_group_unassignment_queue`
	ADD INDEX IF NOT EXISTS `portal_id_id` (`portal_id`, `id`);

-- GET /sync/jobs/{id}?state=…: one state's items in seq order; with `attempts` the
-- job's counts are read from this index alone.
ALTER TABLE `efs_iam_sync_job_item`
	ADD INDEX IF NOT EXISTS `job_state_seq` (`job_id`, `state`, `seq`, `attempts`);
