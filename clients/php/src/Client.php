<?php

declare(strict_types=1);

namespace Efs\Iam;

use Efs\Iam\Auth\CallbackTokens;
use Efs\Iam\Auth\TokenProvider;
use Efs\Iam\Exception\EfsIamException;
use Efs\Iam\Exception\ProblemException;
use Efs\Iam\Exception\TransportException;
use Efs\Iam\Exception\UnexpectedResponseException;
use GuzzleHttp\Client as GuzzleClient;
use GuzzleHttp\ClientInterface;
use GuzzleHttp\Exception\ConnectException;
use GuzzleHttp\Exception\GuzzleException;
use GuzzleHttp\Exception\RequestException;
use GuzzleHttp\RequestOptions;
use Psr\Http\Message\ResponseInterface;
use Psr\Log\LoggerInterface;

/**
 * efs-iam's REST API (`/api/v1`, openapi/openapi.json) for EFS-Admin: one method per
 * operation, named after its `operationId` in camelCase.
 *
 * Arguments are typed PHP values; answers are the decoded JSON as arrays (integers as
 * ints, JSON objects as associative arrays, so `{}` arrives as `[]`). Each call carries
 * a token with exactly the scope its operation needs. A problem answer becomes the
 * {@see ProblemException} subclass of its type, no answer a {@see TransportException};
 * 503/429 answers with `Retry-After` are retried within the {@see RetryPolicy} for the
 * operations in {@see RETRY_SAFE}.
 *
 * ```php
 * $iam = new Client('http://efs-iam.internal:8080', new Hs256Tokens($secret));
 * $clientId = $iam->getPortalSetting(12, 'okta_client_id')['value'];
 * ```
 */
class Client
{
    /**
     * Every operation: method name => [HTTP method, path relative to `/api/v1`, scope]
     * (the operation's `security` requirement in the OpenAPI document; writing or
     * deleting a trust setting adds `iam:admin`, see {@see Scope::forSettingWrite()}).
     * Operations tagged `health` are not here: see {@see ready()} and {@see live()}.
     *
     * @var array<string, array{0: string, 1: string, 2: string}>
     */
    public const OPERATIONS = [
        'queryErrorLog' => ['GET', '/errors', Scope::READ],
        'recordError' => ['POST', '/errors', Scope::WRITE],
        'purgeErrorLog' => ['DELETE', '/errors', Scope::WRITE],
        'getErrorLogEntry' => ['GET', '/errors/{id}', Scope::READ],
        'getErrorLogPurge' => ['GET', '/errors/purges/{purge_id}', Scope::READ],
        'referencesToOktaUser' => ['GET', '/okta-users/{okta_user_id}/references', Scope::READ],
        'deleteOktaUserSessions' => ['DELETE', '/okta-users/{okta_user_id}/sessions', Scope::TOKENS],
        'getPortalSettings' => ['GET', '/portals/{portal_id}/settings', Scope::READ],
        'putPortalSettings' => ['PUT', '/portals/{portal_id}/settings', Scope::WRITE],
        'getPortalSetting' => ['GET', '/portals/{portal_id}/settings/{key}', Scope::READ],
        'putPortalSetting' => ['PUT', '/portals/{portal_id}/settings/{key}', Scope::WRITE],
        'deletePortalSetting' => ['DELETE', '/portals/{portal_id}/settings/{key}', Scope::WRITE],
        'listUnassignments' => ['GET', '/portals/{portal_id}/unassignments', Scope::READ],
        'enqueueUnassignments' => ['POST', '/portals/{portal_id}/unassignments', Scope::WRITE],
        'listPortalUserReferences' => ['GET', '/portals/{portal_id}/user-references', Scope::READ],
        'getPortalUserReference' => ['GET', '/portals/{portal_id}/user-references/{user_id}', Scope::READ],
        'putPortalUserReference' => ['PUT', '/portals/{portal_id}/user-references/{user_id}', Scope::WRITE],
        'deletePortalUserReference' => ['DELETE', '/portals/{portal_id}/user-references/{user_id}', Scope::WRITE],
        'patchPortalUserReference' => ['PATCH', '/portals/{portal_id}/user-references/{user_id}', Scope::WRITE],
        'getSessionToken' => ['GET', '/sessions/{session_id}/token', Scope::TOKENS],
        'putSessionToken' => ['PUT', '/sessions/{session_id}/token', Scope::TOKENS],
        'deleteSessionToken' => ['DELETE', '/sessions/{session_id}/token', Scope::TOKENS],
        'getSyncJob' => ['GET', '/sync/jobs/{job_id}', Scope::SYNC],
        'reconcilePortal' => ['POST', '/sync/portals/{portal_id}/reconcile', Scope::SYNC],
        'submitSyncJob' => ['POST', '/sync/portals/{portal_id}/users', Scope::SYNC],
        'syncPortalUser' => ['POST', '/sync/portals/{portal_id}/users/{user_id}', Scope::SYNC],
        'listReconcileRuns' => ['GET', '/sync/reconcile-runs', Scope::SYNC],
        'getReconcileRun' => ['GET', '/sync/reconcile-runs/{run_id}', Scope::SYNC],
        'syncStatus' => ['GET', '/sync/status', Scope::SYNC],
        'listDeadLetters' => ['GET', '/sync/unassignments/dead', Scope::SYNC],
        'requeueUnassignments' => ['POST', '/sync/unassignments/requeue', Scope::SYNC],
        'runUnassignments' => ['POST', '/sync/unassignments/run', Scope::SYNC],
        'syncAdminUser' => ['POST', '/sync/users/{user_id}', Scope::SYNC],
        'deprovisionAdminUser' => ['DELETE', '/sync/users/{user_id}', Scope::SYNC],
        'getOktaUserManagement' => ['GET', '/okta-users/{okta_user_id}/management', Scope::READ],
        'adoptOktaUser' => ['PUT', '/okta-users/{okta_user_id}/management', Scope::ADMIN],
        'clearOktaEventWatermarks' => ['DELETE', '/okta-users/{okta_user_id}/event-watermarks', Scope::ADMIN],
        'submitAdoption' => ['POST', '/adoptions', Scope::ADMIN],
        'getAdoption' => ['GET', '/adoptions/{run_id}', Scope::READ],
        'getAdminUserReference' => ['GET', '/user-references/{user_id}', Scope::READ],
        'putAdminUserReference' => ['PUT', '/user-references/{user_id}', Scope::WRITE],
        'deleteAdminUserReference' => ['DELETE', '/user-references/{user_id}', Scope::WRITE],
    ];

