<?php

declare(strict_types=1);

namespace Efs\Iam\Auth;

/**
 * Supplies the bearer token for a call. The client asks with the exact scope the
 * operation needs (space-separated, e.g. `iam:write iam:admin`) before every attempt;
 * providers cache, the client does not.
 */
interface TokenProvider
{
    /** A token whose `scope` claim carries (at least) `$scope`. */
    public function token(string $scope): string;
}
