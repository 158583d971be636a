<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * A queued unassignment's state (`listUnassignments(state:)`): waiting or retrying, or
 * a dead letter. Methods that take one accept the enum or its string; answers carry
 * the string (`UnassignmentState::from($answer[...])` turns it into the enum). The
 * drift test holds the cases to the spec.
 */
enum UnassignmentState: string
{
    case Pending = 'pending';
    case Dead = 'dead';
}
