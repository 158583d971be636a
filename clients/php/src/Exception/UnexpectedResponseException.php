<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * An answer that is not efs-iam's: an error status without a problem document (a proxy's
 * HTML page), or a success whose body is not the JSON the operation documents.
 */
final class UnexpectedResponseException extends \RuntimeException implements EfsIamException
{
    public function __construct(
        public readonly string $operation,
        public readonly int $status,
        public readonly string $contentType,
        public readonly string $bodyExcerpt,
        public readonly ?string $requestId = null,
    ) {
        parent::__construct(
            "efs-iam answered $operation with $status ($contentType), not the documented JSON: "
            . $bodyExcerpt,
            $status,
        );
    }
}
