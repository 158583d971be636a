<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * One entry of a problem's `errors`: the request field at fault and what is wrong with
 * it. `field` is null when the cause names no request field (the entry had no `field`,
 * or `null`).
 */
final class FieldError
{
    public function __construct(
        public readonly ?string $field,
        public readonly string $message,
    ) {
    }

    /** @param array<mixed> $entry one element of the problem's `errors` array */
    public static function fromArray(array $entry): self
    {
        $field = $entry['field'] ?? null;
        $message = $entry['message'] ?? '';
        return new self(
            is_string($field) && $field !== '' ? $field : null,
            is_scalar($message) ? (string) $message : json_encode($message, JSON_UNESCAPED_SLASHES),
        );
    }
}
