-- EFS-sized data for bench/scale (examples/bench_scale.rs fills in the placeholders and
-- runs this on a freshly migrated MariaDB database; the session tokens are written by
-- the example itself, sealed and hashed as efs-iam writes them).
--
--   {REFS}    portal user references (1,000,000 for the EFS-sized run, 10,000 beside it)
--   {ADMINS}  admin user references (REFS / 10)
--   {ERRORS}  error-log rows over the last 365 days (REFS)
--   {QUEUE}   queued unassignments (REFS / 10)
--   {JOBS}    finished batch jobs of 10,000 items each (REFS / 10,000, at least one)
--   {PORTAL_OF_SEQ}  the portal of row `seq` (the distribution below; written once, in
--             the example beside the same rule for Rust)
--
-- Sections (`-- @section name`) run in order; the benchmark runs `errors` again to
-- refill the error log between its two purge measurements.
--
-- Rows come from MariaDB's SEQUENCE engine (`seq_1_to_N`) through INSERT ... SELECT;
-- pseudo-random but repeatable choices from CRC32 of the row number.
--
-- Portals (100): portal 1 holds 20 % of the references and most of the flagged ones,
-- portal 2 10 % with none flagged, portals 3-10 5 % each, portals 11-100 the rest.
-- Portals 2, 6-10 and 90-100 have nothing flagged (the usual case for the worklist).
-- Status: 99.45 % synced, 0.2 % pending, 0.1 % failed, 0.2 % deprovisioned, 0.05 % NULL
-- (legacy). has_data_changes: pending and failed rows are flagged (outside the
-- portals with none), plus 2 % of portal 1, 0.5 % of portals 3-5, 0.1 % of portals
-- 11-89; 0.1 % of the rest NULL (legacy).

-- @section session
SET SESSION time_zone = '+00:00';
SET SESSION foreign_key_checks = 0;
SET SESSION unique_checks = 0;

-- @section core
INSERT INTO panelists (uid) SELECT seq FROM seq_1_to_{REFS};
INSERT INTO users (uid) SELECT seq FROM seq_1_to_{ADMINS};

INSERT INTO iam_portal_settings (portal_id, `key`, value)
SELECT seq, 'okta_group_id', CONCAT('00g', LPAD(seq, 17, '0')) FROM seq_1_to_100
UNION ALL
SELECT seq, 'theme', 'default' FROM seq_1_to_100;

-- @section references
-- The portal of reference n: by n % 1000, so portals interleave in id order as
-- registrations do.
INSERT INTO iam_portal_user_reference
    (portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes)
SELECT p.portal_id, p.n, CONCAT('00u', LPAD(p.n, 17, '0')), p.created_at, p.created_at,
       CASE WHEN p.hs < 9945 THEN 1 WHEN p.hs < 9965 THEN 0 WHEN p.hs < 9975 THEN 2
            WHEN p.hs < 9995 THEN 3 ELSE NULL END,
       CASE
           WHEN p.portal_id = 2 OR p.portal_id BETWEEN 6 AND 10 OR p.portal_id >= 90
               THEN IF(p.hf >= 9990, NULL, 0)
           WHEN p.hs BETWEEN 9945 AND 9974 THEN 1
           WHEN p.portal_id = 1 AND p.hf < 200 THEN 1
           WHEN p.portal_id BETWEEN 3 AND 5 AND p.hf < 50 THEN 1
           WHEN p.portal_id BETWEEN 11 AND 89 AND p.hf < 10 THEN 1
           WHEN p.hf >= 9990 THEN NULL
           ELSE 0
       END
FROM (
    SELECT seq AS n,
           {PORTAL_OF_SEQ} AS portal_id,
           CRC32(CONCAT('status', seq)) % 10000 AS hs,
           CRC32(CONCAT('flag', seq)) % 10000 AS hf,
           UTC_TIMESTAMP() - INTERVAL (({REFS} - seq) * 94608000 DIV {REFS}) SECOND AS created_at
    FROM seq_1_to_{REFS}
) p;

