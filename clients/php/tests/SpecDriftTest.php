<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Client;
use Efs\Iam\JobItemState;
use Efs\Iam\JobState;
use Efs\Iam\PortalUserStatus;
use Efs\Iam\RunState;
use Efs\Iam\Scope;
use Efs\Iam\UnassignmentState;
use Efs\Iam\Tests\Support\SpecDrift;
use PHPUnit\Framework\TestCase;

/**
 * The client against efs-iam's OpenAPI document (openapi/openapi.json, the one the
 * server serves): a new, renamed or removed operation, a changed scope or parameter, or
 * a new problem type fails here until the client follows.
 */
final class SpecDriftTest extends TestCase
{
    /** @return array<string, mixed> */
    private static function spec(): array
    {
        $file = getenv('EFS_IAM_TEST_OPENAPI') ?: __DIR__ . '/../../../openapi/openapi.json';
        return SpecDrift::load($file);
    }

    public function testTheClientHasExactlyTheSpecsOperations(): void
    {
        $spec = self::spec();
        $this->assertSame([], SpecDrift::problems($spec));
        $operations = SpecDrift::operations($spec);
        $this->assertCount(42, $operations, 'the API as of this client: 42 operations besides health');
        $this->assertEqualsCanonicalizing(array_keys($operations), array_keys(Client::OPERATIONS));
        // Left to other callers: only what is served outside /api/v1 (the probes, hooks).
        foreach (SpecDrift::otherCallersOperations($spec) as $operation) {
            $this->assertDoesNotMatchRegularExpression('#^\S+ /api/v1#', $operation);
            $this->assertArrayHasKey('servers', $spec['paths'][explode(' ', $operation)[1]]);
        }
        $this->assertContains('GET /health/ready', SpecDrift::otherCallersOperations($spec));
        $this->assertSame('getPortalSettings', SpecDrift::camel('get_portal_settings'));
        $this->assertSame('syncPortalUser', SpecDrift::camel('sync_portal_user'));
    }

    public function testEveryProblemTypeOfTheSpecHasItsClass(): void
    {
        $table = SpecDrift::problemTable(self::spec());
        $this->assertCount(36, $table, '36 rows: okta-group-not-found is listed with 409 and with 422');
        $this->assertCount(35, SpecDrift::problemSlugs(self::spec()));
        $this->assertContains(['okta-group-not-found', 409], $table);
        $this->assertContains(['okta-group-not-found', 422], $table);
    }

    public function testANewOperationIsNoticed(): void
    {
        $spec = self::spec();
        $spec['paths']['/portals/{portal_id}/archive']['post'] = [
            'tags' => ['portal settings'],
            'operationId' => 'archive_portal',
            'security' => [['bearer' => ['iam:write']]],
            'parameters' => [['name' => 'portal_id', 'in' => 'path']],
        ];
        $this->assertSame(
            ['operation archive_portal (POST /portals/{portal_id}/archive) has no client method archivePortal()'],
            SpecDrift::problems($spec),
        );
    }

    public function testOnlyOperationsOutsideTheApiAreLeftToOtherCallers(): void
    {
        $spec = self::spec();
        $spec['paths']['/hooks/example']['servers'] = [['url' => '/']];
        $spec['paths']['/hooks/example']['post'] = ['tags' => ['hooks'], 'operationId' => 'receive_example'];
        $spec['paths']['/portals/{portal_id}/example']['post'] = ['tags' => ['hooks'], 'operationId' => 'inside_the_api'];
        $this->assertSame(
            ['operation inside_the_api (POST /portals/{portal_id}/example) has no client method insideTheApi()'],
            SpecDrift::problems($spec),
        );
    }

    public function testARemovedOrRenamedOperationIsNoticed(): void
    {
        $spec = self::spec();
        $spec['paths']['/portals/{portal_id}/settings']['get']['operationId'] = 'read_portal_settings';
        $problems = SpecDrift::problems($spec);
        $this->assertContains(
            'operation read_portal_settings (GET /portals/{portal_id}/settings) has no client method readPortalSettings()',
            $problems,
        );
        $this->assertContains('Client::getPortalSettings() names no operation of the spec (removed or renamed?)', $problems);
    }

    public function testAChangedScopeParameterOrProblemTypeIsNoticed(): void
    {
        $spec = self::spec();
        $spec['paths']['/sync/status']['get']['security'] = [['bearer' => ['iam:read']]];
        $spec['paths']['/errors']['get']['parameters'][] = ['name' => 'request_id', 'in' => 'query'];
        $spec['components']['schemas']['Problem']['properties']['type']['description'] .=
            "| `brand-new` | 409 | Something new |\n";
        $this->assertSame([
            'operation query_error_log (GET /errors): parameter request_id has no argument $requestId in queryErrorLog()',
            'operation sync_status (GET /sync/status): Client::OPERATIONS[\'syncStatus\'] says GET /sync/status iam:sync, '
                . 'the spec says GET /sync/status iam:read',
            'operation sync_status (GET /sync/status): x-efs-iam.scopes.required disagrees with its security requirement',
            'problem type brand-new has no exception class in ProblemException::CLASSES',
        ], SpecDrift::problems($spec));
    }

