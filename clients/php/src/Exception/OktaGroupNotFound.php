<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-group-not-found` (409 or 422): the Okta group does not exist. 409: the portal's
 * stored `okta_group_id` names no group (fix the setting); 422: the `okta_group_id`
 * being written names none (`errors` names the field).
 */
final class OktaGroupNotFound extends Conflict
{
}
