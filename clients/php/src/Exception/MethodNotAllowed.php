<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `method-not-allowed` (405): the path exists, but not with this method.
 */
final class MethodNotAllowed extends InvalidInput
{
}
