<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Efs\Iam\Exception\NotFound;
use Efs\Iam\Exception\ProblemException;
use Efs\Iam\Exception\Unavailable;
use GuzzleHttp\Client as GuzzleClient;
use GuzzleHttp\Handler\MockHandler;
use GuzzleHttp\HandlerStack;
use GuzzleHttp\Psr7\Response;
use PHPUnit\Framework\TestCase;

/**
 * Without a server (Guzzle's MockHandler answers): nothing secret in dumps or in
 * exception traces, and the client can be doubled in EFS-Admin's own unit tests.
 */
final class SecretsAndMockingTest extends TestCase
{
    private const SECRET = 'a-shared-secret-of-at-least-32-bytes!!';
    private const SESSION = 'session-id-that-must-stay-secret';
    private const REFRESH = 'refresh-token-that-must-stay-secret';

    /** @param list<Response> $answers */
    private static function client(array $answers, ?Hs256Tokens $tokens = null): Client
    {
        return new Client(
            'http://efs-iam.test',
            $tokens ?? new Hs256Tokens(self::SECRET),
            http: new GuzzleClient(['handler' => HandlerStack::create(new MockHandler($answers))]),
        );
    }

    private static function problem(int $status, string $slug): Response
    {
        return new Response($status, ['Content-Type' => 'application/problem+json'], json_encode(
            ['type' => "urn:efs-iam:problem:$slug", 'title' => 't', 'status' => $status, 'detail' => 'd'],
            JSON_THROW_ON_ERROR,
        ));
    }

    private function assertNoSecret(string $text, string $what): void
    {
        foreach ([self::SECRET, self::SESSION, self::REFRESH, 'Bearer ey'] as $secret) {
            $this->assertStringNotContainsString($secret, $text, "$what shows $secret");
        }
    }

    public function testDumpsShowNoSecretNoTokenAndNoAnswer(): void
    {
        $tokens = new Hs256Tokens(self::SECRET);
        $iam = self::client([new Response(200, ['Content-Type' => 'application/json'], json_encode(
            ['idp_response' => ['access_token' => 'a', 'refresh_token' => self::REFRESH], 'expires_at' => '2026-12-07T10:00:00Z'],
            JSON_THROW_ON_ERROR,
        ))], $tokens);
        $iam->getSessionToken(self::SESSION);
        $minted = $tokens->token('iam:tokens');
        ob_start();
        var_dump($iam, $tokens);
        $dump = (string) ob_get_clean() . print_r($iam, true) . print_r($tokens, true) . var_export($iam->__debugInfo(), true);
        $this->assertNoSecret($dump, 'a dump');
        $this->assertStringNotContainsString($minted, $dump, 'a dump shows a minted token');
        $this->assertStringContainsString('http://efs-iam.test', $dump, 'a dump still says where the client calls');
    }

    public function testExceptionTracesHoldNoSessionIdAndNoTokenResponse(): void
    {
        $before = ini_set('zend.exception_ignore_args', '0');
        try {
            $iam = self::client([self::problem(404, 'not-found'), self::problem(503, 'database-unavailable')]);
            $traces = '';
            try {
                $iam->getSessionToken(self::SESSION);
                $this->fail('404 expected');
            } catch (NotFound $e) {
                $traces .= $e->getTraceAsString() . print_r($e->getTrace(), true);
            }
            try {
                $iam->putSessionToken(self::SESSION, ['access_token' => 'a', 'refresh_token' => self::REFRESH]);
                $this->fail('503 expected');
            } catch (Unavailable $e) {
                $traces .= $e->getTraceAsString() . print_r($e->getTrace(), true);
            }
            $this->assertStringContainsString('SensitiveParameterValue', $traces, 'the arguments are there, redacted');
            $this->assertNoSecret($traces, 'a trace');
        } finally {
            ini_set('zend.exception_ignore_args', (string) $before);
        }
    }

    /** EFS-Admin code under test, using the client. */
    private static function portalGroupOrNull(Client $iam, int $portal): ?string
    {
        try {
            return $iam->getPortalSetting($portal, 'okta_group_id')['value'];
        } catch (NotFound) {
            return null;
        }
    }

    public function testTheClientCanBeMockedInCallersUnitTests(): void
    {
        $iam = $this->createMock(Client::class);
        $iam->expects($this->exactly(2))
            ->method('getPortalSetting')
            ->willReturnCallback(static function (int $portal, string $key): array {
                if ($portal === 7) {
                    return ['portal_id' => 7, 'key' => $key, 'value' => '00g1'];
                }
                throw ProblemException::fromResponse(self::problem(404, 'not-found'));
            });
        $this->assertSame('00g1', self::portalGroupOrNull($iam, 7));
        $this->assertNull(self::portalGroupOrNull($iam, 8));
    }

    /** Maps stay maps on the way out: an empty settings map is sent as `{}`, not `[]`. */
    public function testAnEmptySettingsMapIsSentAsAJsonObject(): void
    {
        $answers = new MockHandler([
            new Response(200, ['Content-Type' => 'application/json'], '{"portal_id":3,"settings":{}}'),
        ]);
        $iam = new Client(
            'http://efs-iam.test',
            new Hs256Tokens(str_repeat('k', 32)),
            http: new GuzzleClient(['handler' => HandlerStack::create($answers)]),
        );

        $this->assertSame(['portal_id' => 3, 'settings' => []], $iam->putPortalSettings(3, []));
        $this->assertSame('{"settings":{}}', (string) $answers->getLastRequest()?->getBody());
    }
}
