<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Exception\AccessDenied;
use Efs\Iam\Exception\Conflict;
use Efs\Iam\Exception\InvalidInput;
use Efs\Iam\Exception\Misconfigured;
use Efs\Iam\Exception\ProblemException;
use Efs\Iam\Exception\ResourceNotFound;
use Efs\Iam\Exception\ServerFault;
use Efs\Iam\Exception\Unavailable;
use Efs\Iam\Tests\Support\SpecDrift;
use GuzzleHttp\Psr7\Response;
use PHPUnit\Framework\TestCase;

/**
 * Every problem type of the spec's table is caught by exactly one category, and the
 * category fits its status: a new problem type without a category, or in the wrong
 * one, fails here.
 */
final class ProblemCategoriesTest extends TestCase
{
    /** The statuses each category may carry. */
    private const STATUSES = [
        InvalidInput::class => [400, 405, 413, 415, 422],
        ResourceNotFound::class => [404],
        Conflict::class => [409, 422],
        AccessDenied::class => [401, 403],
        Unavailable::class => [503],
        Misconfigured::class => [502, 503],
        ServerFault::class => [500, 502],
    ];

    public function testEachProblemTypeOfTheSpecHasExactlyOneCategoryFittingItsStatus(): void
    {
        $spec = SpecDrift::load(getenv('EFS_IAM_TEST_OPENAPI') ?: __DIR__ . '/../../../openapi/openapi.json');
        $table = SpecDrift::problemTable($spec);
        $this->assertGreaterThan(30, count($table));
        $this->assertEqualsCanonicalizing(array_keys(self::STATUSES), ProblemException::CATEGORIES);
        foreach ($table as [$slug, $status]) {
            $e = ProblemException::fromResponse(new Response(
                $status,
                ['Content-Type' => 'application/problem+json'],
                json_encode(['type' => "urn:efs-iam:problem:$slug", 'title' => 't', 'status' => $status, 'detail' => 'd'], JSON_THROW_ON_ERROR),
            ));
            $categories = array_values(array_filter(
                ProblemException::CATEGORIES,
                static fn (string $category): bool => $e instanceof $category,
            ));
            $this->assertCount(1, $categories, "$slug ($status) is in exactly one category: " . implode(', ', $categories));
            $this->assertContains($status, self::STATUSES[$categories[0]], "$slug ($status) fits {$categories[0]}");
            $caught = null;
            try {
                throw $e;
            } catch (InvalidInput | ResourceNotFound | Conflict | AccessDenied | Unavailable | Misconfigured | ServerFault $c) {
                $caught = $c;
            }
            $this->assertSame($e, $caught);
            $this->assertSame($categories[0] === Unavailable::class, $e->isTransient(), "$slug: transient only when Unavailable");
        }
    }

    public function testConfigurationProblemsAreNotTransient(): void
    {
        $e = ProblemException::fromResponse(new Response(
            503,
            ['Content-Type' => 'application/problem+json'],
            '{"type":"urn:efs-iam:problem:okta-not-configured","title":"t","status":503,"detail":"d"}',
        ));
        $this->assertInstanceOf(Misconfigured::class, $e);
        $this->assertFalse($e->isTransient());
    }
}
