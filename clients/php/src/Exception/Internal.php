<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `internal` (500): an unexpected server error; `requestId` finds it in efs-iam's logs.
 */
final class Internal extends ServerFault
{
}
