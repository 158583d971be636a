<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Category: the caller is not authenticated (401) or lacks the scope (403): a token
 * provider or configuration problem, not retried.
 *
 * `catch (AccessDenied $e)` catches {@see Unauthorized}, {@see Forbidden}.
 */
abstract class AccessDenied extends ProblemException
{
}
