<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `payload-too-large` (413): the request body exceeds the server's limit
 * (EFS_IAM_MAX_BODY_BYTES).
 */
final class PayloadTooLarge extends InvalidInput
{
}
