<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Category: efs-iam failed (500), or Okta refused a call efs-iam made (502): report it
 * with the `requestId`. Never retried.
 *
 * `catch (ServerFault $e)` catches {@see Internal}, {@see TokenUnreadable},
 * {@see OktaRefused}.
 */
abstract class ServerFault extends ProblemException
{
}
