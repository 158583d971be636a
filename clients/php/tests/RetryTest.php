<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Exception\DatabaseUnavailable;
use Efs\Iam\RetryPolicy;
use Efs\Iam\Tests\Support\LiveTestCase;

/**
 * Retries against the `tight` instance (one database connection, one request at a
 * time), whose 503s come with `Retry-After: 1`.
 */
final class RetryTest extends LiveTestCase
{
    private static function tight(?RetryPolicy $retry = null): \Efs\Iam\Client
    {
        return self::client(self::env('EFS_IAM_TEST_TIGHT_URL'), $retry);
    }

    public function testABusyDatabaseIsWaitedOut(): void
    {
        $iam = self::tight();
        self::control('POST', '/tight/hold-database', ['ms' => 1200]);
        $started = microtime(true);
        $this->assertSame(['portal_id' => 3, 'settings' => []], $iam->getPortalSettings(3));
        $this->assertSame(2, $iam->lastAttempts(), 'a 503 after 0.5 s, one second of waiting, then the answer');
        $this->assertGreaterThanOrEqual(1.4, microtime(true) - $started);
    }

    public function testAnOverloadedInstanceIsWaitedOut(): void
    {
        $iam = self::tight();
        self::control('POST', '/tight/occupy', ['ms' => 700]);
        $this->assertSame(['portal_id' => 4, 'settings' => []], $iam->getPortalSettings(4));
        $this->assertGreaterThanOrEqual(2, $iam->lastAttempts());
        usleep(300_000);
    }

    public function testAWaitLongerThanTheBudgetIsNotStarted(): void
    {
        $iam = self::tight(new RetryPolicy(maxAttempts: 3, maxWaitSeconds: 0.5));
        self::control('POST', '/tight/hold-database', ['ms' => 1200]);
        $started = microtime(true);
        $e = self::expectProblem(DatabaseUnavailable::class, 503, 'database-unavailable', fn () => $iam->getPortalSettings(5));
        $this->assertSame(1, $iam->lastAttempts(), 'Retry-After: 1 does not fit 0.5 s');
        $this->assertSame(1, $e->retryAfter);
        $this->assertLessThan(1.0, microtime(true) - $started);
        usleep(900_000);
    }

    public function testAttemptsAreBounded(): void
    {
        $iam = self::tight(new RetryPolicy(maxAttempts: 2, maxWaitSeconds: 10));
        self::control('POST', '/tight/hold-database', ['ms' => 4000]);
        $started = microtime(true);
        self::expectProblem(DatabaseUnavailable::class, 503, 'database-unavailable', fn () => $iam->getPortalSettings(6));
        $this->assertSame(2, $iam->lastAttempts());
        $this->assertGreaterThanOrEqual(1.9, microtime(true) - $started, 'two attempts, one wait');
        usleep((int) max(0, (4.2 - (microtime(true) - $started)) * 1_000_000));
    }

    public function testWritesThatAreNotSafeToRepeatAreNotRepeated(): void
    {
        $iam = self::tight();
        foreach (
            [
            'recordError' => fn () => $iam->recordError(['message' => 'once only']),
            'enqueueUnassignments' => fn () => $iam->enqueueUnassignments(7, [['user_id' => 1, 'okta_user_id' => '00uONCE']]),
            'submitSyncJob' => fn () => $iam->submitSyncJob(7, [['user_id' => 1] + self::profile('once@example.com')]),
            'reconcilePortal' => fn () => $iam->reconcilePortal(7, dryRun: false),
            ] as $operation => $call
        ) {
            self::control('POST', '/tight/hold-database', ['ms' => 1000]);
            self::expectProblem(DatabaseUnavailable::class, 503, 'database-unavailable', $call);
            $this->assertSame(1, $iam->lastAttempts(), "$operation is in NOT_RETRIED");
            usleep(700_000);
        }
    }

    public function testAnIdempotentSyncIsRepeated(): void
    {
        $iam = self::tight();
        $user = self::nextId();
        self::seedEfsUsers([$user], [], 'tight');
        self::control('POST', '/tight/hold-database', ['ms' => 1200]);
        $synced = $iam->syncAdminUser($user, self::profile(self::uniqueLogin('retried')));
        $this->assertSame('created', $synced['outcome']);
        $this->assertSame(2, $iam->lastAttempts());
    }
}
