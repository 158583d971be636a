<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `idp-unavailable` (503): the portal's Okta issuer did not provide its discovery
 * document or signing keys; retry later.
 */
final class IdpUnavailable extends Unavailable
{
}
