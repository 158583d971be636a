<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `portal-not-linked` (409): the portal has no `okta_group_id` setting: set it before
 * syncing its users.
 */
final class PortalNotLinked extends Conflict
{
}
