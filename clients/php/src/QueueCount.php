<?php

declare(strict_types=1);

namespace Efs\Iam;

/**
 * One count of a portal's unassignment queue (`counts` of `listUnassignments()` and
 * `enqueueUnassignments()`): exact up to {@see self::CAP}; beyond it efs-iam stops
 * counting, the value is the cap and `isLowerBound` is true ("10000+"). The cap keeps
 * the listing fast for a portal with tens of thousands queued.
 */
final class QueueCount implements \Stringable
{
    public const CAP = 10_000;

    public function __construct(
        public readonly int $value,
        public readonly bool $isLowerBound,
    ) {
    }

    /**
     * The count of one state from an answer's `counts`.
     *
     * @param array{pending: int, dead: int, pending_capped?: bool, dead_capped?: bool} $counts
     */
    public static function fromCounts(array $counts, UnassignmentState|string $state): self
    {
        $name = $state instanceof UnassignmentState ? $state->value : UnassignmentState::from($state)->value;
        return new self((int) $counts[$name], (bool) ($counts["{$name}_capped"] ?? false));
    }

    /** `42`, or `10000+` for a lower bound. */
    public function __toString(): string
    {
        return $this->value . ($this->isLowerBound ? '+' : '');
    }
}
