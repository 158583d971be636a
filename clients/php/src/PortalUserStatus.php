<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * A portal user reference's `status` (schema PortalUserStatus). Methods that take one
 * accept the enum or its string; answers carry the string
 * (`PortalUserStatus::from($answer[...])` turns it into the enum). The drift test
 * holds the cases to the spec.
 */
enum PortalUserStatus: string
{
    case Pending = 'pending';
    case Synced = 'synced';
    case Failed = 'failed';
    case Deprovisioned = 'deprovisioned';
}
