<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `token-too-large` (413): the encrypted token response exceeds the token store's item
 * limit (memcached); it was not stored.
 */
final class TokenTooLarge extends InvalidInput
{
}
