<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Efs\Iam\Exception\BadRequest;
use Efs\Iam\Exception\DatabaseUnavailable;
use Efs\Iam\Exception\Forbidden;
use Efs\Iam\Exception\IdpUnavailable;
use Efs\Iam\Exception\Internal;
use Efs\Iam\Exception\InvalidIdToken;
use Efs\Iam\Exception\InvalidParameter;
use Efs\Iam\Exception\IssuerNotAllowed;
use Efs\Iam\Exception\MalformedBody;
use Efs\Iam\Exception\MethodNotAllowed;
use Efs\Iam\Exception\NotFound;
use Efs\Iam\Exception\OktaAuthFailed;
use Efs\Iam\Exception\OktaGroupNotFound;
use Efs\Iam\Exception\OktaLoginConflict;
use Efs\Iam\Exception\OktaNotConfigured;
use Efs\Iam\Exception\OktaRefused;
use Efs\Iam\Exception\OktaUnavailable;
use Efs\Iam\Exception\OktaUserDeprovisioned;
use Efs\Iam\Exception\OktaUserNotFound;
use Efs\Iam\Exception\OktaUserNotManaged;
use Efs\Iam\Exception\OktaUserPrivileged;
use Efs\Iam\Exception\OktaValidationFailed;
use Efs\Iam\Exception\Overloaded;
use Efs\Iam\Exception\PayloadTooLarge;
use Efs\Iam\Exception\PortalNotLinked;
use Efs\Iam\Exception\ServiceUnavailable;
use Efs\Iam\Exception\Timeout;
use Efs\Iam\Exception\TokenStoreUnavailable;
use Efs\Iam\Exception\TokenTooLarge;
use Efs\Iam\Exception\TokenUnreadable;
use Efs\Iam\Exception\TransportException;
use Efs\Iam\Exception\Unauthorized;
use Efs\Iam\Exception\UnknownEfsUser;
use Efs\Iam\Exception\UnsupportedMediaType;
use Efs\Iam\Exception\UserBusy;
use Efs\Iam\Exception\ValidationFailed;
use Efs\Iam\RetryPolicy;
use Efs\Iam\Scope;
use Efs\Iam\Tests\Support\LiveTestCase;

/**
 * Every problem type of the API, provoked against a live instance the way it happens
 * in production, each arriving as its own exception class with the document's fields.
 */
final class ProblemTypesTest extends LiveTestCase
{
    // ---- the request itself ---------------------------------------------------------

    public function testMalformedBody(): void
    {
        $e = self::expectProblem(MalformedBody::class, 400, 'malformed-body', fn () => self::client()->request(
            'PUT',
            '/portals/1/settings/theme',
            Scope::WRITE,
            ['body' => '{"value": ', 'headers' => ['Content-Type' => 'application/json']],
        ));
        $this->assertStringContainsString('EOF', $e->detail);
    }

    public function testBadRequest(): void
    {
        // A key that is not UTF-8 never reaches a handler: the router refuses the path.
        self::expectProblem(BadRequest::class, 400, 'bad-request', fn () => self::client()->getPortalSetting(1, "th\xFFme"));
    }

    public function testInvalidParameter(): void
    {
        $e = self::expectProblem(InvalidParameter::class, 400, 'invalid-parameter', fn () => self::client()->getPortalSettings(0));
        $this->assertSame(['portal_id'], array_keys($e->fieldMessages()));
        $e = self::expectProblem(
            InvalidParameter::class,
            400,
            'invalid-parameter',
            fn () => self::client()->purgeErrorLog('last tuesday'),
        );
        $this->assertSame(['before'], array_keys($e->fieldMessages()));
    }

    public function testUnauthorized(): void
    {
        $iam = self::client(tokens: new Hs256Tokens('another-secret-of-at-least-32-bytes!!', 'efs-admin', 'efs-iam'));
        $e = self::expectProblem(Unauthorized::class, 401, 'unauthorized', fn () => $iam->getPortalSettings(1));
        $this->assertSame('invalid signature', $e->detail);
        $this->assertStringContainsString('error="invalid_token"', $iam->lastResponse()?->getHeaderLine('WWW-Authenticate') ?? '');
    }

