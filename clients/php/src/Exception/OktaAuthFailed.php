<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-auth-failed` (502): Okta refused efs-iam's own credentials (API token or OAuth
 * client): an operator must act.
 */
final class OktaAuthFailed extends Misconfigured
{
}