    /**
     * The POST operations the client repeats after a 503/429 with `Retry-After`, and why
     * that is safe. GET, PUT and DELETE are repeated anyway (idempotent by HTTP's rules),
     * and so is the one PATCH: it sets the fields it names to absolute values.
     *
     * @var array<string, string>
     */
    public const RETRY_SAFE = [
        'syncAdminUser' => 'idempotent by design: the user and login locks, the lookup by reference then '
            . 'login, and "login already exists" resolved by linking end with one Okta user (README '
            . '"Never a duplicate Okta user")',
        'syncPortalUser' => 'idempotent by design, as syncAdminUser; adding a group member twice is one membership',
        'runUnassignments' => 'a trigger: it wakes the worker and reports the queue; waking it twice does no harm',
        'requeueUnassignments' => 'moves dead letters back to pending; a repeat finds them pending and reports '
            . 'them as skipped (not_dead), the queue ends the same',
        'reconcilePortal' => 'only the dry run (the default), which reads and reports; a repair '
            . '(dryRun: false) is in NOT_RETRIED',
    ];

    /**
     * The POST operations the client never repeats by itself, and why: after a 503 the
     * caller decides (the answer may have been lost after the work was done).
     *
     * @var array<string, string>
     */
    public const NOT_RETRIED = [
        'recordError' => 'each call appends an error-log row: a repeat writes a duplicate',
        'enqueueUnassignments' => 'each call appends queue rows: a repeat queues the users twice',
        'submitSyncJob' => 'each call creates a batch job: a repeat runs the batch twice',
        'submitAdoption' => 'each call creates an adoption run: a repeat checks every user twice',
        'reconcilePortal' => 'with dryRun: false each call queues a repair run: a repeat queues a second one',
    ];

    private const API_PREFIX = '/api/v1';
    /** Pause before repeating a call that got no answer (efs-iam restarting behind the load balancer). */
    private const RECONNECT_DELAY = 0.5;
    private const JSON = 'application/json';

    private readonly string $root;
    private readonly TokenProvider $tokens;
    private readonly ClientInterface $http;
    private readonly RetryPolicy $retry;
    private ?string $requestId = null;
    private ?ResponseInterface $lastResponse = null;
    private int $lastAttempts = 0;

    /**
     * @param string $baseUrl where efs-iam is served, e.g. `http://efs-iam.internal:8080` (a trailing
     *        `/api/v1` is accepted)
     * @param TokenProvider|callable(string): string $tokens {@see Auth\Hs256Tokens} for the shared secret, or a
     *        callback `fn(string $scope): string` returning a token with that scope (RS256/JWKS set-ups)
     * @param float $connectTimeout seconds to wait for the connection
     * @param float $timeout seconds to wait for a whole answer (efs-iam answers 503 `timeout` after its own
     *        EFS_IAM_REQUEST_TIMEOUT, 30 s by default; keep this above it, and above 20 s for syncs, which may
     *        wait that long for a user's lock)
     * @param RetryPolicy|null $retry the retry budget (default: 3 attempts, 10 s of waiting)
     * @param ClientInterface|null $http a Guzzle client of your own (handler stack, proxy); the options above
     *        are applied per request
     * @param float|null $deadline seconds one call may take in all: every attempt, retry and wait (PHP-FPM:
     *        keep it under the FPM request timeout); null for none
     * @param LoggerInterface|null $logger a PSR-3 logger for each attempt (debug), repeat (info) and lost
     *        answer (warning): operation, route template, status, attempt, duration, request id; never a
     *        path, header, token or body
     */
    public function __construct(
        string $baseUrl,
        TokenProvider|callable $tokens,
        private readonly float $connectTimeout = 5.0,
        private readonly float $timeout = 35.0,
        ?RetryPolicy $retry = null,
        ?ClientInterface $http = null,
        private readonly ?float $deadline = 60.0,
        private readonly ?LoggerInterface $logger = null,
    ) {
        if ($deadline !== null && $deadline <= 0) {
            throw new \InvalidArgumentException('deadline must be more than 0 seconds (or null for none)');
        }
        $root = rtrim($baseUrl, '/');
        if (str_ends_with($root, self::API_PREFIX)) {
            $root = substr($root, 0, -strlen(self::API_PREFIX));
        }
        if (!preg_match('#^https?://#i', $root)) {
            throw new \InvalidArgumentException("efs-iam base URL must be http(s)://host[:port], got \"$baseUrl\"");
        }
        $this->root = $root;
        $this->tokens = $tokens instanceof TokenProvider ? $tokens : new CallbackTokens($tokens);
        $this->retry = $retry ?? new RetryPolicy();
        $this->http = $http ?? new GuzzleClient();
    }

    /**
     * What `var_dump()`/`print_r()` show: where the client calls and how, never the
     * token provider's secret, a token, or the last answer (it may hold session tokens).
     *
     * @return array<string, mixed>
     */
    public function __debugInfo(): array
    {
        return [
            'root' => $this->root,
            'tokens' => get_class($this->tokens),
            'connectTimeout' => $this->connectTimeout,
            'timeout' => $this->timeout,
            'retry' => $this->retry,
            'requestId' => $this->requestId,
            'lastStatus' => $this->lastResponse?->getStatusCode(),
            'lastAttempts' => $this->lastAttempts,
        ];
    }

    /**
     * This client, sending `$requestId` as `x-request-id` with every call: efs-iam keeps
     * it in its logs and answers, so one id follows an EFS-Admin request through both.
     */
    public function withRequestId(string $requestId): self
    {
        $clone = clone $this;
        $clone->requestId = $requestId;
        return $clone;
    }

    /** The final answer of the last call (after any retries); null before the first, or after no answer. */
    public function lastResponse(): ?ResponseInterface
    {
        return $this->lastResponse;
    }

