<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `user-busy` (503): another sync of the same user held its lock for 20 s; retry shortly.
 */
final class UserBusy extends Unavailable
{
}