    public function testForbidden(): void
    {
        // A caller whose identity provider grants less than the operation needs.
        $minter = self::tokens();
        $readOnly = self::client(tokens: fn (string $scope): string => $minter->token(Scope::READ));
        $e = self::expectProblem(Forbidden::class, 403, 'forbidden', fn () => $readOnly->putPortalSetting(1, 'theme', 'x'));
        $this->assertSame('this operation needs the scope iam:write', $e->detail);
        $this->assertStringContainsString('insufficient_scope', $readOnly->lastResponse()?->getHeaderLine('WWW-Authenticate') ?? '');

        $withoutAdmin = self::client(tokens: fn (string $scope): string => $minter->token(str_replace(' iam:admin', '', $scope)));
        $withoutAdmin->putPortalSetting(1, 'theme', 'x');
        $e = self::expectProblem(
            Forbidden::class,
            403,
            'forbidden',
            fn () => $withoutAdmin->putPortalSettings(1, ['theme' => 'y', 'OKTA_ISSUER' => 'https://acme.okta.com']),
        );
        $this->assertSame('this operation needs the scope iam:admin', $e->detail);
    }

    public function testNotFound(): void
    {
        $e = self::expectProblem(NotFound::class, 404, 'not-found', fn () => self::client()->getAdminUserReference(self::nextId()));
        $this->assertSame([], $e->errors);
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => self::client()->request('GET', '/no-such-endpoint', Scope::READ));
    }

    public function testMethodNotAllowed(): void
    {
        $iam = self::client();
        self::expectProblem(MethodNotAllowed::class, 405, 'method-not-allowed', fn () => $iam->request('DELETE', '/portals/1/unassignments', Scope::WRITE));
        $this->assertStringContainsString('POST', $iam->lastResponse()?->getHeaderLine('Allow') ?? '');
    }

    public function testPayloadTooLarge(): void
    {
        // The `peer` instance takes bodies of up to 4 KiB.
        self::expectProblem(PayloadTooLarge::class, 413, 'payload-too-large', fn () => self::client(self::env('EFS_IAM_TEST_PEER_URL'))
            ->recordError(['message' => str_repeat('x', 5000)]));
    }

    public function testUnsupportedMediaType(): void
    {
        self::expectProblem(UnsupportedMediaType::class, 415, 'unsupported-media-type', fn () => self::client()->request(
            'PUT',
            '/portals/1/settings/theme',
            Scope::WRITE,
            ['body' => 'value=a', 'headers' => ['Content-Type' => 'application/x-www-form-urlencoded']],
        ));
    }

    public function testValidationFailed(): void
    {
        $e = self::expectProblem(
            ValidationFailed::class,
            422,
            'validation-failed',
            fn () => self::client()->putAdminUserReference(1, 'not an Okta id!'),
        );
        $this->assertSame(['okta_user_id' => 'may contain only ASCII letters and digits'], $e->fieldMessages());
        $e = self::expectProblem(
            ValidationFailed::class,
            422,
            'validation-failed',
            fn () => self::client()->syncAdminUser(1, self::profile('a@example.com', ['first_name' => ' ', 'password' => 'x'])),
        );
        $this->assertContains(array_keys($e->fieldMessages()), [['first_name'], ['password'], ['first_name', 'password']]);
    }

    public function testUnknownEfsUser(): void
    {
        // No row in EFS's `users` for this id: MariaDB's foreign key refuses the reference.
        self::manageOktaUsers(['00uPHPNOBODY00000001']);
        $e = self::expectProblem(
            UnknownEfsUser::class,
            422,
            'unknown-efs-user',
            fn () => self::client()->putAdminUserReference(self::nextId(), '00uPHPNOBODY00000001'),
        );
        $this->assertSame(['user_id'], array_keys($e->fieldMessages()));
    }

    // ---- Okta sync ------------------------------------------------------------------

    public function testPortalNotLinked(): void
    {
        $portal = self::nextId();
        $e = self::expectProblem(
            PortalNotLinked::class,
            409,
            'portal-not-linked',
            fn () => self::client()->syncPortalUser($portal, 1, self::profile(self::uniqueLogin('unlinked'))),
        );
        $this->assertStringContainsString("portal $portal", $e->detail);
    }

    public function testOktaGroupNotFoundForAStoredGroup(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $group = self::oktaGroup('deleted later');
        $iam->putPortalSetting($portal, 'okta_group_id', $group);
        self::control('DELETE', "/okta/groups/$group");
        $panelist = self::nextId();
        self::seedEfsUsers([], [$panelist]);
        $e = self::expectProblem(
            OktaGroupNotFound::class,
            409,
            'okta-group-not-found',
            fn () => $iam->syncPortalUser($portal, $panelist, self::profile(self::uniqueLogin('orphan'))),
        );
        $this->assertStringContainsString($group, $e->detail);
        $this->assertSame('failed', $iam->getPortalUserReference($portal, $panelist)['status'], 'recorded on the reference');
        $this->assertCount(1, $iam->queryErrorLog(q: "portal user $panelist (portal $portal)")['items'], 'and in the error log');
    }

    public function testOktaGroupNotFoundForAGroupBeingWritten(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $e = self::expectProblem(
            OktaGroupNotFound::class,
            422,
            'okta-group-not-found',
            fn () => $iam->putPortalSetting($portal, 'okta_group_id', '00gNOSUCHGROUP000001'),
        );
        $this->assertSame(['value'], array_keys($e->fieldMessages()));
        $e = self::expectProblem(
            OktaGroupNotFound::class,
            422,
            'okta-group-not-found',
            fn () => $iam->putPortalSettings($portal, ['okta_group_id' => '00gNOSUCHGROUP000001']),
        );
        $this->assertSame(['settings.okta_group_id'], array_keys($e->fieldMessages()));
        $this->assertSame([], $iam->getPortalSettings($portal)['settings'], 'nothing stored');
    }

    public function testOktaUserDeprovisioned(): void
    {
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        $login = self::uniqueLogin('left');
        $gone = self::control('POST', '/okta/users', ['login' => $login, 'status' => 'DEPROVISIONED'])['id'];
        self::manageOktaUsers([$gone]);
        $e = self::expectProblem(
            OktaUserDeprovisioned::class,
            409,
            'okta-user-deprovisioned',
            fn () => self::client()->syncAdminUser($user, self::profile($login)),
        );
        $this->assertStringContainsString($gone, $e->detail);
        $this->assertSame('DEPROVISIONED', self::control('GET', "/okta/users/$gone")['status'], 'not reactivated');
    }

    // ---- the Okta users efs-iam manages ---------------------------------------------

    public function testOktaUserNotManaged(): void
    {
        $iam = self::client();
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        // Someone else's Okta user (an IT account, another application's user) has the
        // login the sync names: efs-iam neither links, renames nor groups it.
        $login = self::uniqueLogin('someone-else');
        $theirs = self::control('POST', '/okta/users', ['login' => $login, 'status' => 'ACTIVE'])['id'];
        $e = self::expectProblem(
            OktaUserNotManaged::class,
            409,
            'okta-user-not-managed',
            fn () => $iam->syncAdminUser($user, self::profile($login)),
        );
        $this->assertStringContainsString($theirs, $e->detail);
        $this->assertSame(['login'], array_keys($e->fieldMessages()));
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getAdminUserReference($user));

        // Nor may a reference name it.
        $e = self::expectProblem(
            OktaUserNotManaged::class,
            409,
            'okta-user-not-managed',
            fn () => $iam->putAdminUserReference($user, $theirs),
        );
        $this->assertSame(['okta_user_id'], array_keys($e->fieldMessages()));
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getAdminUserReference($user));
    }

    public function testOktaUserPrivileged(): void
    {
        $admin = self::oktaUser('okta-admin');
        self::control('POST', "/okta/users/$admin/roles", ['type' => 'SUPER_ADMIN']);
        $e = self::expectProblem(
            OktaUserPrivileged::class,
            409,
            'okta-user-privileged',
            fn () => self::client()->adoptOktaUser($admin),
        );
        $this->assertStringContainsString('SUPER_ADMIN', $e->detail);
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => self::client()->getOktaUserManagement($admin));
    }

    public function testOktaUserNotFound(): void
    {
        $e = self::expectProblem(
            OktaUserNotFound::class,
            422,
            'okta-user-not-found',
            fn () => self::client()->adoptOktaUser('00uPHPNOSUCHUSER0001'),
        );
        $this->assertStringContainsString('00uPHPNOSUCHUSER0001', $e->detail);
    }

    public function testOktaLoginConflict(): void
    {
        $iam = self::client();
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        $iam->syncAdminUser($user, self::profile(self::uniqueLogin('first')));
        // Someone else has the login the user is being renamed to.
        $taken = self::uniqueLogin('taken');
        self::control('POST', '/okta/users', ['login' => $taken, 'status' => 'ACTIVE']);
        $e = self::expectProblem(
            OktaLoginConflict::class,
            409,
            'okta-login-conflict',
            fn () => $iam->syncAdminUser($user, self::profile($taken)),
        );
        $this->assertSame(['login' => 'taken by another Okta user'], $e->fieldMessages());
    }

    public function testOktaValidationFailed(): void
    {
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        // Okta's own check of the profile.
        $e = self::expectProblem(
            OktaValidationFailed::class,
            422,
            'okta-validation-failed',
            fn () => self::client()->syncAdminUser($user, self::profile(self::uniqueLogin('mail'), ['email' => 'bad@nodot'])),
        );
        $this->assertSame(['email'], array_keys($e->profileErrors()));
        $this->assertStringContainsString('Does not match required pattern', $e->profileErrors()['email']);

        // Okta's E0000001 for a custom profile attribute, as a real org's schema answers it.
        $login = self::uniqueLogin('country');
        self::oktaFault([
            'method' => 'POST',
            'path_prefix' => '/api/v1/users',
            'kind' => 'response',
            'status' => 400,
            'body' => [
                'errorCode' => 'E0000001',
                'errorSummary' => 'Api validation failed: countryCode',
                'errorLink' => 'E0000001',
                'errorId' => 'oaePHPCLIENTTEST',
                'errorCauses' => [['errorSummary' => 'countryCode: The field is too long']],
            ],
        ]);
        $e = self::expectProblem(
            OktaValidationFailed::class,
            422,
            'okta-validation-failed',
            fn () => self::client()->syncAdminUser($user, self::profile($login, ['attributes' => ['countryCode' => 'DEUTSCHLAND']])),
        );
        // The field is named because the request sent `countryCode`; the message is
        // Okta's cause.
        $this->assertSame(['attributes.countryCode'], array_keys($e->profileErrors()));
        $this->assertStringContainsString('The field is too long', $e->profileErrors()['attributes.countryCode']);
    }

    public function testOktaAuthFailed(): void
    {
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        self::control('PUT', '/okta/api-token', ['token' => 'rotated-by-an-okta-admin']);
        try {
            $e = self::expectProblem(
                OktaAuthFailed::class,
                502,
                'okta-auth-failed',
                fn () => self::client()->syncAdminUser($user, self::profile(self::uniqueLogin('auth'))),
            );
        } finally {
            self::control('PUT', '/okta/api-token', ['token' => 'test-token']);
        }
        $this->assertFalse($e->isTransient(), 'an operator must act');
        $this->assertSame(401, self::client()->syncStatus()['okta']['last_auth_failure']['status'] ?? null, 'shown on the status page');
    }

    public function testOktaRefused(): void
    {
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        $login = self::uniqueLogin('refused');
        self::oktaFault([
            'method' => 'GET',
            'path_prefix' => "/api/v1/users/$login",
            'kind' => 'response',
            'status' => 403,
            'body' => [
                'errorCode' => 'E0000006',
                'errorSummary' => 'You do not have permission to perform the requested action',
                'errorLink' => 'E0000006',
                'errorId' => 'oaePHPCLIENTTEST',
                'errorCauses' => [],
            ],
        ]);
        $e = self::expectProblem(
            OktaRefused::class,
            502,
            'okta-refused',
            fn () => self::client()->syncAdminUser($user, self::profile($login)),
        );
        $this->assertStringContainsString('E0000006', $e->detail);
    }

    public function testOktaNotConfigured(): void
    {
        // The `peer` instance has no Okta settings. A configuration problem: no
        // Retry-After, not transient, so the default policy does not repeat the call.
        $iam = self::client(self::env('EFS_IAM_TEST_PEER_URL'));
        $e = self::expectProblem(
            OktaNotConfigured::class,
            503,
            'okta-not-configured',
            fn () => $iam->syncAdminUser(1, self::profile('a@example.com')),
        );
        $this->assertInstanceOf(\Efs\Iam\Exception\Misconfigured::class, $e);
        $this->assertFalse($e->isTransient());
        $this->assertNull($e->retryAfter);
        $this->assertSame(1, $iam->lastAttempts(), 'not retried');
    }

    public function testOktaUnavailable(): void
    {
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        $login = self::uniqueLogin('outage');
        self::oktaFault(['method' => 'GET', 'path_prefix' => "/api/v1/users/$login", 'kind' => 'service_unavailable', 'times' => 10]);
        try {
            $e = self::expectProblem(
                OktaUnavailable::class,
                503,
                'okta-unavailable',
                fn () => self::oneAttempt()->syncAdminUser($user, self::profile($login)),
            );
        } finally {
            self::control('DELETE', '/okta/faults');
        }
        $this->assertSame(1, $e->retryAfter);
        $this->assertTrue($e->isTransient());
    }

    public function testUserBusy(): void
    {
        // Another instance is syncing this user (it holds the user's lock for a minute):
        // efs-iam waits 20 s for the lock, then gives up.
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        self::control('POST', '/sync-locks', ['name' => "admin:$user", 'seconds' => 60]);
        $started = microtime(true);
        try {
            $e = self::expectProblem(
                UserBusy::class,
                503,
                'user-busy',
                fn () => self::oneAttempt()->syncAdminUser($user, self::profile(self::uniqueLogin('busy'))),
            );
        } finally {
            self::control('DELETE', "/sync-locks/admin:$user");
        }
        $this->assertGreaterThanOrEqual(19.0, microtime(true) - $started);
        $this->assertSame(1, $e->retryAfter);
    }

    // ---- session tokens -------------------------------------------------------------

    public function testIssuerNotAllowed(): void
    {
        // Written through `main`, whose allow-list has the fake's issuer; used through
        // `peer`, which shares the database and allows no issuer at all.
        $portal = self::nextId();
        self::client()->putPortalSettings($portal, ['okta_issuer' => self::env('EFS_IAM_TEST_OKTA_URL'), 'okta_client_id' => '0oaPHPISSUER0000001']);
        $idToken = self::control('POST', '/okta/id-token', ['claims' => ['sub' => '00uPHPISSUER', 'aud' => '0oaPHPISSUER0000001']])['id_token'];
        $peer = self::client(self::env('EFS_IAM_TEST_PEER_URL'));
        $session = "php-issuer-$portal";
        self::expectProblem(
            IssuerNotAllowed::class,
            409,
            'issuer-not-allowed',
            fn () => $peer->putSessionToken($session, ['access_token' => 'a', 'id_token' => $idToken], $portal),
        );
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $peer->getSessionToken($session));
    }

    public function testInvalidIdToken(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $iam->putPortalSettings($portal, ['okta_issuer' => self::env('EFS_IAM_TEST_OKTA_URL'), 'okta_client_id' => '0oaPHPINVALID000001']);
        $e = self::expectProblem(
            InvalidIdToken::class,
            422,
            'invalid-id-token',
            fn () => $iam->putSessionToken("php-bad-$portal", ['id_token' => 'abc.def'], $portal),
        );
        $this->assertSame(['id_token'], array_keys($e->fieldMessages()));
        $forOtherApp = self::control('POST', '/okta/id-token', ['claims' => ['sub' => '00uPHPX', 'aud' => '0oaSOMEONEELSE']])['id_token'];
        $e = self::expectProblem(
            InvalidIdToken::class,
            422,
            'invalid-id-token',
            fn () => $iam->putSessionToken("php-bad-$portal", ['id_token' => $forOtherApp], $portal),
        );
        $this->assertSame('id_token: aud is not the portal\'s okta_client_id', $e->detail);
    }

    public function testIdpUnavailable(): void
    {
        $iam = self::oneAttempt();
        $portal = self::nextId();
        $iam->putPortalSettings($portal, ['okta_issuer' => self::env('EFS_IAM_TEST_DEAD_ISSUER'), 'okta_client_id' => '0oaPHPDEAD000000001']);
        $idToken = self::control('POST', '/okta/id-token', ['claims' => ['sub' => '00uPHPDEAD', 'aud' => '0oaPHPDEAD000000001']])['id_token'];
        self::expectProblem(
            IdpUnavailable::class,
            503,
            'idp-unavailable',
            fn () => $iam->putSessionToken("php-dead-$portal", ['id_token' => $idToken], $portal),
        );
    }

    public function testTokenUnreadable(): void
    {
        // Stored by `main` (key k1), read by `peer` (key k2 only): a key that was
        // rotated out before the data was re-encrypted.
        $session = 'php-unreadable-' . self::nextId();
        self::client()->putSessionToken($session, ['access_token' => 'sealed-with-k1']);
        $e = self::expectProblem(
            TokenUnreadable::class,
            500,
            'token-unreadable',
            fn () => self::client(self::env('EFS_IAM_TEST_PEER_URL'))->getSessionToken($session),
        );
        $this->assertStringNotContainsString('sealed-with-k1', $e->detail);
    }

    public function testTokenTooLarge(): void
    {
        $cache = self::cacheUrl();
        $session = 'php-huge-' . self::nextId();
        $iam = self::client($cache);
        $e = self::expectProblem(
            TokenTooLarge::class,
            413,
            'token-too-large',
            fn () => $iam->putSessionToken($session, ['access_token' => str_repeat('x', 6000)]),
        );
        $this->assertStringContainsString('4096', $e->detail);
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getSessionToken($session));
    }

    public function testTokenStoreUnavailable(): void
    {
        $iam = self::client(self::cacheUrl(), RetryPolicy::none());
        $session = 'php-memcached-' . self::nextId();
        $iam->putSessionToken($session, ['access_token' => 'kept']);
        self::control('POST', '/memcached/cut');
        try {
            self::expectProblem(TokenStoreUnavailable::class, 503, 'token-store-unavailable', fn () => $iam->getSessionToken($session));
        } finally {
            self::control('POST', '/memcached/restore');
        }
        $this->assertSame('kept', $iam->getSessionToken($session)['idp_response']['access_token']);
    }

    // ---- the service itself ---------------------------------------------------------

    public function testServiceUnavailable(): void
    {
        // The `jwks` instance finds callers' keys in an identity provider's JWKS. A key
        // it has not seen makes it refetch the set, and the provider is down.
        self::oktaFault(['org' => 'caller_idp', 'method' => 'GET', 'path_prefix' => '/oauth2/v1/keys', 'kind' => 'internal_server_error']);
        $iam = self::client(
            self::env('EFS_IAM_TEST_JWKS_URL'),
            RetryPolicy::none(),
            fn (string $scope): string => self::control('POST', '/caller-token', ['scope' => $scope, 'kid' => 'rotated-in-today'])['token'],
        );
        $e = self::expectProblem(ServiceUnavailable::class, 503, 'service-unavailable', fn () => $iam->getPortalSettings(1));
        $this->assertSame(5, $e->retryAfter);
    }

    public function testInternal(): void
    {
        // A table the `tight` instance needs is gone.
        self::control('POST', '/tight/tables/iam_error_log/hide');
        try {
            $e = self::expectProblem(Internal::class, 500, 'internal', fn () => self::oneAttempt(self::env('EFS_IAM_TEST_TIGHT_URL'))->queryErrorLog());
        } finally {
            self::control('POST', '/tight/tables/iam_error_log/restore');
        }
        $this->assertStringContainsString('request id', $e->detail);
        $this->assertStringNotContainsString('iam_error_log', $e->detail, 'no SQL in answers');
    }

    public function testDatabaseUnavailable(): void
    {
        // The `tight` instance's one connection is taken for 1.5 s; it waits 0.5 s.
        self::control('POST', '/tight/hold-database', ['ms' => 1500]);
        $e = self::expectProblem(
            DatabaseUnavailable::class,
            503,
            'database-unavailable',
            fn () => self::oneAttempt(self::env('EFS_IAM_TEST_TIGHT_URL'))->getPortalSettings(1),
        );
        $this->assertSame(1, $e->retryAfter);
        usleep(1_200_000);
    }

    public function testOverloaded(): void
    {
        // `tight` serves one request at a time, and one is waiting 1.5 s for Okta.
        self::control('POST', '/tight/occupy', ['ms' => 1500]);
        $e = self::expectProblem(
            Overloaded::class,
            503,
            'overloaded',
            fn () => self::oneAttempt(self::env('EFS_IAM_TEST_TIGHT_URL'))->getPortalSettings(1),
        );
        $this->assertSame(1, $e->retryAfter);
        usleep(1_700_000);
    }

    public function testTimeout(): void
    {
        // `tight` answers within 2 s; its Okta takes 4 s to say whether a group exists.
        self::oktaFault(['org' => 'slow_okta', 'method' => 'GET', 'path_prefix' => '/api/v1/groups/', 'kind' => 'hang', 'ms' => 4000]);
        $iam = self::oneAttempt(self::env('EFS_IAM_TEST_TIGHT_URL'));
        $started = microtime(true);
        self::expectProblem(Timeout::class, 503, 'timeout', fn () => $iam->putPortalSetting(1, 'okta_group_id', '00gSLOWOKTA000000001'));
        $this->assertLessThan(3.5, microtime(true) - $started);
    }

    public function testNoAnswerIsATransportException(): void
    {
        $iam = new Client('http://127.0.0.1:9', self::tokens(), connectTimeout: 1.0);
        try {
            $iam->getSessionToken('a-session-id-that-is-a-secret');
            $this->fail('nothing listens there');
        } catch (TransportException $e) {
            $this->assertSame('getSessionToken', $e->operation);
            $this->assertStringContainsString('GET /sessions/{session_id}/token', $e->getMessage());
            $this->assertStringNotContainsString('a-session-id-that-is-a-secret', $e->getMessage(), 'paths carry secrets');
            $this->assertFalse($e->isTimeout());
        }
        // A hanging answer: the request timeout is the client's.
        self::oktaFault(['org' => 'slow_okta', 'method' => 'GET', 'path_prefix' => '/api/v1/groups/', 'kind' => 'hang', 'ms' => 2500]);
        $impatient = self::client(self::env('EFS_IAM_TEST_TIGHT_URL'), RetryPolicy::none(), timeout: 0.5);
        try {
            $impatient->putPortalSetting(2, 'okta_group_id', '00gSLOWOKTA000000002');
            $this->fail('the answer takes longer than the timeout');
        } catch (TransportException $e) {
            $this->assertTrue($e->isTimeout(), $e->getMessage());
        }
        usleep(1_700_000); // until `tight` has given up on that request too
    }

    private static function cacheUrl(): string
    {
        $url = getenv('EFS_IAM_TEST_CACHE_URL');
        if ($url === false || $url === '') {
            self::markTestSkipped('no memcached-backed instance in this run (TEST_MEMCACHED_SERVERS unset)');
        }
        return $url;
    }
}
