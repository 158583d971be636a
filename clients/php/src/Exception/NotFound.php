<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `not-found` (404): no such resource (or no such endpoint).
 */
final class NotFound extends ResourceNotFound
{
}
