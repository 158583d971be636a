<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * efs-iam gave no answer: the connection was refused or dropped, or the connect or
 * request timeout passed. Nothing is known about whether a write took effect.
 *
 * The message names the operation and its route template, never the URL: paths carry
 * session ids, which are secrets.
 */
final class TransportException extends \RuntimeException implements EfsIamException
{
    /** cURL's "operation timed out". */
    private const CURLE_OPERATION_TIMEDOUT = 28;

    public function __construct(
        public readonly string $operation,
        public readonly string $method,
        public readonly string $route,
        string $reason,
        public readonly ?int $curlErrno = null,
    ) {
        parent::__construct("efs-iam gave no answer to $operation ($method $route): $reason");
    }

    /** Whether the connect or request timeout passed (rather than a refused or dropped connection). */
    public function isTimeout(): bool
    {
        return $this->curlErrno === self::CURLE_OPERATION_TIMEDOUT;
    }
}