    /** How many attempts the last call took (1 unless it was retried). */
    public function lastAttempts(): int
    {
        return $this->lastAttempts;
    }

    /**
     * Whether the last PUT created what it names (201) rather than replacing it (200);
     * null when the last call answered neither (or no call was made).
     */
    public function lastCreated(): ?bool
    {
        return match ($this->lastResponse?->getStatusCode()) {
            201 => true,
            200 => false,
            default => null,
        };
    }

    // ---- health probes (outside /api/v1, no token) ----------------------------------

    /**
     * `GET /health/live`: the process runs. Schema Liveness.
     *
     * @return array{status: string}
     */
    public function live(): array
    {
        return $this->probe('live', '/health/live');
    }

    /**
     * `GET /health/ready`: the database, its migrations and the token store answer.
     * Returns the Readiness document for 200 and for 503 alike (its `status` and
     * `components` say what is down).
     *
     * @return array{status: string, components: array<string, array{status: string, detail?: string|null}>}
     */
    public function ready(): array
    {
        return $this->probe('ready', '/health/ready', [200, 503]);
    }

    // ---- error log --------------------------------------------------------------------

    /**
     * `query_error_log`: error-log entries, newest first. Returns schema ErrorLogPage
     * (`items`: list of ErrorLogEntryBody, `next_cursor`).
     *
     * @return array{items: list<array<string, mixed>>, next_cursor?: string|null}
     */
    public function queryErrorLog(
        \DateTimeInterface|string|null $since = null,
        \DateTimeInterface|string|null $until = null,
        ?int $statusCode = null,
        ?string $errorCode = null,
        ?string $q = null,
        ?int $limit = null,
        ?string $cursor = null,
    ): array {
        return $this->call('queryErrorLog', query: [
            'since' => self::time($since),
            'until' => self::time($until),
            'status_code' => $statusCode,
            'error_code' => $errorCode,
            'q' => $q,
            'limit' => $limit,
            'cursor' => $cursor,
        ]);
    }

    /**
     * `record_error`: appends an error-log entry. Returns schema ErrorLogEntryBody.
     *
     * @param array{message?: string|null, status_code?: int, error_code?: string, trace?: string|null} $entry
     *        schema NewErrorLogEntryBody
     * @return array{id: int, created_at: string, status_code: int, error_code: string, message: string|null,
     *         trace: string|null}
     */
    public function recordError(array $entry): array
    {
        return $this->call('recordError', body: (object) $entry);
    }

    /**
     * `purge_error_log`: has efs-iam delete every entry created before `$before`, in the
     * background. Answers at once (202) with the purge, `state` `pending`; a worker
     * deletes the entries in paced batches. Follow it with {@see getErrorLogPurge()}
     * until `RunState::from($purge['state'])` is `Succeeded` (`deleted` counts the
     * entries) or `Failed` (`error` says why). Returns schema ErrorLogPurgeBody.
     *
     * @return array{purge_id: string, before: string, state: string, requested_by: string, created_at: string,
     *         started_at: string|null, finished_at: string|null, deleted: int, attempts: int,
     *         error: string|null, status_url: string}
     */
    public function purgeErrorLog(\DateTimeInterface|string $before): array
    {
        return $this->call('purgeErrorLog', query: ['before' => self::time($before)]);
    }

    /**
     * `get_error_log_purge`: a purge's state and how many entries it deleted so far
     * (kept 7 days after it ended). Returns schema ErrorLogPurgeBody.
     *
     * @return array{purge_id: string, before: string, state: string, requested_by: string, created_at: string,
     *         started_at: string|null, finished_at: string|null, deleted: int, attempts: int,
     *         error: string|null, status_url: string}
     */
    public function getErrorLogPurge(string $purgeId): array
    {
        return $this->call('getErrorLogPurge', ['purge_id' => $purgeId]);
    }

    /**
     * `get_error_log_entry`. Returns schema ErrorLogEntryBody.
     *
     * @return array{id: int, created_at: string, status_code: int, error_code: string, message: string|null,
     *         trace: string|null}
     */
    public function getErrorLogEntry(int $id): array
    {
        return $this->call('getErrorLogEntry', ['id' => $id]);
    }

    // ---- user references --------------------------------------------------------------

    /**
     * `references_to_okta_user`: every admin-user and portal-user reference naming this
     * Okta user. Returns schema OktaUserReferences.
     *
     * @return array{okta_user_id: string, admin_users: list<array<string, mixed>>,
     *         portal_users: list<array<string, mixed>>}
     */
    public function referencesToOktaUser(string $oktaUserId): array
    {
        return $this->call('referencesToOktaUser', ['okta_user_id' => $oktaUserId]);
    }

    /**
     * `get_admin_user_reference`. Returns schema AdminUserReferenceBody.
     *
     * @return array{user_id: int|null, okta_user_id: string|null, created_at: string, updated_at: string}
     */
    public function getAdminUserReference(int $userId): array
    {
        return $this->call('getAdminUserReference', ['user_id' => $userId]);
    }

    /**
     * `put_admin_user_reference`: links an EFS-Admin user to an Okta user (created or
     * replaced). Returns schema AdminUserReferenceBody.
     *
     * @return array{user_id: int|null, okta_user_id: string|null, created_at: string, updated_at: string}
     */
    public function putAdminUserReference(int $userId, string $oktaUserId): array
    {
        return $this->call('putAdminUserReference', ['user_id' => $userId], body: ['okta_user_id' => $oktaUserId]);
    }

    /** `delete_admin_user_reference`. */
    public function deleteAdminUserReference(int $userId): void
    {
        $this->call('deleteAdminUserReference', ['user_id' => $userId]);
    }

