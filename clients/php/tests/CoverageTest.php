<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Client;
use Efs\Iam\Tests\Support\LiveTestCase;
use Efs\Iam\Tests\Support\SpecDrift;

/**
 * Runs last (phpunit.xml.dist lists the files in order): the suite before it called
 * every operation of the client and provoked every problem type of the spec's table,
 * each with its status.
 */
final class CoverageTest extends LiveTestCase
{
    public function testEveryOperationWasCalled(): void
    {
        $missing = [];
        foreach (Client::OPERATIONS as $name => [$method, $route]) {
            $pattern = '#^/api/v1' . preg_replace('/\\\\\{[a-z_]+\\\\\}/', '[^/]+', preg_quote($route, '#')) . '$#';
            $called = array_filter(
                self::$requests,
                static fn (array $r): bool => $r[0] === $method && preg_match($pattern, $r[1]) === 1,
            );
            if ($called === []) {
                $missing[] = "$name ($method $route)";
            }
        }
        $this->assertSame([], $missing, 'operations no test called');
        $this->assertCount(42, Client::OPERATIONS);
    }

    public function testEveryProblemTypeWasProvoked(): void
    {
        $spec = SpecDrift::load(getenv('EFS_IAM_TEST_OPENAPI') ?: __DIR__ . '/../../../openapi/openapi.json');
        $missing = [];
        foreach (SpecDrift::problemTable($spec) as [$slug, $status]) {
            if (!isset(self::$provoked["$slug $status"])) {
                $missing[] = "$slug ($status)";
            }
        }
        if (getenv('EFS_IAM_TEST_CACHE_URL') === false || getenv('EFS_IAM_TEST_CACHE_URL') === '') {
            // Only a memcached-backed instance can answer these (see ProblemTypesTest).
            $missing = array_values(array_diff($missing, ['token-too-large (413)', 'token-store-unavailable (503)']));
        }
        $this->assertSame([], $missing, 'problem types no test provoked');
    }
}
