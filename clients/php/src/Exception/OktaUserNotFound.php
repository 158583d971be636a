<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-user-not-found` (422): Okta has no such user (an adoption named an id Okta does
 * not know, or a deleted user); nothing was stored.
 */
final class OktaUserNotFound extends InvalidInput
{
}
