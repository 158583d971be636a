<?php

declare(strict_types=1);

namespace Efs\Iam\Tests\Support;

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Efs\Iam\Exception\ProblemException;
use Efs\Iam\RetryPolicy;
use GuzzleHttp\Client as GuzzleClient;
use GuzzleHttp\HandlerStack;
use GuzzleHttp\Middleware;
use PHPUnit\Framework\TestCase;
use Psr\Http\Message\RequestInterface;

/**
 * Tests against the live efs-iam instances tests/clients starts (see its
 * deployment.rs): their URLs, the shared secret and the control server come in
 * EFS_IAM_* variables. Every request a client of these tests sends, and every problem
 * a test provokes, is recorded for {@see \Efs\Iam\Tests\CoverageTest}.
 */
abstract class LiveTestCase extends TestCase
{
    /** @var list<array{0: string, 1: string}> method and path of every request sent */
    public static array $requests = [];

    /** @var array<string, true> "slug status" of every problem provoked */
    public static array $provoked = [];

    private static int $nextId = 0;

    protected static function env(string $name): string
    {
        $value = getenv($name);
        if ($value === false || $value === '') {
            self::fail("$name is not set: run this suite through `cargo test --test clients`");
        }
        return $value;
    }

    /** A number no other test of this run uses (user ids, portal ids, login suffixes). */
    protected static function nextId(): int
    {
        if (self::$nextId === 0) {
            self::$nextId = 10_000 + random_int(0, 999) * 100;
        }
        return ++self::$nextId;
    }

    protected static function tokens(): Hs256Tokens
    {
        return new Hs256Tokens(
            self::env('EFS_IAM_AUTH_HS256_SECRET'),
            issuer: self::env('EFS_IAM_AUTH_ISSUER'),
            audience: self::env('EFS_IAM_AUTH_AUDIENCE'),
            subject: 'efs-iam-php-client-tests',
        );
    }

    /**
     * A client of the `main` instance (or `$url`), recording what it sends.
     *
     * @param \Efs\Iam\Auth\TokenProvider|callable(string): string|null $tokens
     */
    protected static function client(
        ?string $url = null,
        ?RetryPolicy $retry = null,
        mixed $tokens = null,
        float $timeout = 35.0,
    ): Client {
        $stack = HandlerStack::create();
        $stack->push(Middleware::mapRequest(static function (RequestInterface $request): RequestInterface {
            self::$requests[] = [$request->getMethod(), $request->getUri()->getPath()];
            return $request;
        }));
        return new Client(
            $url ?? self::env('EFS_IAM_URL'),
            $tokens ?? self::tokens(),
            timeout: $timeout,
            retry: $retry,
            http: new GuzzleClient(['handler' => $stack]),
        );
    }

    /** A client that tries once: for provoking 503s the default policy would retry. */
    protected static function oneAttempt(?string $url = null): Client
    {
        return self::client($url, RetryPolicy::none());
    }

    /**
     * Asserts that `$call` throws exactly `$class` with this status and slug, and the
     * problem document's own fields; returns the exception.
     *
     * @template T of ProblemException
     * @param class-string<T> $class
     * @return T
     */
    protected static function expectProblem(string $class, int $status, string $slug, callable $call): ProblemException
    {
        try {
            $call();
        } catch (ProblemException $e) {
            self::assertSame($class, get_class($e), "{$e->getMessage()}");
            self::assertSame($status, $e->status, $e->getMessage());
            self::assertSame("urn:efs-iam:problem:$slug", $e->type);
            self::assertSame($slug, $e->slug());
            self::assertNotSame('', $e->title);
            self::assertNotSame('', $e->detail);
            self::assertSame($status, $e->getCode());
            self::assertNotNull($e->requestId, 'every answer carries x-request-id');
            self::$provoked["$slug $status"] = true;
            return $e;
        }
        self::fail("expected $class ($status $slug), but the call succeeded");
    }

    /**
     * Calls the control server (tests/clients/control.rs); the decoded answer.
     *
     * @param array<string, mixed>|null $body
     * @return array<mixed>
     */
    protected static function control(string $method, string $path, ?array $body = null): array
    {
        $options = ['http_errors' => false, 'timeout' => 10];
        if ($body !== null) {
            $options['json'] = $body;
        }
        $response = (new GuzzleClient())->request($method, self::env('EFS_IAM_TEST_CONTROL_URL') . $path, $options);
        $text = (string) $response->getBody();
        self::assertLessThan(300, $response->getStatusCode(), "control $method $path: $text");
        return $text === '' ? [] : (array) json_decode($text, true, 512, JSON_THROW_ON_ERROR);
    }

    /** Rows in EFS's `users` / `panelists` (the `main` database unless named). */
    protected static function seedEfsUsers(array $adminUsers, array $panelists = [], string $database = 'main'): void
    {
        self::control('POST', '/efs-users', [
            'database' => $database,
            'admin_users' => $adminUsers,
            'panelists' => $panelists,
        ]);
    }

    /**
     * Okta user ids efs-iam manages in the `main` database, as an administrator's
     * adoption before the test would have left them.
     *
     * @param list<string> $oktaUserIds
     */
    protected static function manageOktaUsers(array $oktaUserIds): void
    {
        self::control('POST', '/managed-okta-users', ['ids' => $oktaUserIds]);
    }

    /** An active user in the fake Okta that efs-iam did not create; its id. */
    protected static function oktaUser(string $name, string $status = 'ACTIVE'): string
    {
        return self::control('POST', '/okta/users', ['login' => self::uniqueLogin($name), 'status' => $status])['id'];
    }

    /** A profile for the sync calls (schema SyncUserRequest). */
    protected static function profile(string $login, array $overrides = []): array
    {
        return $overrides + [
            'login' => $login,
            'email' => $login,
            'first_name' => 'Ada',
            'last_name' => 'Lovelace',
        ];
    }

    protected static function uniqueLogin(string $name): string
    {
        return $name . '-' . self::nextId() . '@example.com';
    }

    /** A group in the fake Okta; its id. */
    protected static function oktaGroup(string $name): string
    {
        return self::control('POST', '/okta/groups', ['name' => $name . ' ' . self::nextId()])['id'];
    }

    /**
     * A fault in a fake Okta org (`okta`, `slow_okta`, `caller_idp`).
     *
     * @param array<string, mixed> $fault
     */
    protected static function oktaFault(array $fault): void
    {
        self::control('POST', '/okta/faults', $fault);
    }

    /** Polls `$probe` until it returns a non-null value (or fails after `$seconds`). */
    protected static function eventually(callable $probe, float $seconds = 15.0, string $what = 'condition'): mixed
    {
        $deadline = microtime(true) + $seconds;
        do {
            $value = $probe();
            if ($value !== null && $value !== false) {
                return $value;
            }
            usleep(100_000);
        } while (microtime(true) < $deadline);
        self::fail("$what not reached within {$seconds} s");
    }

    /**
     * Same keys, same values, same types; the order of a JSON object's keys is the
     * server's business.
     *
     * @param array<mixed> $expected
     * @param array<mixed> $actual
     */
    protected static function assertSameMap(array $expected, array $actual): void
    {
        self::assertSame(self::sorted($expected), self::sorted($actual));
    }

    /**
     * @param array<mixed> $data
     * @return array<mixed>
     */
    private static function sorted(array $data): array
    {
        if (!array_is_list($data)) {
            ksort($data);
        }
        foreach ($data as $k => $v) {
            if (is_array($v)) {
                $data[$k] = self::sorted($v);
            }
        }
        return $data;
    }
}
