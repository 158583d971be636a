<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Auth\TokenProvider;
use Efs\Iam\Client;
use Efs\Iam\Exception\NotFound;
use Efs\Iam\Scope;
use Efs\Iam\Tests\Support\LiveTestCase;
use GuzzleHttp\Client as GuzzleClient;
use GuzzleHttp\HandlerStack;
use GuzzleHttp\Middleware;
use Psr\Http\Message\RequestInterface;

/** Caller tokens: minted per scope with the shared secret, reused, or from a callback. */
final class TokensTest extends LiveTestCase
{
    private const SECRET = 'a-test-secret-of-at-least-32-bytes!!';

    /** @return array<string, mixed> */
    private static function part(string $token, int $index): array
    {
        $part = explode('.', $token)[$index];
        return json_decode(base64_decode(strtr($part, '-_', '+/')), true, 512, JSON_THROW_ON_ERROR);
    }

    public function testATokenCarriesTheDocumentedClaimsSignedWithTheSecret(): void
    {
        $tokens = new Hs256Tokens(self::SECRET, 'efs-admin', 'efs-iam', 'efs-admin-web', clock: static fn (): int => 1_800_000_000);
        $token = $tokens->token('iam:read iam:sync');
        $this->assertSame(['typ' => 'JWT', 'alg' => 'HS256'], self::part($token, 0));
        $this->assertSame([
            'iss' => 'efs-admin',
            'aud' => 'efs-iam',
            'sub' => 'efs-admin-web',
            'scope' => 'iam:read iam:sync',
            'iat' => 1_800_000_000,
            'exp' => 1_800_000_300,
        ], self::part($token, 1));
        [$header, $claims, $signature] = explode('.', $token);
        $expected = rtrim(strtr(base64_encode(hash_hmac('sha256', "$header.$claims", self::SECRET, true)), '+/', '-_'), '=');
        $this->assertSame($expected, $signature);
    }

    public function testATokenIsReusedUntilThirtySecondsBeforeItExpires(): void
    {
        $now = 1_800_000_000;
        $tokens = new Hs256Tokens(self::SECRET, clock: static function () use (&$now): int {
            return $now;
        });
        $first = $tokens->token(Scope::READ);
        $now += 269;
        $this->assertSame($first, $tokens->token(Scope::READ), 'reused while more than 30 s are left');
        $this->assertSame($first, $tokens->token('  iam:read '), 'one token per set of scopes, however spelled');
        $this->assertNotSame($first, $tokens->token(Scope::WRITE), 'another scope, another token');
        $now += 1;
        $renewed = $tokens->token(Scope::READ);
        $this->assertNotSame($first, $renewed, 'renewed 30 s before exp');
        $this->assertSame($now + 300, self::part($renewed, 1)['exp']);
    }

    public function testAShortSecretIsRefusedAsEfsIamWould(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        new Hs256Tokens('too-short');
    }

    public function testEachCallAsksForExactlyTheScopeOfItsOperation(): void
    {
        $recorder = new class (self::tokens()) implements TokenProvider {
            /** @var list<string> */
            public array $asked = [];

            public function __construct(private readonly TokenProvider $inner)
            {
            }

            public function token(string $scope): string
            {
                $this->asked[] = $scope;
                return $this->inner->token($scope);
            }
        };
        $iam = self::client(tokens: $recorder);
        $portal = self::nextId();
        $iam->getPortalSettings($portal);
        $iam->putPortalSetting($portal, 'theme', 'dark');
        $iam->putPortalSetting($portal, 'OKTA_CLIENT_ID', '0oaSCOPEDCLIENT00001');
        $iam->putPortalSettings($portal, ['locale' => 'de']);
        $iam->putPortalSettings($portal, ['locale' => 'fr', 'Okta_Client_Id' => '0oaSCOPEDCLIENT00002']);
        $iam->deletePortalSetting($portal, 'okta_client_id');
        $iam->deletePortalSetting($portal, 'theme');
        $iam->syncStatus();
        try {
            $iam->getSessionToken('never-stored-' . $portal);
            $this->fail('no such session');
        } catch (NotFound) {
        }
        // The server accepted every one of these tokens: none was short of a scope.
        $this->assertSame([
            'iam:read',
            'iam:write',
            'iam:write iam:admin',
            'iam:write',
            'iam:write iam:admin',
            'iam:write iam:admin',
            'iam:write',
            'iam:sync',
            'iam:tokens',
        ], $recorder->asked);
        $this->assertSame(['locale' => 'fr'], $iam->getPortalSettings($portal)['settings']);
    }

    public function testTheSameTokenIsSentAgainToTheServer(): void
    {
        $sent = [];
        $stack = HandlerStack::create();
        $stack->push(Middleware::mapRequest(static function (RequestInterface $r) use (&$sent): RequestInterface {
            $sent[] = $r->getHeaderLine('Authorization');
            return $r;
        }));
        $iam = new Client(self::env('EFS_IAM_URL'), self::tokens(), http: new GuzzleClient(['handler' => $stack]));
        $iam->getPortalSettings(1);
        $iam->getPortalSettings(2);
        $iam->syncStatus();
        $this->assertCount(3, $sent);
        $this->assertStringStartsWith('Bearer ey', $sent[0]);
        $this->assertSame($sent[0], $sent[1], 'one iam:read token for both reads');
        $this->assertNotSame($sent[0], $sent[2], 'another token for iam:sync');
    }

    /**
     * The `jwks` instance checks RS256 tokens against an identity provider's JWKS, as
     * when EFS-Admin gets its tokens by client credentials: the client takes them from a
     * callback.
     */
    public function testATokenCallbackServesRs256SetUps(): void
    {
        $asked = [];
        $iam = self::client(self::env('EFS_IAM_TEST_JWKS_URL'), tokens: static function (string $scope) use (&$asked): string {
            $asked[] = $scope;
            return self::control('POST', '/caller-token', ['scope' => $scope])['token'];
        });
        $portal = self::nextId();
        $written = $iam->putPortalSetting($portal, 'theme', 'from-rs256');
        $this->assertSame(['portal_id' => $portal, 'key' => 'theme', 'value' => 'from-rs256'], $written);
        $this->assertSame('from-rs256', $iam->getPortalSetting($portal, 'theme')['value']);
        $this->assertSame(['iam:write', 'iam:read'], $asked);
    }
}
