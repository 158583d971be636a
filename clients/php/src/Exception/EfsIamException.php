<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Everything the efs-iam client throws: a problem answer ({@see ProblemException}), no
 * answer at all ({@see TransportException}), or an answer that is not efs-iam's
 * ({@see UnexpectedResponseException}).
 */
interface EfsIamException extends \Throwable
{
}
