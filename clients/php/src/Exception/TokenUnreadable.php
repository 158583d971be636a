<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `token-unreadable` (500): the stored token response cannot be decrypted (tampered, or
 * encrypted with a key no longer configured); the session must log in again.
 */
final class TokenUnreadable extends ServerFault
{
}
