<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `service-unavailable` (503): efs-iam cannot check caller tokens right now (the
 * callers' JWKS cannot be fetched); retry after `retryAfter` seconds.
 */
final class ServiceUnavailable extends Unavailable
{
}
