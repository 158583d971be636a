<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `unknown-efs-user` (422): the user id names no EFS user or panelist
 * (`users`/`panelists`).
 */
final class UnknownEfsUser extends InvalidInput
{
}
