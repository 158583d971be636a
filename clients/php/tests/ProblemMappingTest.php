<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Exception\FieldError;
use Efs\Iam\Exception\NotFound;
use Efs\Iam\Exception\OktaGroupNotFound;
use Efs\Iam\Exception\OktaValidationFailed;
use Efs\Iam\Exception\ProblemException;
use Efs\Iam\RetryPolicy;
use GuzzleHttp\Psr7\Response;
use PHPUnit\Framework\TestCase;

/**
 * Problem documents to exceptions, without a server: the shapes a live efs-iam does
 * not send today (unknown types, field errors without a field) must still map.
 */
final class ProblemMappingTest extends TestCase
{
    /** @param array<string, mixed> $document */
    private static function problem(int $status, array $document, array $headers = []): ProblemException
    {
        return ProblemException::fromResponse(new Response(
            $status,
            ['Content-Type' => 'application/problem+json'] + $headers,
            json_encode($document, JSON_THROW_ON_ERROR),
        ));
    }

    public function testEachKnownSlugHasItsClass(): void
    {
        foreach (ProblemException::CLASSES as $slug => $class) {
            $e = self::problem(400, ['type' => "urn:efs-iam:problem:$slug", 'title' => 't', 'status' => 400, 'detail' => 'd']);
            $this->assertSame($class, get_class($e), $slug);
            $this->assertSame($slug, $e->slug());
            $this->assertStringEndsWith(str_replace('-', '', ucwords($slug, '-')), $class, 'the class is the slug in PascalCase');
        }
        $this->assertCount(35, ProblemException::CLASSES);
    }

    public function testAnUnknownTypeIsTheBaseClass(): void
    {
        $e = self::problem(418, [
            'type' => 'urn:efs-iam:problem:brand-new-problem',
            'title' => 'Something new',
            'status' => 418,
            'detail' => 'a newer efs-iam',
        ], ['x-request-id' => 'req-1', 'Retry-After' => '7']);
        $this->assertSame(ProblemException::class, get_class($e));
        $this->assertSame('brand-new-problem', $e->slug());
        $this->assertSame(418, $e->status);
        $this->assertSame('req-1', $e->requestId);
        $this->assertSame(7, $e->retryAfter);
        $this->assertSame('efs-iam 418 brand-new-problem: a newer efs-iam', $e->getMessage());

        $foreign = self::problem(404, ['type' => 'about:blank', 'title' => 'Not Found', 'status' => 404]);
        $this->assertSame(ProblemException::class, get_class($foreign));
        $this->assertSame('', $foreign->slug());
        $this->assertNull($foreign->requestId);
    }

    public function testFieldErrorsWithoutAFieldAreKept(): void
    {
        $e = self::problem(422, [
            'type' => 'urn:efs-iam:problem:okta-validation-failed',
            'title' => 'Okta refused the profile',
            'status' => 422,
            'detail' => 'email: Does not match required pattern; the profile was refused',
            'errors' => [
                ['field' => 'email', 'message' => 'Does not match required pattern'],
                ['message' => 'the profile was refused'],
                ['field' => null, 'message' => 'try again with another login'],
                ['field' => 'email', 'message' => 'is taken'],
            ],
        ]);
        $this->assertInstanceOf(OktaValidationFailed::class, $e);
        $this->assertEquals([
            new FieldError('email', 'Does not match required pattern'),
            new FieldError(null, 'the profile was refused'),
            new FieldError(null, 'try again with another login'),
            new FieldError('email', 'is taken'),
        ], $e->errors);
        $this->assertSame(['email' => 'Does not match required pattern; is taken'], $e->fieldMessages());
        $this->assertSame(['the profile was refused', 'try again with another login'], $e->generalMessages());
        $this->assertSame([
            'email' => 'Does not match required pattern; is taken',
            'profile' => 'the profile was refused; try again with another login',
        ], $e->profileErrors());
    }

    public function testOneClassForBothStatusesOfOktaGroupNotFound(): void
    {
        foreach ([409, 422] as $status) {
            $e = self::problem($status, [
                'type' => 'urn:efs-iam:problem:okta-group-not-found',
                'title' => 'Okta group not found',
                'status' => $status,
                'detail' => 'd',
            ]);
            $this->assertInstanceOf(OktaGroupNotFound::class, $e);
            $this->assertSame($status, $e->status);
        }
    }

    public function testABodyThatIsNoProblemDocumentStillMaps(): void
    {
        $e = ProblemException::fromResponse(new Response(404, ['Content-Type' => 'application/problem+json'], 'oops'));
        $this->assertSame(ProblemException::class, get_class($e));
        $this->assertSame(404, $e->status);
        $this->assertSame([], $e->errors);
        $this->assertNotInstanceOf(NotFound::class, $e);
    }

    public function testRetryAfterIsReadInSecondsOrAsADate(): void
    {
        $this->assertSame(1.0, RetryPolicy::retryAfterSeconds('1'));
        $this->assertSame(5.0, RetryPolicy::retryAfterSeconds(' 5 '));
        $this->assertNull(RetryPolicy::retryAfterSeconds(''));
        $this->assertNull(RetryPolicy::retryAfterSeconds('soon'));
        $now = 1_800_000_000;
        $this->assertSame(30.0, RetryPolicy::retryAfterSeconds(gmdate('D, d M Y H:i:s', $now + 30) . ' GMT', $now));
        $this->assertSame(0.0, RetryPolicy::retryAfterSeconds(gmdate('D, d M Y H:i:s', $now - 30) . ' GMT', $now));
    }

    public function testTheRetryBudget(): void
    {
        $policy = new RetryPolicy(3, 2.5);
        $this->assertTrue($policy->allows(1, 0.0, 1.0));
        $this->assertTrue($policy->allows(2, 1.0, 1.0));
        $this->assertFalse($policy->allows(3, 2.0, 0.0), 'no fourth attempt');
        $this->assertFalse($policy->allows(2, 2.0, 1.0), 'no wait past the budget');
        $this->assertFalse(RetryPolicy::none()->allows(1, 0.0, 0.0));
        $this->expectException(\InvalidArgumentException::class);
        new RetryPolicy(0);
    }
}
