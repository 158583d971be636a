<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * Category: efs-iam or what it depends on cannot serve the call right now (503): the
 * same call may succeed later; the client repeats calls safe to repeat after
 * `Retry-After`.
 *
 * `catch (Unavailable $e)` catches {@see ServiceUnavailable},
 * {@see DatabaseUnavailable}, {@see TokenStoreUnavailable}, {@see IdpUnavailable},
 * {@see OktaUnavailable}, {@see UserBusy}, {@see Overloaded}, {@see Timeout}.
 */
abstract class Unavailable extends ProblemException
{
}
