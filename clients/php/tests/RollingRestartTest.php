<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Client;
use Efs\Iam\Exception\TransportException;
use Efs\Iam\RetryPolicy;
use Efs\Iam\Tests\Support\LiveTestCase;
use Psr\Log\AbstractLogger;

/**
 * A rolling restart of efs-iam, live: the `restartable` instance (tests/clients) is
 * stopped and started again on its own address while a PHP request needs it. A call
 * safe to repeat gets its answer from the new process; a write that is not safe to
 * repeat fails at once with TransportException.
 */
final class RollingRestartTest extends LiveTestCase
{
    /** How long the instance is away: longer than one reconnect pause (0.5 s). */
    private const DOWN_MS = 1500;

    private static function logger(): AbstractLogger
    {
        return new class extends AbstractLogger {
            /** @var list<array{0: string, 1: string}> */
            public array $lines = [];

            public function log($level, $message, array $context = []): void
            {
                $this->lines[] = [(string) $level, (string) $message];
            }
        };
    }

    private static function restartable(AbstractLogger $logger): Client
    {
        return new Client(
            self::env('EFS_IAM_TEST_RESTARTABLE_URL'),
            self::tokens(),
            retry: new RetryPolicy(maxAttempts: 10, maxWaitSeconds: 10.0),
            deadline: 20.0,
            logger: $logger,
        );
    }

    public function testAGetIsAnsweredByTheRestartedProcess(): void
    {
        $logger = self::logger();
        $iam = self::restartable($logger);
        $portal = self::nextId();
        $iam->putPortalSetting($portal, 'theme', 'before the restart');

        self::control('POST', '/restartable/restart', ['down_ms' => self::DOWN_MS]);
        $started = microtime(true);
        $setting = $iam->getPortalSetting($portal, 'theme');
        $took = microtime(true) - $started;

        $this->assertSame('before the restart', $setting['value']);
        $this->assertSame(200, $iam->lastResponse()?->getStatusCode());
        $this->assertGreaterThan(2, $iam->lastAttempts(), 'the first attempts found the address refusing');
        $this->assertGreaterThanOrEqual(self::DOWN_MS / 1000 - 0.1, $took, 'the answer came from the new process');
        $lost = array_filter($logger->lines, static fn (array $line): bool => $line[0] === 'warning');
        $this->assertCount($iam->lastAttempts() - 1, $lost, 'one warning per lost answer');
    }

    public function testAWriteNotSafeToRepeatIsNotRepeatedDuringTheRestart(): void
    {
        $logger = self::logger();
        $iam = self::restartable($logger);
        $iam->live();

        self::control('POST', '/restartable/restart', ['down_ms' => self::DOWN_MS]);
        try {
            $iam->recordError(['message' => 'during a restart', 'status_code' => 500, 'error_code' => 'E0000009']);
            $this->fail('recordError answered while the instance was down');
        } catch (TransportException $e) {
            $this->assertFalse($e->isTimeout());
        }
        $this->assertSame(1, $iam->lastAttempts());

        // Back after the restart: the next call goes through.
        usleep((self::DOWN_MS + 1000) * 1000);
        $this->assertSame('ok', $iam->live()['status'] ?? null);
    }
}