    public function testEveryPostNeedsARetryDecision(): void
    {
        $spec = self::spec();
        $spec['paths']['/portals/{portal_id}/settings']['post'] = $spec['paths']['/portals/{portal_id}/settings']['put'];
        $spec['paths']['/portals/{portal_id}/settings']['post']['operationId'] = 'put_portal_settings';
        $problems = SpecDrift::problems($spec);
        $this->assertContains(
            'operation put_portal_settings (POST /portals/{portal_id}/settings): Client::OPERATIONS[\'putPortalSettings\'] '
                . 'says PUT /portals/{portal_id}/settings iam:write, the spec says POST /portals/{portal_id}/settings iam:write',
            $problems,
        );
        $this->assertContains(
            'operation put_portal_settings (POST /portals/{portal_id}/settings): POST putPortalSettings() is in neither '
                . 'Client::RETRY_SAFE nor Client::NOT_RETRIED; decide whether repeating it is safe',
            $problems,
        );
    }

    /**
     * Issue #23's first finding: the server had a trust setting the client did not
     * know (reconcile_mode). The spec now says which settings need iam:admin, and
     * which POSTs may be repeated, and the client's tables are held to it.
     */
    public function testATrustSettingOrARepeatabilityTheClientDoesNotKnowIsNoticed(): void
    {
        $spec = self::spec();
        $setting = '/portals/{portal_id}/settings/{key}';
        $this->assertEqualsCanonicalizing(
            Scope::TRUST_SETTINGS,
            $spec['paths'][$setting]['put']['x-efs-iam']['scopes']['admin_for_settings'],
        );
        $spec['paths'][$setting]['put']['x-efs-iam']['scopes']['admin_for_settings'][] = 'okta_redirect_uri';
        $spec['paths']['/errors']['post']['x-efs-iam']['repeatable'] = true;
        $spec['paths']['/sync/portals/{portal_id}/reconcile']['post']['x-efs-iam']['scopes']['admin_when'] = 'always';
        $this->assertSame([
            'operation record_error (POST /errors): the spec says x-efs-iam.repeatable true, the client has it in NOT_RETRIED',
            'operation put_portal_setting (PUT /portals/{portal_id}/settings/{key}): the spec\'s trust settings are '
                . 'okta_client_id, okta_group_id, okta_issuer, okta_redirect_uri, reconcile_mode, Scope::TRUST_SETTINGS has '
                . 'okta_client_id, okta_group_id, okta_issuer, reconcile_mode',
            'operation reconcile_portal (POST /sync/portals/{portal_id}/reconcile): the spec asks for iam:admin when always; '
                . 'teach reconcilePortal() and list it in SpecDrift::ADMIN_WHEN',
        ], SpecDrift::problems($spec));
    }

    /** The client's enums have exactly the values the spec allows. */
    public function testTheEnumsAreTheSpecs(): void
    {
        $spec = self::spec();
        $parameter = static function (string $path, string $name) use ($spec): array {
            foreach ($spec['paths'][$path]['get']['parameters'] as $p) {
                if ($p['name'] === $name) {
                    return $p['schema']['enum'];
                }
            }
            return [];
        };
        $expected = [
            PortalUserStatus::class => $spec['components']['schemas']['PortalUserStatus']['enum'],
            JobState::class => $spec['components']['schemas']['JobState']['enum'],
            RunState::class => $spec['components']['schemas']['RunState']['enum'],
            UnassignmentState::class => $parameter('/portals/{portal_id}/unassignments', 'state'),
            JobItemState::class => $parameter('/sync/jobs/{job_id}', 'state'),
        ];
        foreach ($expected as $enum => $values) {
            $this->assertNotEmpty($values, $enum);
            $this->assertSame($values, array_map(static fn (\BackedEnum $c) => $c->value, $enum::cases()), $enum);
        }
    }

    /**
     * Consistent return values: a method returns nothing exactly when its operation
     * answers 204 only, and the decoded body (an array) otherwise.
     */
    public function testAMethodReturnsTheBodyUnlessItsOperationHasNone(): void
    {
        $operations = SpecDrift::operations(self::spec());
        $this->assertNotEmpty($operations);
        foreach ($operations as $name => $operation) {
            $returns = (string) (new \ReflectionMethod(Client::class, $name))->getReturnType();
            $this->assertSame($operation['no_content'] ? 'void' : 'array', $returns, "$name returns $returns");
        }
    }
}
