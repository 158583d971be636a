<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `malformed-body` (400): the body is not JSON (or carries data after the JSON value).
 */
final class MalformedBody extends InvalidInput
{
}
