<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-login-conflict` (409): Okta reports the login as taken by another Okta user;
 * `errors` names `login`.
 */
final class OktaLoginConflict extends Conflict
{
}
