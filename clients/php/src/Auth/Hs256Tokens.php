<?php

declare(strict_types=1);

namespace Efs\Iam\Auth;

use Psr\SimpleCache\CacheInterface;

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
     * @param CacheInterface|null $shared a PSR-16 cache the PHP-FPM workers share (APCu,
     *        memcached, Redis): a token minted by one worker is used by the others until it
     *        is due for renewal, so efs-iam's verified-token cache hits. Keyed by a hash of
     *        the secret, issuer, audience, subject and scope; holds only the token (which
     *        is what every request sends anyway)
     */
    public function __construct(
        #[\SensitiveParameter] private readonly string $secret,
        private readonly string $issuer = 'efs-admin',
        private readonly string $audience = 'efs-iam',
        private readonly string $subject = 'efs-admin',
        private readonly int $ttlSeconds = 300,
        private readonly int $renewBeforeSeconds = 30,
        ?callable $clock = null,
        private readonly ?CacheInterface $shared = null,
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
        $cached = $this->cache[$scope] ?? $this->fromShared($scope);
        if ($cached !== null && $cached['exp'] - $this->renewBeforeSeconds > $now) {
            $this->cache[$scope] = $cached;
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
        $reusable = $this->ttlSeconds - $this->renewBeforeSeconds;
        $this->shared?->set($this->sharedKey($scope), $this->cache[$scope], $reusable);
        return $token;
    }

    /** @return array{token: string, exp: int}|null */
    private function fromShared(string $scope): ?array
    {
        $entry = $this->shared?->get($this->sharedKey($scope));
        return is_array($entry) && is_string($entry['token'] ?? null) && is_int($entry['exp'] ?? null)
            ? ['token' => $entry['token'], 'exp' => $entry['exp']]
            : null;
    }

    /** PSR-16 keys allow `A-Za-z0-9_.`; the hash keeps the secret out of the key. */
    private function sharedKey(string $scope): string
    {
        $who = implode("\n", [$this->issuer, $this->audience, $this->subject, $scope]);
        return 'efs_iam.token.' . hash_hmac('sha256', $who, $this->secret);
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
