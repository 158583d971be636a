<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * When the client repeats a call by itself: only after a 503 or 429 answer that carries
 * `Retry-After` (efs-iam's 503s say 1 s, or 5 s while it cannot fetch caller keys), only
 * for operations that are safe to repeat ({@see Client::RETRY_SAFE}), at most
 * `$maxAttempts` attempts in all and at most `$maxWaitSeconds` of waiting in all. A
 * `Retry-After` longer than what is left of the budget ends the retries at once: the
 * caller gets the problem instead of a wait that cannot end well.
 *
 * A call that got no answer (connection refused or dropped, a timeout) is repeated only
 * when it is safe to repeat, after 0.5 s, within the same budget: a rolling restart of
 * efs-iam then costs a GET half a second, not an error. Other calls are not repeated: a
 * write may have happened. The client's `deadline` bounds all of it.
 */
final class RetryPolicy
{
    public function __construct(
        public readonly int $maxAttempts = 3,
        public readonly float $maxWaitSeconds = 10.0,
    ) {
        if ($maxAttempts < 1) {
            throw new \InvalidArgumentException('maxAttempts must be at least 1');
        }
        if ($maxWaitSeconds < 0) {
            throw new \InvalidArgumentException('maxWaitSeconds must not be negative');
        }
    }

    /** One attempt only. */
    public static function none(): self
    {
        return new self(1, 0.0);
    }

    /**
     * Whether to try again after `$attempts` attempts and `$waited` seconds of waiting,
     * when the answer asked for `$delay` seconds.
     */
    public function allows(int $attempts, float $waited, float $delay): bool
    {
        return $attempts < $this->maxAttempts && $waited + $delay <= $this->maxWaitSeconds;
    }

    /**
     * Seconds a `Retry-After` value asks for: delta-seconds or an HTTP date; null when
     * absent or unreadable.
     */
    public static function retryAfterSeconds(string $header, ?int $now = null): ?float
    {
        $header = trim($header);
        if ($header === '') {
            return null;
        }
        if (preg_match('/^[0-9]+$/', $header) === 1) {
            return (float) $header;
        }
        $at = \DateTimeImmutable::createFromFormat(\DATE_RFC7231, $header, new \DateTimeZone('UTC'));
        if ($at === false) {
            return null;
        }
        return (float) max(0, $at->getTimestamp() - ($now ?? time()));
    }
}