-- Every tenth admin user is also a panelist (the same Okta user): reverse lookups
-- then span both tables.
INSERT INTO iam_user_reference (user_id, uuid, created_at, updated_at)
SELECT seq,
       IF(seq % 10 = 0, CONCAT('00u', LPAD(seq, 17, '0')), CONCAT('00a', LPAD(seq, 17, '0'))),
       UTC_TIMESTAMP() - INTERVAL seq MINUTE, UTC_TIMESTAMP() - INTERVAL seq MINUTE
FROM seq_1_to_{ADMINS};

-- @section errors
-- A year of Okta errors, oldest first (ids grow with time, as they do).
INSERT INTO iam_error_log (created_at, message, status_code, trace, error_code)
SELECT e.created_at,
       CASE
           WHEN e.k < 400 THEN CONCAT('API call exceeded rate limit due to too many requests. (', e.bucket, ')')
           WHEN e.k < 650 THEN CONCAT('Api validation failed: ', ELT(1 + e.n % 4, 'login', 'email', 'profile.countryCode', 'profile.mobilePhone'), ' (user ', e.n % 100000, ')')
           WHEN e.k < 800 THEN CONCAT('Not found: Resource not found: 00u', LPAD(e.n, 17, '0'), ' (User)')
           WHEN e.k < 830 THEN 'Invalid token provided'
           WHEN e.k < 850 THEN 'You do not have permission to perform the requested action'
           WHEN e.k < 853 THEN CONCAT('Internal Server Error (request ', HEX(CRC32(e.n)), ')')
           WHEN e.k < 930 THEN 'Service Unavailable'
           WHEN e.k < 980 THEN 'error sending request: connection reset by peer'
           WHEN e.k < 999 THEN 'Conflict: An object with this field already exists in the current organization'
           ELSE CONCAT('Cannot update the group membership of a deactivated user 00u', LPAD(e.n, 17, '0'))
       END,
       CASE
           WHEN e.k < 400 THEN 429 WHEN e.k < 650 THEN 400 WHEN e.k < 800 THEN 404
           WHEN e.k < 830 THEN 401 WHEN e.k < 850 THEN 403 WHEN e.k < 853 THEN 500
           WHEN e.k < 930 THEN 503 WHEN e.k < 980 THEN 0 WHEN e.k < 999 THEN 409 ELSE 400
       END,
       CONCAT(ELT(1 + e.n % 4, 'GET /api/v1/users/{id}', 'POST /api/v1/users',
                  'PUT /api/v1/groups/{groupId}/users/{userId}',
                  'DELETE /api/v1/groups/{groupId}/users/{userId}'),
              ' X-Okta-Request-Id=req', HEX(CRC32(CONCAT('r', e.n))), HEX(CRC32(CONCAT('q', e.n))),
              IF(e.k < 400, ' (retried)', ' (final)')),
       CASE
           WHEN e.k < 400 THEN 'E0000047' WHEN e.k < 650 THEN 'E0000001' WHEN e.k < 800 THEN 'E0000007'
           WHEN e.k < 830 THEN 'E0000011' WHEN e.k < 850 THEN 'E0000006' WHEN e.k < 853 THEN 'E0000009'
           WHEN e.k < 930 THEN 'E0000010' WHEN e.k < 980 THEN '' WHEN e.k < 999 THEN 'E0000001'
           ELSE 'E0000112'
       END
FROM (
    SELECT seq AS n,
           CRC32(CONCAT('error', seq)) % 1000 AS k,
           ELT(1 + seq % 3, 'user_get', 'users_create_list', 'groups') AS bucket,
           UTC_TIMESTAMP() - INTERVAL (({ERRORS} - seq) * 31536000 DIV {ERRORS}) SECOND AS created_at
    FROM seq_1_to_{ERRORS}
) e;

