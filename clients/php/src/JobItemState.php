<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * A batch sync job's user (`getSyncJob(state:)`). Methods that take one accept the
 * enum or its string; answers carry the string (`JobItemState::from($answer[...])`
 * turns it into the enum). The drift test holds the cases to the spec.
 */
enum JobItemState: string
{
    case Pending = 'pending';
    case Succeeded = 'succeeded';
    case Failed = 'failed';
}
