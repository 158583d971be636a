<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `invalid-id-token` (422): the id_token failed verification; `detail` says why,
 * `errors` names `id_token`. Nothing was stored.
 */
final class InvalidIdToken extends InvalidInput
{
}