-- @section queue
-- Unassignments: 90 % pending and due, 5 % backing off after failures, 5 % dead
-- letters; one in a thousand a legacy row without a portal (dead-lettered).
INSERT INTO iam_portal_user_group_unassignment_queue
    (portal_id, user_id, uuid, email, created_at, attempts, last_error, next_attempt_at, dead_at)
SELECT IF(q.n % 1000 = 999, NULL, q.portal_id), q.user_id,
       CONCAT('00u', LPAD(q.user_id, 17, '0')), CONCAT('panelist', q.user_id, '@example.com'),
       q.created_at,
       CASE WHEN q.n % 1000 = 999 THEN 0 WHEN q.k < 900 THEN 0 WHEN q.k < 950 THEN 1 + q.k % 7 ELSE 8 END,
       CASE WHEN q.n % 1000 = 999 THEN 'legacy row without portal_id'
            WHEN q.k < 900 THEN NULL
            ELSE 'okta-unavailable: Okta answered 503 Service Unavailable' END,
       CASE WHEN q.n % 1000 <> 999 AND q.k >= 900 AND q.k < 950
            THEN UTC_TIMESTAMP() + INTERVAL (q.k - 899) MINUTE END,
       CASE WHEN q.n % 1000 = 999 OR q.k >= 950 THEN q.created_at + INTERVAL 1 DAY END
FROM (
    SELECT seq AS n,
           {PORTAL_OF_SEQ} AS portal_id,
           1 + (seq * 7) % {REFS} AS user_id,
           CRC32(CONCAT('queue', seq)) % 1000 AS k,
           UTC_TIMESTAMP() - INTERVAL 30 DAY + INTERVAL (seq * 2592000 DIV {QUEUE}) SECOND AS created_at
    FROM seq_1_to_{QUEUE}
) q;

-- @section jobs
-- Finished batch jobs of the last six days, 10,000 users each, spread over the portals:
-- 97 % succeeded, 3 % failed. Job ids are UUIDs ending in the job's number (hex).
INSERT INTO efs_iam_sync_job (id, portal_id, total, created_at, finished_at)
SELECT CONCAT('0e5c1f7a-7a0e-4c38-9f5e-', LPAD(LOWER(HEX(seq)), 12, '0')), 1 + (seq - 1) % 100, 10000,
       UTC_TIMESTAMP() - INTERVAL 2 HOUR - INTERVAL (({JOBS} - seq) * 518400 DIV {JOBS}) SECOND,
       UTC_TIMESTAMP() - INTERVAL 1 HOUR - INTERVAL (({JOBS} - seq) * 518400 DIV {JOBS}) SECOND
FROM seq_1_to_{JOBS};

INSERT INTO efs_iam_sync_job_item
    (job_id, seq, user_id, profile, state, outcome, okta_user_id, error_type, error,
     error_field, attempts, finished_at)
SELECT CONCAT('0e5c1f7a-7a0e-4c38-9f5e-', LPAD(LOWER(HEX(t.job)), 12, '0')), t.n - 1, t.user_id,
       CONCAT('{"login":"panelist', t.user_id, '@example.com","email":"panelist', t.user_id,
              '@example.com","first_name":"Panel","last_name":"List ', t.user_id, '"}'),
       IF(t.k < 970, 'succeeded', 'failed'),
       IF(t.k < 970, ELT(1 + t.n % 4, 'created', 'linked', 'updated', 'unchanged'), NULL),
       CONCAT('00u', LPAD(t.user_id, 17, '0')),
       IF(t.k < 970, NULL, 'okta-validation-failed'),
       IF(t.k < 970, NULL, 'Api validation failed: email'),
       IF(t.k < 970, NULL, 'email'),
       1, UTC_TIMESTAMP() - INTERVAL 1 HOUR
FROM (
    SELECT j.seq AS job, i.seq AS n, 1 + ((j.seq - 1) * 10000 + i.seq - 1) % {REFS} AS user_id,
           CRC32(CONCAT('item', j.seq, '-', i.seq)) % 1000 AS k
    FROM seq_1_to_{JOBS} j JOIN seq_1_to_10000 i
) t;
