<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `unauthorized` (401): the caller token is missing or invalid (signature, issuer,
 * audience, expiry, no `sub`).
 */
final class Unauthorized extends AccessDenied
{
}
