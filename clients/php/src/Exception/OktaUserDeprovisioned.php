<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-user-deprovisioned` (409): the Okta user is deprovisioned (deactivated). efs-iam
 * does not reactivate: that emails the person and is an operator's decision.
 */
final class OktaUserDeprovisioned extends Conflict
{
}
