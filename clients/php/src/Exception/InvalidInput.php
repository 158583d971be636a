<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Category: the request cannot be served as sent (400, 405, 413, 415, 422): fix the
 * input; {@see ProblemException::fieldMessages()} names the fields at fault. Never
 * retried.
 *
 * `catch (InvalidInput $e)` catches {@see MalformedBody}, {@see BadRequest},
 * {@see InvalidParameter}, {@see MethodNotAllowed}, {@see PayloadTooLarge},
 * {@see TokenTooLarge}, {@see UnsupportedMediaType}, {@see ValidationFailed},
 * {@see UnknownEfsUser}, {@see InvalidIdToken}, {@see OktaValidationFailed},
 * {@see OktaUserNotFound}.
 */
abstract class InvalidInput extends ProblemException
{
}
