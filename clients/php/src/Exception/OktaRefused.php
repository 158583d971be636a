<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-refused` (502): Okta refused the call for a reason other than the profile or the
 * credentials (a permission, a group efs-iam may not change).
 */
final class OktaRefused extends ServerFault
{
}
