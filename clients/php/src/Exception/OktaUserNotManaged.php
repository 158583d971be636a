<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-user-not-managed` (409): the Okta user is not managed by efs-iam. efs-iam neither
 * created it nor was told to adopt it, and will not link, change, group or deactivate
 * it. An iam:admin adopts it with {@see \Efs\Iam\Client::adoptOktaUser()}.
 */
final class OktaUserNotManaged extends Conflict
{
}
