<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Efs\Iam\Exception\TransportException;
use GuzzleHttp\Client as GuzzleClient;
use GuzzleHttp\Exception\ConnectException;
use GuzzleHttp\Handler\MockHandler;
use GuzzleHttp\HandlerStack;
use GuzzleHttp\Psr7\Request;
use GuzzleHttp\Psr7\Response;
use PHPUnit\Framework\TestCase;
use Psr\Log\AbstractLogger;

/**
 * What PHP-FPM needs of the client, without a live server: a total deadline per call,
 * calls safe to repeat repeated after a lost answer (a rolling restart), others not,
 * and a PSR-3 line per attempt with nothing secret in it.
 */
final class FpmFitTest extends TestCase
{
    private const SECRET = 'a-shared-secret-of-at-least-32-bytes!!';

    /** @param list<Response|\Throwable> $answers */
    private static function client(array $answers, ?object $logger = null, ?float $deadline = 60.0): Client
    {
        return new Client(
            'http://efs-iam.test',
            new Hs256Tokens(self::SECRET),
            http: new GuzzleClient(['handler' => HandlerStack::create(new MockHandler($answers))]),
            deadline: $deadline,
            logger: $logger,
        );
    }

    private static function logger(): AbstractLogger
    {
        return new class extends AbstractLogger {
            /** @var list<array{0: string, 1: string, 2: array<string, mixed>}> */
            public array $lines = [];

            public function log($level, $message, array $context = []): void
            {
                $this->lines[] = [(string) $level, (string) $message, $context];
            }
        };
    }

    private static function lost(): ConnectException
    {
        return new ConnectException('Connection refused', new Request('GET', 'http://efs-iam.test/'));
    }

    public function testEachAttemptAndRepeatIsLoggedWithNothingSecret(): void
    {
        $logger = self::logger();
        $iam = self::client([
            new Response(
                503,
                ['Content-Type' => 'application/problem+json', 'Retry-After' => '0', 'x-request-id' => 'r-1'],
                '{"type":"urn:efs-iam:problem:database-unavailable","title":"t","status":503,"detail":"d"}'
            ),
            new Response(
                200,
                ['Content-Type' => 'application/json', 'x-request-id' => 'r-2'],
                '{"idp_response":{"access_token":"a"}}'
            ),
        ], $logger);
        $iam->getSessionToken('session-id-that-must-stay-secret');
        $this->assertSame(
            [
                ['debug', 'efs-iam call', 1, 503, 'r-1'],
                ['info', 'efs-iam call repeated after Retry-After', 1, 503, null],
                ['debug', 'efs-iam call', 2, 200, 'r-2'],
            ],
            array_map(static fn (array $l): array => [
                $l[0], $l[1], $l[2]['attempt'], $l[2]['status'], $l[2]['request_id'] ?? null,
            ], $logger->lines),
        );
        foreach ($logger->lines as [, , $context]) {
            $this->assertSame('GET /sessions/{session_id}/token', $context['method'] . ' ' . $context['route']);
            $this->assertArrayHasKey('operation', $context);
            $text = json_encode($context, JSON_THROW_ON_ERROR);
            $this->assertStringNotContainsString('session-id-that-must-stay-secret', $text);
            $this->assertStringNotContainsString('Bearer', $text);
        }
    }

    public function testACallSafeToRepeatIsRepeatedAfterALostAnswerAndAWriteIsNot(): void
    {
        $logger = self::logger();
        $iam = self::client([self::lost(), new Response(200, ['Content-Type' => 'application/json'], '{"portal_id":1,"settings":{}}')], $logger);
        $started = microtime(true);
        $this->assertSame(1, $iam->getPortalSettings(1)['portal_id']);
        $this->assertSame(2, $iam->lastAttempts());
        $this->assertGreaterThanOrEqual(0.5, microtime(true) - $started, 'a pause before the repeat');
        $this->assertSame('warning', $logger->lines[0][0]);

        $write = self::client([self::lost(), new Response(201)]);
        try {
            $write->recordError(['status_code' => 500, 'message' => 'm']);
            $this->fail('a write that may have happened is not repeated');
        } catch (TransportException $e) {
            $this->assertSame(1, $write->lastAttempts());
        }
    }

    public function testTheDeadlineBoundsACallToAServerThatNeverAnswers(): void
    {
        // Accepts connections (the kernel's backlog) and never answers.
        $server = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
        $this->assertNotFalse($server, $error);
        $address = stream_socket_get_name($server, false);
        $iam = new Client("http://$address", new Hs256Tokens(self::SECRET), timeout: 35.0, deadline: 1.0);
        $started = microtime(true);
        try {
            $iam->getPortalSettings(1);
            $this->fail('nothing answers');
        } catch (TransportException $e) {
            $took = microtime(true) - $started;
            $this->assertTrue($e->isTimeout(), $e->getMessage());
            $this->assertLessThan(2.0, $took, 'the deadline, not the 35 s timeout');
            $this->assertGreaterThanOrEqual(0.9, $took);
        } finally {
            fclose($server);
        }
    }

    public function testADeadlineMustBePositive(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        new Client('http://efs-iam.test', new Hs256Tokens(self::SECRET), deadline: 0.0);
    }

    /**
     * Two PHP processes (two FPM workers) with one PSR-16 cache: the second uses the
     * token the first minted. It runs with its clock 5 s later, so a token it minted
     * itself would differ (its `iat`).
     */
    public function testTwoProcessesShareOneMintedTokenThroughAPsr16Cache(): void
    {
        $dir = sys_get_temp_dir() . '/efs-iam-token-cache-' . bin2hex(random_bytes(4));
        mkdir($dir);
        $script = <<<'PHP'
            require $argv[1];
            $tokens = new Efs\Iam\Auth\Hs256Tokens(
                'a-shared-secret-of-at-least-32-bytes!!',
                clock: fn (): int => time() + (int) $argv[3],
                shared: new Efs\Iam\Tests\Support\FileCache($argv[2]),
            );
            echo $tokens->token('iam:read');
            PHP;
        $run = static function (int $skew) use ($script, $dir): string {
            $out = shell_exec(sprintf(
                'php -r %s %s %s %d',
                escapeshellarg($script),
                escapeshellarg(__DIR__ . '/bootstrap.php'),
                escapeshellarg($dir),
                $skew,
            ));
            return (string) $out;
        };
        try {
            $first = $run(0);
            $second = $run(5);
            $this->assertMatchesRegularExpression('/^[\w-]+\.[\w-]+\.[\w-]+$/', $first);
            $this->assertSame($first, $second, 'the second worker used the first worker\'s token');
            $this->assertNotSame($first, $run(400), 'a token due for renewal is minted again');
        } finally {
            array_map('unlink', glob("$dir/*") ?: []);
            rmdir($dir);
        }
    }
}
