<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * A reconciliation run or an error-log purge (schema RunState). Methods that take one accept the
 * enum or its string; answers carry the string (`RunState::from($answer[...])` turns
 * it into the enum). The drift test holds the cases to the spec.
 */
enum RunState: string
{
    case Pending = 'pending';
    case Running = 'running';
    case Succeeded = 'succeeded';
    case Failed = 'failed';
}
