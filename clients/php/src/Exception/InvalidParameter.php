<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `invalid-parameter` (400): a path or query parameter is not acceptable; `errors` names
 * it.
 */
final class InvalidParameter extends InvalidInput
{
}
