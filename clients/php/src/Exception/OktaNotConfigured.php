<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-not-configured` (503): this efs-iam instance has no Okta settings, so it cannot
 * sync.
 */
final class OktaNotConfigured extends Misconfigured
{
}
