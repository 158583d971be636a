<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Category: efs-iam's Okta connection is not set up or its credentials are refused
 * (503 `okta-not-configured`, 502 `okta-auth-failed`): an operator must act; retrying
 * does not help, so the client does not.
 *
 * `catch (Misconfigured $e)` catches {@see OktaNotConfigured}, {@see OktaAuthFailed}.
 */
abstract class Misconfigured extends ProblemException
{
}