    /**
     * `list_portal_user_references`: one page of a portal's references; follow
     * `next_cursor`. Returns schema PortalUserReferencePage.
     *
     * @param string|null $status `pending`, `synced`, `failed` or `deprovisioned` (schema PortalUserStatus)
     * @return array{items: list<array<string, mixed>>, next_cursor?: string|null}
     */
    public function listPortalUserReferences(
        int $portalId,
        PortalUserStatus|string|null $status = null,
        ?bool $hasDataChanges = null,
        ?int $limit = null,
        ?string $cursor = null,
    ): array {
        return $this->call('listPortalUserReferences', ['portal_id' => $portalId], query: [
            'status' => self::plain($status),
            'has_data_changes' => $hasDataChanges,
            'limit' => $limit,
            'cursor' => $cursor,
        ]);
    }

    /**
     * `get_portal_user_reference`. Returns schema PortalUserReferenceBody.
     *
     * @return array{portal_id: int|null, user_id: int|null, okta_user_id: string|null, status: string|null,
     *         status_code?: int|null, has_data_changes: bool|null, created_at: string, updated_at: string}
     */
    public function getPortalUserReference(int $portalId, int $userId): array
    {
        return $this->call('getPortalUserReference', ['portal_id' => $portalId, 'user_id' => $userId]);
    }

    /**
     * `put_portal_user_reference`: links a panelist of a portal to an Okta user (created
     * or replaced). Returns schema PortalUserReferenceBody.
     *
     * @param string $status `pending`, `synced`, `failed` or `deprovisioned` (schema PortalUserStatus)
     * @return array{portal_id: int|null, user_id: int|null, okta_user_id: string|null, status: string|null,
     *         status_code?: int|null, has_data_changes: bool|null, created_at: string, updated_at: string}
     */
    public function putPortalUserReference(
        int $portalId,
        int $userId,
        string $oktaUserId,
        PortalUserStatus|string $status,
        ?bool $hasDataChanges = null,
    ): array {
        $body = ['okta_user_id' => $oktaUserId, 'status' => self::plain($status)];
        if ($hasDataChanges !== null) {
            $body['has_data_changes'] = $hasDataChanges;
        }
        return $this->call('putPortalUserReference', ['portal_id' => $portalId, 'user_id' => $userId], body: $body);
    }

    /**
     * `patch_portal_user_reference`: changes only the fields given (at least one).
     * Returns schema PortalUserReferenceBody.
     *
     * @param array{okta_user_id?: string, status?: string, has_data_changes?: bool} $changes
     *        schema PatchPortalUserReference
     * @return array{portal_id: int|null, user_id: int|null, okta_user_id: string|null, status: string|null,
     *         status_code?: int|null, has_data_changes: bool|null, created_at: string, updated_at: string}
     */
    public function patchPortalUserReference(int $portalId, int $userId, array $changes): array
    {
        return $this->call(
            'patchPortalUserReference',
            ['portal_id' => $portalId, 'user_id' => $userId],
            body: (object) $changes,
        );
    }

    /** `delete_portal_user_reference`. */
    public function deletePortalUserReference(int $portalId, int $userId): void
    {
        $this->call('deletePortalUserReference', ['portal_id' => $portalId, 'user_id' => $userId]);
    }

    // ---- portal settings --------------------------------------------------------------

    /**
     * `get_portal_settings`: every setting of the portal. Returns schema PortalSettings.
     *
     * @return array{portal_id: int, settings: array<string, string|null>}
     */
    public function getPortalSettings(int $portalId): array
    {
        return $this->call('getPortalSettings', ['portal_id' => $portalId]);
    }

    /**
     * `put_portal_settings`: sets several settings in one transaction (a null value
     * clears one); keys not named are untouched. Naming `okta_issuer`, `okta_client_id`
     * or `okta_group_id` (any case) uses a token with `iam:admin`. Returns schema
     * PortalSettings.
     *
     * @param array<string, string|null> $settings the body's `settings` (schema PutPortalSettings)
     * @return array{portal_id: int, settings: array<string, string|null>}
     */
    public function putPortalSettings(int $portalId, array $settings): array
    {
        return $this->call(
            'putPortalSettings',
            ['portal_id' => $portalId],
            body: ['settings' => (object) $settings],
            scope: Scope::forSettingWrite(array_keys($settings)),
        );
    }

    /**
     * `get_portal_setting`: one setting (key compared case-insensitively). Returns
     * schema PortalSettingValue.
     *
     * @return array{portal_id: int, key: string, value: string|null}
     */
    public function getPortalSetting(int $portalId, string $key): array
    {
        return $this->call('getPortalSetting', ['portal_id' => $portalId, 'key' => $key]);
    }

    /**
     * `put_portal_setting`: sets one setting (201 when new, 200 when changed; the same
     * body). A trust setting (`okta_issuer`, `okta_client_id`, `okta_group_id`) uses a
     * token with `iam:admin`. Returns schema PortalSettingValue.
     *
     * @return array{portal_id: int, key: string, value: string|null}
     */
    public function putPortalSetting(int $portalId, string $key, ?string $value): array
    {
        return $this->call(
            'putPortalSetting',
            ['portal_id' => $portalId, 'key' => $key],
            body: ['value' => $value],
            scope: Scope::forSettingWrite([$key]),
        );
    }

    /** `delete_portal_setting`: a trust setting uses a token with `iam:admin`. */
    public function deletePortalSetting(int $portalId, string $key): void
    {
        $this->call(
            'deletePortalSetting',
            ['portal_id' => $portalId, 'key' => $key],
            scope: Scope::forSettingWrite([$key]),
        );
    }

    // ---- session tokens ---------------------------------------------------------------

