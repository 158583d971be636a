<?php

// EFS-Admin code that uses the client: what PortalGroupsTest.php tests with the
// client mocked.

declare(strict_types=1);

namespace EfsAdmin;

use Efs\Iam\Client;
use Efs\Iam\Exception\ResourceNotFound;

final class PortalGroups
{
    public function __construct(private readonly Client $iam)
    {
    }

    /** The portal's Okta group, or null when the portal has none. */
    public function groupOf(int $portalId): ?string
    {
        try {
            return $this->iam->getPortalSetting($portalId, 'okta_group_id')['value'];
        } catch (ResourceNotFound) {
            return null;
        }
    }
}
