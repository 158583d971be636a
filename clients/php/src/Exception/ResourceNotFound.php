<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Category: what the call names does not exist (404). Never retried.
 *
 * `catch (ResourceNotFound $e)` catches {@see NotFound}.
 */
abstract class ResourceNotFound extends ProblemException
{
}
