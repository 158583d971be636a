<?php

// A unit test of EFS-Admin code with the client mocked: once as a PHPUnit double, once
// with recorded answers through Guzzle's MockHandler (problem documents included).
// Run: phpunit --bootstrap vendor/efs-iam/autoload.php PortalGroupsTest.php

declare(strict_types=1);

namespace EfsAdmin\Tests;

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use GuzzleHttp\Handler\MockHandler;
use GuzzleHttp\HandlerStack;
use GuzzleHttp\Psr7\Response;
use EfsAdmin\PortalGroups;
use PHPUnit\Framework\TestCase;

final class PortalGroupsTest extends TestCase
{
    public static function setUpBeforeClass(): void
    {
        require_once __DIR__ . '/PortalGroups.php';   // EFS-Admin's own autoloader would
    }

    public function testAPortalsGroupWithTheClientDoubled(): void
    {
        $iam = $this->createMock(Client::class);
        $iam->expects($this->once())->method('getPortalSetting')->with(7, 'okta_group_id')
            ->willReturn(['portal_id' => 7, 'key' => 'okta_group_id', 'value' => '00g1abcdefGHIJKLM697']);

        $this->assertSame('00g1abcdefGHIJKLM697', (new PortalGroups($iam))->groupOf(7));
    }

    public function testAPortalWithoutAGroupFromARecordedAnswer(): void
    {
        $answers = new MockHandler([
            new Response(404, ['Content-Type' => 'application/problem+json'], json_encode([
                'type' => 'urn:efs-iam:problem:not-found',
                'title' => 'Not found',
                'status' => 404,
                'detail' => 'portal 8 has no setting okta_group_id',
            ])),
        ]);
        $iam = new Client(
            'http://efs-iam.test',
            new Hs256Tokens(str_repeat('s', 32)),
            http: new \GuzzleHttp\Client(['handler' => HandlerStack::create($answers)]),
        );

        $this->assertNull((new PortalGroups($iam))->groupOf(8));
        $this->assertSame('/api/v1/portals/8/settings/okta_group_id', $answers->getLastRequest()?->getUri()->getPath());
    }
}
