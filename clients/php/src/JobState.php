<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * A batch sync job (schema JobState). Methods that take one accept the enum or its
 * string; answers carry the string (`JobState::from($answer[...])` turns it into the
 * enum). The drift test holds the cases to the spec.
 */
enum JobState: string
{
    case Running = 'running';
    case Finished = 'finished';
}
