<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `forbidden` (403): the caller token lacks the scope the operation needs; `detail`
 * names it.
 */
final class Forbidden extends AccessDenied
{
}
