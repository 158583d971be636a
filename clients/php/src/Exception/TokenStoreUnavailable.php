<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `token-store-unavailable` (503): the session token store (memcached) is unreachable;
 * retry later.
 */
final class TokenStoreUnavailable extends Unavailable
{
}
