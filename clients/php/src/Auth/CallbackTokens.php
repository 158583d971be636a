<?php

declare(strict_types=1);

namespace Efs\Iam\Auth;

/**
 * Tokens from a callback `fn(string $scope): string`, for set-ups where efs-iam checks
 * RS256/ES256 tokens (EFS_IAM_AUTH_JWKS_URL, EFS_IAM_AUTH_PUBLIC_KEYS) that EFS-Admin
 * gets elsewhere, e.g. by client credentials from its identity provider. The callback
 * does its own caching.
 */
final class CallbackTokens implements TokenProvider
{
    /** @var \Closure(string): string */
    private \Closure $callback;

    /** @param callable(string): string $callback */
    public function __construct(callable $callback)
    {
        $this->callback = \Closure::fromCallable($callback);
    }

    /**
     * What `var_dump()`/`print_r()` show: not the callback (its closure may hold secrets).
     *
     * @return array<string, mixed>
     */
    public function __debugInfo(): array
    {
        return ['callback' => '(hidden)'];
    }

    public function token(string $scope): string
    {
        $token = ($this->callback)($scope);
        if (!is_string($token) || $token === '') {
            throw new \UnexpectedValueException('the token callback returned no token');
        }
        return $token;
    }
}
