<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `database-unavailable` (503): the database is unreachable or busy (no free connection
 * in time); retry later.
 */
final class DatabaseUnavailable extends Unavailable
{
}
