<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Category: the call conflicts with the state of EFS's data or of Okta (409;
 * `okta-group-not-found` also as 422 while a setting is written): someone must change
 * that state first. Never retried.
 *
 * `catch (Conflict $e)` catches {@see PortalNotLinked}, {@see OktaGroupNotFound},
 * {@see OktaUserDeprovisioned}, {@see OktaLoginConflict}, {@see OktaUserNotManaged},
 * {@see OktaUserPrivileged}, {@see IssuerNotAllowed}.
 */
abstract class Conflict extends ProblemException
{
}
