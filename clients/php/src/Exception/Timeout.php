<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `timeout` (503): the request took longer than efs-iam's request timeout
 * (EFS_IAM_REQUEST_TIMEOUT). A write may or may not have happened.
 */
final class Timeout extends Unavailable
{
}
