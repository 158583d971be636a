<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\QueueCount;
use Efs\Iam\UnassignmentState;
use PHPUnit\Framework\TestCase;

/** A portal's queue counts, exact or a lower bound past efs-iam's cap of 10,000. */
final class QueueCountTest extends TestCase
{
    private const CAPPED = ['pending' => 10_000, 'dead' => 37, 'pending_capped' => true, 'dead_capped' => false];

    public function testACappedCountIsALowerBound(): void
    {
        $pending = QueueCount::fromCounts(self::CAPPED, UnassignmentState::Pending);
        $this->assertSame(QueueCount::CAP, $pending->value);
        $this->assertTrue($pending->isLowerBound);
        $this->assertSame('10000+', (string) $pending);
    }

    public function testAnExactCountIsExact(): void
    {
        $dead = QueueCount::fromCounts(self::CAPPED, 'dead');
        $this->assertSame([37, false, '37'], [$dead->value, $dead->isLowerBound, (string) $dead]);
    }

    public function testAnAnswerWithoutFlagsIsExact(): void
    {
        $this->assertFalse(QueueCount::fromCounts(['pending' => 3, 'dead' => 0], 'pending')->isLowerBound);
    }

    public function testAStateTheQueueDoesNotHaveIsRefused(): void
    {
        $this->expectException(\ValueError::class);
        QueueCount::fromCounts(self::CAPPED, 'succeeded');
    }
}
