<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * The scopes of efs-iam caller tokens (the `scope` claim, space-separated). The client
 * asks for exactly the scope each operation needs, as the OpenAPI document's
 * `security` requirement names it.
 */
final class Scope
{
    /** Lookups and the error log. */
    public const READ = 'iam:read';
    /** Settings, references, error-log writes, enqueueing unassignments. */
    public const WRITE = 'iam:write';
    /** Sync triggers, jobs, reconciliation. */
    public const SYNC = 'iam:sync';
    /** The session-token endpoints, and only those. */
    public const TOKENS = 'iam:tokens';
    /**
     * The decisions about trust and about whose Okta identity efs-iam manages: writing
     * or deleting the trust settings (with iam:write), adopting Okta users, repairing a
     * reconciliation (with iam:sync).
     */
    public const ADMIN = 'iam:admin';

    /** The portal settings whose writes and deletes also need {@see ADMIN} (keys compare case-insensitively). */
    public const TRUST_SETTINGS = ['okta_issuer', 'okta_client_id', 'okta_group_id', 'reconcile_mode'];

    /**
     * The scope writing or deleting these portal setting keys needs.
     *
     * @param iterable<string> $keys
     */
    public static function forSettingWrite(iterable $keys): string
    {
        foreach ($keys as $key) {
            if (in_array(strtolower((string) $key), self::TRUST_SETTINGS, true)) {
                return self::WRITE . ' ' . self::ADMIN;
            }
        }
        return self::WRITE;
    }

    private function __construct()
    {
    }
}
