<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-user-privileged` (409): the Okta user holds Okta admin roles. efs-iam never
 * adopts, changes, groups or deactivates an administrator, whatever the caller's scopes.
 */
final class OktaUserPrivileged extends Conflict
{
}
