<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `validation-failed` (422): well-formed JSON whose content breaks a rule; `errors`
 * names each field (see {@see ProblemException::fieldMessages()}).
 */
final class ValidationFailed extends InvalidInput
{
}
