<?php

declare(strict_types=1);

namespace Efs\Iam\Auth;

/**
 * Caller tokens signed with the HS256 secret efs-iam shares with EFS-Admin
 * (EFS_IAM_AUTH_HS256_SECRET): claims `iss`, `aud`, `sub`, `scope`, `iat`, `exp`, as
 * README "Caller authentication" describes and firebase/php-jwt's
 * `JWT::encode($claims, $secret, 'HS256')` would produce.
 *
 * One token per scope, reused until `$renewBeforeSeconds` before it expires: efs-iam
 * remembers a token it has verified and takes it on trust for 60 s, so reusing it saves
 * the server its full check.
 */
final class Hs256Tokens implements TokenProvider
{
    /** @var array<string, array{token: string, exp: int}> scope => cached token */
    private array $cache = [];

    /** @var \Closure(): int */
    private \Closure $clock;

    /**
     * @param string $secret the shared secret, at least 32 bytes (efs-iam refuses shorter ones)
     * @param string $issuer must equal efs-iam's EFS_IAM_AUTH_ISSUER
     * @param string $audience must equal efs-iam's EFS_IAM_AUTH_AUDIENCE
     * @param string $subject the caller's name in efs-iam's audit log
     * @param int $ttlSeconds lifetime of each token
     * @param int $renewBeforeSeconds a cached token is replaced this long before it expires
     * @param (callable(): int)|null $clock the current Unix time (tests move it)
     */
    public function __construct(
        #[\SensitiveParameter] private readonly string $secret,
        private readonly string $issuer = 'efs-admin',
        private readonly string $audience = 'efs-iam',
        private readonly string $subject = 'efs-admin',
        private readonly int $ttlSeconds = 300,
        private readonly int $renewBeforeSeconds = 30,
        ?callable $clock = null,
    ) {
        if (strlen($secret) < 32) {
            throw new \InvalidArgumentException('the HS256 secret must be at least 32 bytes, as efs-iam requires');
        }
        if ($ttlSeconds <= $renewBeforeSeconds) {
            throw new \InvalidArgumentException('ttlSeconds must be longer than renewBeforeSeconds');
        }
        $this->clock = $clock === null ? static fn (): int => time() : \Closure::fromCallable($clock);
    }

    /**
     * What `var_dump()`/`print_r()` show: never the secret nor a minted token.
     *
     * @return array<string, mixed>
     */
    public function __debugInfo(): array
    {
        return [
            'issuer' => $this->issuer,
            'audience' => $this->audience,
            'subject' => $this->subject,
            'ttlSeconds' => $this->ttlSeconds,
            'cachedScopes' => array_keys($this->cache),
        ];
    }

    public function token(string $scope): string
    {
        $scope = self::normalise($scope);
        $now = ($this->clock)();
        $cached = $this->cache[$scope] ?? null;
        if ($cached !== null && $cached['exp'] - $this->renewBeforeSeconds > $now) {
            return $cached['token'];
        }
        $exp = $now + $this->ttlSeconds;
        $token = $this->sign([
            'iss' => $this->issuer,
            'aud' => $this->audience,
            'sub' => $this->subject,
            'scope' => $scope,
            'iat' => $now,
            'exp' => $exp,
        ]);
        $this->cache[$scope] = ['token' => $token, 'exp' => $exp];
        return $token;
    }

    /**
     * Signs any claims with the shared secret, bypassing the cache (scripts, tests).
     *
     * @param array<string, mixed> $claims
     */
    public function sign(#[\SensitiveParameter] array $claims): string
    {
        $input = self::base64Url(json_encode(['typ' => 'JWT', 'alg' => 'HS256'], JSON_THROW_ON_ERROR))
            . '.' . self::base64Url(json_encode($claims, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES));
        return $input . '.' . self::base64Url(hash_hmac('sha256', $input, $this->secret, true));
    }

    /** One spelling per set of scopes, so `iam:read  iam:sync` and `iam:read iam:sync` share a token. */
    private static function normalise(string $scope): string
    {
        $scopes = preg_split('/\s+/', trim($scope), -1, PREG_SPLIT_NO_EMPTY) ?: [];
        return implode(' ', array_values(array_unique($scopes)));
    }

    private static function base64Url(string $raw): string
    {
        return rtrim(strtr(base64_encode($raw), '+/', '-_'), '=');
    }
}
