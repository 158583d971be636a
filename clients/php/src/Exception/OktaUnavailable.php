<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-unavailable` (503): Okta's 5xx, 429s or timeouts outlasted efs-iam's own
 * retries; retry later.
 */
final class OktaUnavailable extends Unavailable
{
}