    /**
     * `get_session_token`: the stored IdP token response of a login session, with the
     * verified id_token claims when it was verified. Returns schema StoredSessionToken.
     *
     * @return array{idp_response: array<string, mixed>|string|null, stored_at?: string|null,
     *         expires_at?: string|null, portal_id?: int|null, claims?: array{sub: string, email?: string|null,
     *         exp: int}|null}
     */
    public function getSessionToken(#[\SensitiveParameter] string $sessionId): array
    {
        return $this->call('getSessionToken', ['session_id' => $sessionId]);
    }

    /**
     * `put_session_token`: stores the IdP's token response for a session (encrypted).
     * With `$portalId` naming a portal with `okta_issuer`, the id_token is verified
     * first.
     *
     * @param array<string, mixed> $tokenResponse as Okta's `/token` answered it (schema TokenResponse)
     */
    public function putSessionToken(
        #[\SensitiveParameter] string $sessionId,
        #[\SensitiveParameter] array $tokenResponse,
        ?int $portalId = null,
    ): void {
        $this->call(
            'putSessionToken',
            ['session_id' => $sessionId],
            query: ['portal_id' => $portalId],
            body: (object) $tokenResponse,
        );
    }

    /** `delete_session_token`: logs one session out. */
    public function deleteSessionToken(#[\SensitiveParameter] string $sessionId): void
    {
        $this->call('deleteSessionToken', ['session_id' => $sessionId]);
    }

    /**
     * `delete_okta_user_sessions`: logout everywhere, every session stored with a
     * verified id_token of this Okta user. Returns schema DeletedSessions.
     *
     * @return array{deleted: int}
     */
    public function deleteOktaUserSessions(string $oktaUserId): array
    {
        return $this->call('deleteOktaUserSessions', ['okta_user_id' => $oktaUserId]);
    }

    // ---- unassignment queue -----------------------------------------------------------

    /**
     * `list_unassignments`: a portal's queue. Returns schema UnassignmentPage.
     *
     * @param string|null $state `pending` or `dead` (default both)
     * @return array{portal_id: int, counts: array{pending: int, dead: int, pending_capped: bool, dead_capped: bool},
     *         items: list<array<string, mixed>>, next_cursor?: string|null}
     *         (counts stop at 10,000 per state: read them with QueueCount::fromCounts())
     */
    public function listUnassignments(
        int $portalId,
        UnassignmentState|string|null $state = null,
        ?int $limit = null,
        ?string $cursor = null,
    ): array {
        return $this->call('listUnassignments', ['portal_id' => $portalId], query: [
            'state' => self::plain($state),
            'limit' => $limit,
            'cursor' => $cursor,
        ]);
    }

    /**
     * `enqueue_unassignments`: queues users to leave the portal's Okta group (up to
     * 10,000, all or nothing). Never retried by the client. Returns schema EnqueueResult.
     *
     * @param list<array{user_id: int, okta_user_id: string, email?: string|null}> $users
     *        the body's `users` (schema UnassignmentUser)
     * @return array{portal_id: int, enqueued: int,
     *         counts: array{pending: int, dead: int, pending_capped: bool, dead_capped: bool}}
     */
    public function enqueueUnassignments(int $portalId, array $users): array
    {
        return $this->call('enqueueUnassignments', ['portal_id' => $portalId], body: ['users' => $users]);
    }

    /**
     * `run_unassignments`: wakes the unassignment worker; answers at once. Returns
     * schema RunAccepted.
     *
     * @param int|null $maxRows accepted and ignored since the run became a trigger
     * @return array{triggered: string, queue: array<string, mixed>}
     */
    public function runUnassignments(?int $maxRows = null): array
    {
        return $this->call('runUnassignments', query: ['max_rows' => $maxRows]);
    }

    /**
     * `list_dead_letters`: dead letters of every portal. Returns schema DeadLetterPage.
     *
     * @param bool|null $withoutPortal only legacy rows without a portal
     * @return array{items: list<array<string, mixed>>, next_cursor?: string|null}
     */
    public function listDeadLetters(?bool $withoutPortal = null, ?int $limit = null, ?string $cursor = null): array
    {
        return $this->call('listDeadLetters', query: [
            'without_portal' => $withoutPortal,
            'limit' => $limit,
            'cursor' => $cursor,
        ]);
    }

    /**
     * `requeue_unassignments`: dead letters back to pending: the ones named by `$ids`,
     * or every dead letter of the portal. Returns schema RequeueResult.
     *
     * @param list<int>|null $ids
     * @return array{portal_id: int, requeued: int, skipped: list<array{id: int, reason: string}>}
     */
    public function requeueUnassignments(int $portalId, ?array $ids = null): array
    {
        $body = ['portal_id' => $portalId];
        if ($ids !== null) {
            $body['ids'] = array_values($ids);
        }
        return $this->call('requeueUnassignments', body: $body);
    }

    // ---- Okta sync --------------------------------------------------------------------

    /**
     * `sync_admin_user`: finds (by reference, then login) or creates the EFS-Admin
     * user's Okta user, updates its profile, stores the reference. Returns schema
     * SyncUserResponse.
     *
     * @param array{login: string, email: string, first_name: string, last_name: string,
     *        attributes?: array<string, mixed>|null} $profile schema SyncUserRequest
     * @return array{user_id: int, okta_user_id: string, outcome: string, updated_fields: list<string>,
     *         okta_status: string}
     */
    public function syncAdminUser(int $userId, array $profile): array
    {
        return $this->call('syncAdminUser', ['user_id' => $userId], body: self::profile($profile));
    }

    /**
     * `deprovision_admin_user`: deactivates the Okta user (unless still referenced) and
     * removes the reference. Returns schema DeprovisionResponse.
     *
     * @return array{user_id: int, okta_user_id: string|null, outcome: string, other_references: int}
     */
    public function deprovisionAdminUser(int $userId): array
    {
        return $this->call('deprovisionAdminUser', ['user_id' => $userId]);
    }

    /**
     * `sync_portal_user`: as {@see syncAdminUser()}, plus membership of the portal's Okta
     * group. Returns schema SyncPortalUserResponse.
     *
     * @param array{login: string, email: string, first_name: string, last_name: string,
     *        attributes?: array<string, mixed>|null} $profile schema SyncUserRequest
     * @return array{portal_id: int, user_id: int, okta_user_id: string, outcome: string,
     *         updated_fields: list<string>, okta_status: string, group_id: string, status: string}
     */
    public function syncPortalUser(int $portalId, int $userId, array $profile): array
    {
        return $this->call(
            'syncPortalUser',
            ['portal_id' => $portalId, 'user_id' => $userId],
            body: self::profile($profile),
        );
    }

    /**
     * `submit_sync_job`: syncs up to 10,000 portal users in the background. Never
     * retried by the client. Returns schema JobAccepted.
     *
     * @param list<array{user_id: int, login: string, email: string, first_name: string, last_name: string,
     *        attributes?: array<string, mixed>|null}> $users the body's `users` (schema BatchUser)
     * @return array{job_id: string, portal_id: int, state: string, total: int, status_url: string}
     */
    public function submitSyncJob(int $portalId, array $users): array
    {
        return $this->call(
            'submitSyncJob',
            ['portal_id' => $portalId],
            body: ['users' => array_map(self::profile(...), $users)],
        );
    }

    /**
     * `get_sync_job`: a batch job's progress and one page of its items. Returns schema
     * JobBody.
     *
     * @param string|null $state `pending`, `succeeded` or `failed`
     * @return array{job_id: string, portal_id: int, state: string, total: int,
     *         counts: array{pending: int, succeeded: int, failed: int, retrying: int}, created_at: string,
     *         finished_at?: string|null, items: list<array<string, mixed>>, next_cursor?: string|null}
     */
    public function getSyncJob(
        string $jobId,
        JobItemState|string|null $state = null,
        ?int $limit = null,
        ?string $cursor = null,
    ): array {
        return $this->call('getSyncJob', ['job_id' => $jobId], query: [
            'state' => self::plain($state),
            'limit' => $limit,
            'cursor' => $cursor,
        ]);
    }

    /**
     * `reconcile_portal`: compares the portal's Okta group with its references. A dry
     * run (the default) returns schema ReconcileReport; `$dryRun = false` queues a
     * repair and returns the run `{run_id, portal_id, state, status_url}` (documented
     * as RunAccepted), to follow with {@see getReconcileRun()}. Only dry runs are
     * retried by the client.
     *
     * @return array<string, mixed>
     */
    public function reconcilePortal(int $portalId, bool $dryRun = true): array
    {
        return $this->call(
            'reconcilePortal',
            ['portal_id' => $portalId],
            query: ['dry_run' => $dryRun],
            scope: $dryRun ? Scope::SYNC : Scope::SYNC . ' ' . Scope::ADMIN,
            retrySafe: $dryRun,
        );
    }

    // ---- the Okta users efs-iam manages ---------------------------------------------

    /**
     * `get_okta_user_management`: whether efs-iam manages the Okta user (created or
     * adopted it); {@see Exception\NotFound} when it does not. Returns schema
     * ManagedOktaUserBody.
     *
     * @return array{okta_user_id: string, origin: string, managed_by: string, managed_at: string,
     *         login?: string|null}
     */
    public function getOktaUserManagement(string $oktaUserId): array
    {
        return $this->call('getOktaUserManagement', ['okta_user_id' => $oktaUserId]);
    }

    /**
     * `adopt_okta_user` (iam:admin): efs-iam manages the Okta user from now on (it must
     * exist in Okta, not be deactivated, and hold no admin role). Audited with the
     * token's `sub`; adopting a managed user changes nothing. Returns schema
     * ManagedOktaUserBody.
     *
     * @return array{okta_user_id: string, origin: string, managed_by: string, managed_at: string,
     *         login?: string|null}
     */
    public function adoptOktaUser(string $oktaUserId): array
    {
        return $this->call('adoptOktaUser', ['okta_user_id' => $oktaUserId]);
    }

    /**
     * Every item of a keyset-paged listing, page after page. `$page` fetches one page for
     * a cursor (`null` for the first), e.g.
     * `fn (?string $cursor) => $iam->listPortalUserReferences(7, cursor: $cursor)`; the
     * items of each page are yielded in order until a page has no `next_cursor` (the last
     * page has none), or once `$max` items have been yielded. Every listing of the API
     * pages this way: queryErrorLog, listPortalUserReferences, listUnassignments,
     * listDeadLetters, listReconcileRuns, getSyncJob, getAdoption. Pages are fetched
     * lazily, one call each, as the loop reaches them.
     *
     * @template T
     * @param callable(?string): array{items: list<T>, next_cursor?: string|null} $page
     * @param int|null $max stop after this many items (null: to the end)
     * @return \Generator<int, T>
     */
    public function paginate(callable $page, ?int $max = null): \Generator
    {
        if ($max !== null && $max < 0) {
            throw new \InvalidArgumentException('$max must be 0 or more');
        }
        $remaining = $max ?? PHP_INT_MAX;
        $cursor = null;
        while ($remaining > 0) {
            $current = $page($cursor);
            foreach (array_slice($current['items'] ?? [], 0, $remaining) as $item) {
                $remaining--;
                yield $item;
            }
            $next = $current['next_cursor'] ?? null;
            // A page naming itself as the next one would loop for ever.
            if (!is_string($next) || $next === '' || $next === $cursor) {
                return;
            }
            $cursor = $next;
        }
    }

    /**
     * `clear_okta_event_watermarks` (iam:admin): forgets which Okta events about the user were
     * applied last, so its next event applies whatever its `published` (the way out when
     * a wrong watermark keeps marking genuine events `superseded`). Audited with the
     * token's `sub`. Returns schema ClearedWatermarks: what was cleared (none is fine).
     *
     * @return array{okta_user_id: string, cleared: list<array{subject: string, published: string,
     *         event_uuid: string}>}
     */
    public function clearOktaEventWatermarks(string $oktaUserId): array
    {
        return $this->call('clearOktaEventWatermarks', ['okta_user_id' => $oktaUserId]);
    }

    /**
     * `submit_adoption` (iam:admin): a bulk adoption of every Okta user EFS's tables
     * reference, checked in the background; a dry run (the default) adopts nobody and
     * lists who would be refused and why. Never retried by the client. Returns schema
     * AdoptionAccepted; follow it with {@see getAdoption()}.
     *
     * @return array{run_id: string, dry_run: bool, state: string, status_url: string}
     */
    public function submitAdoption(bool $dryRun = true): array
    {
        return $this->call('submitAdoption', body: ['dry_run' => $dryRun]);
    }

    /**
     * `get_adoption`: a bulk adoption run, its counts by outcome and one page of its
     * items. Returns schema AdoptionRunBody.
     *
     * @param string|null $state `pending`, `adopted`, `already_managed`, `would_adopt`, `refused`, `failed`
     * @return array{run_id: string, dry_run: bool, state: string, requested_by: string, created_at: string,
     *         counts: array<string, int>, items: list<array<string, mixed>>, next_cursor?: string}
     */
    public function getAdoption(string $runId, ?string $state = null, ?int $limit = null, ?string $cursor = null): array
    {
        return $this->call('getAdoption', ['run_id' => $runId], query: [
            'state' => $state,
            'limit' => $limit,
            'cursor' => $cursor,
        ]);
    }

    /**
     * `list_reconcile_runs`: repair runs, newest first. Returns schema RunList.
     *
     * @return array{items: list<array<string, mixed>>, next_cursor?: string|null}
     */
    public function listReconcileRuns(?int $portalId = null, ?int $limit = null, ?string $cursor = null): array
    {
        return $this->call('listReconcileRuns', query: [
            'portal_id' => $portalId,
            'limit' => $limit,
            'cursor' => $cursor,
        ]);
    }

    /**
     * `get_reconcile_run`: a repair run's state and, once `succeeded`, its report.
     * Returns schema ReconcileRunBody.
     *
     * @return array{run_id: string, portal_id: int, dry_run: bool, kind: string, state: string,
     *         created_at: string, attempts: int, report?: array<string, mixed>|null}
     */
    public function getReconcileRun(string $runId): array
    {
        return $this->call('getReconcileRun', ['run_id' => $runId]);
    }

    /**
     * `sync_status`: queue depth, jobs, the Okta rate-limit governor, the workers,
     * portals whose group is missing. Returns schema SyncStatus. Under `okta`:
     * `reachability.credentials_accepted`, `last_auth_failure` (Okta's error code),
     * and for a service app `dpop` (`mode`, `active`) and `scopes` (`requested`,
     * `granted`, `missing` with what each is `needed_for`).
     *
     * @return array{okta: array<string, mixed>, unassignments: array<string, mixed>, jobs: array<string, mixed>,
     *         workers: array<string, mixed>, missing_okta_groups: list<array<string, mixed>>}
     */
    public function syncStatus(): array
    {
        return $this->call('syncStatus');
    }

    // ---- any call -----------------------------------------------------------------------

    /**
     * Any call under `/api/v1` with a token carrying `$scope`: for what the methods above
     * do not cover (a newer operation). `$options` are Guzzle request options (`json`,
     * `body`, `headers`, `query`). Answers and errors are handled as for the methods;
     * the call is retried only for GET, PUT and DELETE. A {@see TransportException} names
     * `$path` as given (the methods name their route template instead).
     *
     * @param array<string, mixed> $options
     * @return array<mixed> the decoded answer ([] when empty)
     */
    public function request(
        string $method,
        #[\SensitiveParameter] string $path,
        string $scope,
        #[\SensitiveParameter] array $options = [],
    ): array {
        $method = strtoupper($method);
        $path = '/' . ltrim($path, '/');
        $response = $this->send(
            "$method $path",
            $method,
            $path,
            $path,
            $scope,
            $options,
            in_array($method, ['GET', 'PUT', 'DELETE'], true),
        );
        return $this->decode("$method $path", $response);
    }

    // ---- internals ------------------------------------------------------------------------

    /**
     * @param array<string, int|string> $params path parameters
     * @param array<string, mixed> $query query parameters; nulls are left out
     * @param array<mixed>|object|null $body the JSON body
     * @return array<mixed>
     */
    private function call(
        string $operation,
        #[\SensitiveParameter] array $params = [],
        #[\SensitiveParameter] array $query = [],
        #[\SensitiveParameter] array|object|null $body = null,
        ?string $scope = null,
        ?bool $retrySafe = null,
    ): array {
        [$method, $route, $defaultScope] = self::OPERATIONS[$operation];
        $path = preg_replace_callback(
            '/\{([a-z_]+)\}/',
            static fn (array $m): string => rawurlencode((string) $params[$m[1]]),
            $route,
        );
        $options = [];
        $query = array_filter($query, static fn ($v): bool => $v !== null);
        if ($query !== []) {
            $options[RequestOptions::QUERY] = array_map(
                static fn ($v) => is_bool($v) ? ($v ? 'true' : 'false') : $v,
                $query,
            );
        }
        if ($body !== null) {
            $options[RequestOptions::BODY] = json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES);
            $options[RequestOptions::HEADERS]['Content-Type'] = self::JSON;
        }
        $retrySafe ??= $method !== 'POST' || array_key_exists($operation, self::RETRY_SAFE);
        $response = $this->send($operation, $method, $route, $path, $scope ?? $defaultScope, $options, $retrySafe);
        return $this->decode($operation, $response);
    }

    /**
     * Sends one call, repeating it within the retry budget.
     *
     * @param string $route the path template (for messages: paths carry session ids)
     * @param array<string, mixed> $options
     */
    private function send(
        string $operation,
        string $method,
        string $route,
        #[\SensitiveParameter] string $path,
        string $scope,
        #[\SensitiveParameter] array $options,
        bool $retrySafe,
    ): ResponseInterface {
        $options[RequestOptions::HEADERS]['Accept'] = self::JSON . ', application/problem+json';
        if ($this->requestId !== null) {
            $options[RequestOptions::HEADERS]['x-request-id'] = $this->requestId;
        }
        $waited = 0.0;
        $started = microtime(true);
        $this->lastResponse = null;
        for ($attempt = 1;; $attempt++) {
            $this->lastAttempts = $attempt;
            $left = $this->timeLeft($started);
            $options[RequestOptions::HEADERS]['Authorization'] = 'Bearer ' . $this->tokens->token($scope);
            $sent = microtime(true);
            $context = ['operation' => $operation, 'method' => $method, 'route' => $route, 'attempt' => $attempt];
            try {
                $url = $this->root . self::API_PREFIX . $path;
                $response = $this->transfer($operation, $method, $route, $url, $options, $left);
            } catch (TransportException $e) {
                $this->logger?->warning('efs-iam gave no answer', $context + [
                    'duration_ms' => self::millisSince($sent),
                    'error' => $e->getMessage(),
                ]);
                $mayRepeat = $retrySafe && $this->mayWait($attempt, $waited, self::RECONNECT_DELAY, $started);
                $this->pauseBeforeRepeating($e, $mayRepeat);
                $waited += self::RECONNECT_DELAY;
                continue;
            }
            $this->lastResponse = $response;
            $status = $response->getStatusCode();
            $this->logger?->debug('efs-iam call', $context + [
                'status' => $status,
                'duration_ms' => self::millisSince($sent),
                'request_id' => $response->getHeaderLine('x-request-id'),
            ]);
            if (!$retrySafe || !in_array($status, [503, 429], true)) {
                return $response;
            }
            $delay = RetryPolicy::retryAfterSeconds($response->getHeaderLine('Retry-After'));
            if ($delay === null || !$this->mayWait($attempt, $waited, $delay, $started)) {
                return $response;
            }
            $this->logger?->info('efs-iam call repeated after Retry-After', $context + [
                'status' => $status,
                'wait_s' => $delay,
            ]);
            usleep((int) round($delay * 1_000_000));
            $waited += $delay;
        }
    }

    /**
     * A call safe to repeat is repeated after a lost answer too (efs-iam restarting, a
     * dropped connection), within the budget and the deadline; otherwise `$lost` is thrown.
     */
    private function pauseBeforeRepeating(TransportException $lost, bool $mayRepeat): void
    {
        if (!$mayRepeat) {
            throw $lost;
        }
        usleep((int) round(self::RECONNECT_DELAY * 1_000_000));
    }

    /** Seconds left of the call's deadline (null: no deadline); at least a millisecond. */
    private function timeLeft(float $started): ?float
    {
        return $this->deadline === null ? null : max(0.001, $this->deadline - (microtime(true) - $started));
    }

    /** Whether the retry budget and the deadline allow waiting `$delay` s and trying again. */
    private function mayWait(int $attempt, float $waited, float $delay, float $started): bool
    {
        $afterWait = microtime(true) - $started + $delay;
        return $this->retry->allows($attempt, $waited, $delay)
            && ($this->deadline === null || $afterWait < $this->deadline);
    }

    /** An enum's value, or the string as given. */
    private static function plain(\BackedEnum|string|null $value): ?string
    {
        return $value instanceof \BackedEnum ? (string) $value->value : $value;
    }

    private static function millisSince(float $since): int
    {
        return (int) round((microtime(true) - $since) * 1000);
    }

    /** @param array<string, mixed> $options */
    private function transfer(
        string $operation,
        string $method,
        string $route,
        #[\SensitiveParameter] string $url,
        #[\SensitiveParameter] array $options,
        ?float $left = null,
    ): ResponseInterface {
        $options[RequestOptions::HTTP_ERRORS] = false;
        $options[RequestOptions::ALLOW_REDIRECTS] = false;
        $options[RequestOptions::CONNECT_TIMEOUT] = min($this->connectTimeout, $left ?? INF);
        $options[RequestOptions::TIMEOUT] = min($this->timeout, $left ?? INF);
        try {
            return $this->http->request($method, $url, $options);
        } catch (ConnectException | RequestException $e) {
            // Guzzle's own message ends with the URL; the cURL error alone names no session id.
            $context = $e->getHandlerContext();
            $reason = is_string($context['error'] ?? null) && $context['error'] !== ''
                ? $context['error']
                : preg_replace('/ for https?:\/\/\S+$/', '', $e->getMessage());
            $errno = isset($context['errno']) && is_int($context['errno']) ? $context['errno'] : null;
            throw new TransportException($operation, $method, $route, (string) $reason, $errno);
        } catch (GuzzleException $e) {
            throw new TransportException($operation, $method, $route, get_class($e));
        }
    }

    /**
     * The answer's JSON, or the exception it stands for.
     *
     * @return array<mixed>
     */
    private function decode(string $operation, #[\SensitiveParameter] ResponseInterface $response): array
    {
        $status = $response->getStatusCode();
        $contentType = strtolower($response->getHeaderLine('Content-Type'));
        $body = (string) $response->getBody();
        if ($status >= 400) {
            if (str_starts_with($contentType, 'application/problem+json')) {
                throw ProblemException::fromResponse($response);
            }
            throw $this->unexpected($operation, $response, $body);
        }
        if ($body === '' || $status === 204) {
            return [];
        }
        if (!str_contains($contentType, 'json')) {
            throw $this->unexpected($operation, $response, $body);
        }
        try {
            $data = json_decode($body, true, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            throw $this->unexpected($operation, $response, $body);
        }
        return is_array($data) ? $data : [$data];
    }

    private function unexpected(
        string $operation,
        #[\SensitiveParameter] ResponseInterface $response,
        #[\SensitiveParameter] string $body,
    ): EfsIamException {
        $requestId = $response->getHeaderLine('x-request-id');
        return new UnexpectedResponseException(
            $operation,
            $response->getStatusCode(),
            $response->getHeaderLine('Content-Type'),
            strlen($body) > 300 ? substr($body, 0, 300) . '…' : $body,
            $requestId === '' ? null : $requestId,
        );
    }

    /**
     * @param list<int> $accept statuses whose body is the answer
     * @return array<mixed>
     */
    private function probe(string $operation, string $path, array $accept = [200]): array
    {
        $this->lastAttempts = 1;
        $response = $this->transfer($operation, 'GET', $path, $this->root . $path, [
            RequestOptions::HEADERS => ['Accept' => self::JSON],
        ]);
        $this->lastResponse = $response;
        if (in_array($response->getStatusCode(), $accept, true)) {
            $data = json_decode((string) $response->getBody(), true);
            if (is_array($data)) {
                return $data;
            }
        }
        return $this->decode($operation, $response);
    }

    /**
     * A profile as JSON: `attributes` stays an object when empty.
     *
     * @param array<string, mixed> $profile
     */
    private static function profile(array $profile): object
    {
        if (isset($profile['attributes']) && is_array($profile['attributes'])) {
            $profile['attributes'] = (object) $profile['attributes'];
        }
        return (object) $profile;
    }

    private static function time(\DateTimeInterface|string|null $time): ?string
    {
        return $time instanceof \DateTimeInterface ? $time->format(\DATE_RFC3339) : $time;
    }
}
