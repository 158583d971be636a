<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `issuer-not-allowed` (409): the portal's `okta_issuer` is not on efs-iam's allow-list
 * (EFS_IAM_OIDC_ALLOWED_ISSUERS); nothing was stored.
 */
final class IssuerNotAllowed extends Conflict
{
}
