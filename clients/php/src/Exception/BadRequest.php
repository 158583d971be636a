<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `bad-request` (400): a request refused before any handler saw it, e.g. a path that is
 * not valid UTF-8.
 */
final class BadRequest extends InvalidInput
{
}
