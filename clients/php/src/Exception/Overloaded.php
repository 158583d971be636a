<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `overloaded` (503): efs-iam is at its limit of requests in flight; retry shortly.
 */
final class Overloaded extends Unavailable
{
}
