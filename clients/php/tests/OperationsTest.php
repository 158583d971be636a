<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Client;
use Efs\Iam\Exception\NotFound;
use Efs\Iam\QueueCount;
use Efs\Iam\RunState;
use Efs\Iam\Tests\Support\LiveTestCase;
use Efs\Iam\UnassignmentState;

/**
 * Every operation against the live `main` instance (MariaDB, the fake Okta, workers
 * running), asserting what it answered and what it changed.
 */
final class OperationsTest extends LiveTestCase
{
    public function testPortalSettings(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $this->assertSame(
            ['portal_id' => $portal, 'key' => 'theme', 'value' => 'dark'],
            $iam->putPortalSetting($portal, 'theme', 'dark'),
        );
        $this->assertSame(201, $iam->lastResponse()?->getStatusCode(), 'created');
        $iam->putPortalSetting($portal, 'theme', 'light');
        $this->assertSame(200, $iam->lastResponse()?->getStatusCode(), 'changed');

        $all = $iam->putPortalSettings($portal, ['locale' => 'de', 'okta_client_id' => '0oaPHPCLIENT00000001']);
        $this->assertSame($portal, $all['portal_id']);
        $this->assertSame('de', $all['settings']['locale']);
        self::assertSameMap(
            ['portal_id' => $portal, 'settings' => ['locale' => 'de', 'okta_client_id' => '0oaPHPCLIENT00000001', 'theme' => 'light']],
            $iam->getPortalSettings($portal),
        );
        $this->assertSame('light', $iam->getPortalSetting($portal, 'THEME')['value'], 'keys compare case-insensitively');

        $iam->deletePortalSetting($portal, 'theme');
        $iam->deletePortalSetting($portal, 'Okta_Client_Id');
        $this->assertSame(['locale' => 'de'], $iam->getPortalSettings($portal)['settings']);
        $e = self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getPortalSetting($portal, 'theme'));
        $this->assertStringContainsString('theme', $e->detail);
        $this->assertSame([], $iam->getPortalSettings(self::nextId())['settings'], 'a portal without settings: {} as []');
    }

    public function testAdminUserReferences(): void
    {
        $iam = self::client();
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        $okta = '00uPHPADMIN' . $user;
        self::manageOktaUsers([$okta]);
        $stored = $iam->putAdminUserReference($user, $okta);
        $this->assertSame($user, $stored['user_id']);
        $this->assertSame($okta, $stored['okta_user_id']);
        $this->assertSame(201, $iam->lastResponse()?->getStatusCode());
        $this->assertSame($stored['okta_user_id'], $iam->getAdminUserReference($user)['okta_user_id']);

        $references = $iam->referencesToOktaUser($okta);
        $this->assertSame($okta, $references['okta_user_id']);
        $this->assertSame([$user], array_column($references['admin_users'], 'user_id'));
        $this->assertSame([], $references['portal_users']);

        $iam->deleteAdminUserReference($user);
        $this->assertSame(204, $iam->lastResponse()?->getStatusCode());
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getAdminUserReference($user));
    }

    public function testPortalUserReferences(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        [$first, $second] = [self::nextId(), self::nextId()];
        self::seedEfsUsers([], [$first, $second]);
        self::manageOktaUsers(['00uPHPPANEL' . $first, '00uPHPPANEL' . $second]);
        $reference = $iam->putPortalUserReference($portal, $first, '00uPHPPANEL' . $first, 'pending', true);
        $this->assertSame($portal, $reference['portal_id']);
        $this->assertSame($first, $reference['user_id']);
        $this->assertSame('pending', $reference['status']);
        $this->assertTrue($reference['has_data_changes']);

        $patched = $iam->patchPortalUserReference($portal, $first, ['status' => 'synced', 'has_data_changes' => false]);
        $this->assertSame('synced', $patched['status']);
        $this->assertFalse($patched['has_data_changes']);
        $this->assertSame('00uPHPPANEL' . $first, $patched['okta_user_id'], 'fields not named are kept');
        $iam->putPortalUserReference($portal, $second, '00uPHPPANEL' . $second, 'failed');
        $this->assertSame('failed', $iam->getPortalUserReference($portal, $second)['status']);

        $this->assertSame([$first], array_column($iam->listPortalUserReferences($portal, status: 'synced')['items'], 'user_id'));
        $synced = $iam->listPortalUserReferences($portal, status: \Efs\Iam\PortalUserStatus::Synced)['items'];
        $this->assertSame([$first], array_column($synced, 'user_id'), 'an enum is sent as its value');
        $this->assertSame(\Efs\Iam\PortalUserStatus::Synced, \Efs\Iam\PortalUserStatus::from($synced[0]['status']));
        $this->assertSame([], $iam->listPortalUserReferences($portal, hasDataChanges: true)['items']);
        $page = $iam->listPortalUserReferences($portal, limit: 1);
        $this->assertCount(1, $page['items']);
        $this->assertIsString($page['next_cursor']);
        $rest = $iam->listPortalUserReferences($portal, limit: 1, cursor: $page['next_cursor']);
        $this->assertSame(
            [$first, $second],
            [$page['items'][0]['user_id'], $rest['items'][0]['user_id']],
            'two pages, one reference each, in order',
        );

        // paginate(): every page walked to the end (the last page has no next_cursor),
        // one call per page; and the cap.
        $pages = 0;
        $walked = iterator_to_array($iam->paginate(function (?string $cursor) use ($iam, $portal, &$pages): array {
            $pages++;
            return $iam->listPortalUserReferences($portal, limit: 1, cursor: $cursor);
        }));
        $this->assertSame([$first, $second], array_column($walked, 'user_id'));
        $this->assertSame(2, $pages, 'two pages; the second, the last, has no next_cursor');
        $this->assertArrayNotHasKey('next_cursor', $iam->lastResponse() === null ? [] : json_decode((string) $iam->lastResponse()->getBody(), true));
        $pages = 0;
        $capped = iterator_to_array($iam->paginate(function (?string $cursor) use ($iam, $portal, &$pages): array {
            $pages++;
            return $iam->listPortalUserReferences($portal, limit: 1, cursor: $cursor);
        }, max: 1));
        $this->assertSame([$first], array_column($capped, 'user_id'));
        $this->assertSame(1, $pages, 'the cap stops before the next page is fetched');
        $this->assertSame(
            [$portal],
            array_column($iam->referencesToOktaUser('00uPHPPANEL' . $second)['portal_users'], 'portal_id'),
        );

        $iam->deletePortalUserReference($portal, $first);
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getPortalUserReference($portal, $first));
    }

    public function testErrorLog(): void
    {
        $iam = self::client();
        $marker = 'php client ' . self::nextId();
        $entry = $iam->recordError([
            'message' => "Api validation failed: login ($marker)",
            'status_code' => 400,
            'error_code' => 'E0000001',
            'trace' => 'POST /api/v1/users',
        ]);
        $this->assertIsInt($entry['id']);
        $this->assertSame(400, $entry['status_code']);
        $this->assertSame('E0000001', $entry['error_code']);
        $this->assertSame(201, $iam->lastResponse()?->getStatusCode());
        $this->assertSame($entry, $iam->getErrorLogEntry($entry['id']));

        $found = $iam->queryErrorLog(
            since: new \DateTimeImmutable('-1 hour'),
            statusCode: 400,
            errorCode: 'E0000001',
            q: $marker,
        );
        $this->assertSame([$entry['id']], array_column($found['items'], 'id'));
        $this->assertSame([], $iam->queryErrorLog(until: new \DateTimeImmutable('-1 day'), q: $marker)['items']);
        $this->assertSame([], $iam->queryErrorLog(since: (new \DateTimeImmutable('+1 hour'))->format(\DATE_RFC3339), q: $marker)['items']);

        $none = self::purgedBy($iam, $iam->purgeErrorLog(new \DateTimeImmutable('-1 day')));
        $this->assertSame(0, $none['deleted']);
        $this->assertSame($entry, $iam->getErrorLogEntry($entry['id']));
        $purged = self::purgedBy($iam, $iam->purgeErrorLog(new \DateTimeImmutable('+1 minute')));
        $this->assertGreaterThanOrEqual(1, $purged['deleted']);
        $this->assertSame(1, $purged['attempts']);
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getErrorLogEntry($entry['id']));
        self::expectProblem(
            NotFound::class,
            404,
            'not-found',
            fn () => $iam->getErrorLogPurge('0b6d1c8e-53a5-4a59-9a77-6f2c6c1d2e10'),
        );
    }

    /**
     * A purge answers at once (202, pending); its worker ends it: polls its status until then.
     *
     * @param array<string, mixed> $accepted
     * @return array<string, mixed>
     */
    private static function purgedBy(Client $iam, array $accepted): array
    {
        self::assertSame(202, $iam->lastResponse()?->getStatusCode());
        self::assertSame(RunState::Pending, RunState::from($accepted['state']));
        self::assertSame(0, $accepted['deleted']);
        for ($i = 0; $i < 200; $i++) {
            $purge = $iam->getErrorLogPurge($accepted['purge_id']);
            self::assertSame($accepted['purge_id'], $purge['purge_id']);
            $state = RunState::from($purge['state']);
            if ($state === RunState::Succeeded) {
                return $purge;
            }
            self::assertNotSame(RunState::Failed, $state, (string) $purge['error']);
            usleep(50_000);
        }
        self::fail("purge {$accepted['purge_id']} did not end within 10 s");
    }

    public function testSessionTokens(): void
    {
        $iam = self::client();
        $session = 'php-session-' . self::nextId();
        $response = ['token_type' => 'Bearer', 'access_token' => 'at-' . $session, 'expires_in' => 3600, 'scope' => 'openid'];
        $iam->putSessionToken($session, $response);
        $this->assertSame(204, $iam->lastResponse()?->getStatusCode());
        $stored = $iam->getSessionToken($session);
        self::assertSameMap($response, $stored['idp_response']);
        $this->assertSame(3600, strtotime($stored['expires_at']) - strtotime($stored['stored_at']));
        $iam->deleteSessionToken($session);
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getSessionToken($session));
    }

    public function testVerifiedIdTokensAndLogoutEverywhere(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $clientId = '0oaPHPPORTAL' . $portal;
        $iam->putPortalSettings($portal, ['okta_issuer' => self::env('EFS_IAM_TEST_OKTA_URL'), 'okta_client_id' => $clientId]);
        $sub = '00uPHPLOGOUT' . $portal;
        $sessions = ["php-login-$portal-a", "php-login-$portal-b"];
        foreach ($sessions as $session) {
            $idToken = self::control('POST', '/okta/id-token', ['claims' => ['sub' => $sub, 'aud' => $clientId, 'email' => 'p@example.com']])['id_token'];
            $iam->putSessionToken($session, ['access_token' => 'at', 'id_token' => $idToken, 'expires_in' => 600], $portal);
        }
        $stored = $iam->getSessionToken($sessions[0]);
        $this->assertSame($portal, $stored['portal_id']);
        $this->assertSame($sub, $stored['claims']['sub']);
        $this->assertSame('p@example.com', $stored['claims']['email']);
        $this->assertIsInt($stored['claims']['exp']);

        $this->assertSame(['deleted' => 2], $iam->deleteOktaUserSessions($sub));
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getSessionToken($sessions[1]));
        $this->assertSame(['deleted' => 0], $iam->deleteOktaUserSessions($sub));
    }

    public function testSyncingAnAdminUserAndDeprovisioningIt(): void
    {
        $iam = self::client();
        $user = self::nextId();
        self::seedEfsUsers([$user]);
        $login = self::uniqueLogin('ada');
        $created = $iam->syncAdminUser($user, self::profile($login));
        $this->assertSame($user, $created['user_id']);
        $this->assertSame('created', $created['outcome']);
        $this->assertSame([], $created['updated_fields']);
        $this->assertMatchesRegularExpression('/^00u[A-Za-z0-9]{17}$/', $created['okta_user_id']);
        $okta = self::control('GET', '/okta/users/' . $created['okta_user_id']);
        $this->assertSame($login, $okta['profile']['login']);
        $this->assertSame($okta['status'], $created['okta_status']);

        $again = $iam->syncAdminUser($user, self::profile($login));
        $this->assertSame(['unchanged', $created['okta_user_id']], [$again['outcome'], $again['okta_user_id']]);
        $renamed = $iam->syncAdminUser($user, self::profile($login, ['first_name' => 'Augusta', 'attributes' => []]));
        $this->assertSame(['updated', ['first_name']], [$renamed['outcome'], $renamed['updated_fields']]);
        $this->assertSame('Augusta', self::control('GET', '/okta/users/' . $created['okta_user_id'])['profile']['firstName']);
        $this->assertSame($created['okta_user_id'], $iam->getAdminUserReference($user)['okta_user_id']);

        $gone = $iam->deprovisionAdminUser($user);
        self::assertSameMap(
            ['user_id' => $user, 'okta_user_id' => $created['okta_user_id'], 'outcome' => 'deactivated', 'other_references' => 0],
            $gone,
        );
        $this->assertSame('DEPROVISIONED', self::control('GET', '/okta/users/' . $created['okta_user_id'])['status']);
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getAdminUserReference($user));
    }

    public function testSyncingPortalUsersOneAndInABatchJob(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $group = self::oktaGroup('portal');
        $iam->putPortalSetting($portal, 'okta_group_id', $group);
        [$one, $good, $bad] = [self::nextId(), self::nextId(), self::nextId()];
        self::seedEfsUsers([], [$one, $good, $bad]);

        $synced = $iam->syncPortalUser($portal, $one, self::profile(self::uniqueLogin('pan'), ['attributes' => ['department' => 'R&D']]));
        $this->assertSame([$portal, $one, 'created', $group, 'synced'], [
            $synced['portal_id'], $synced['user_id'], $synced['outcome'], $synced['group_id'], $synced['status'],
        ]);
        $this->assertContains($synced['okta_user_id'], self::control('GET', "/okta/groups/$group/members"));
        $this->assertSame('synced', $iam->getPortalUserReference($portal, $one)['status']);

        $job = $iam->submitSyncJob($portal, [
            ['user_id' => $good] + self::profile(self::uniqueLogin('batch')),
            ['user_id' => $bad] + self::profile(self::uniqueLogin('batch'), ['email' => 'bad@nodot']),
        ]);
        $this->assertSame(202, $iam->lastResponse()?->getStatusCode());
        $this->assertSame([$portal, 2], [$job['portal_id'], $job['total']]);
        $this->assertSame("/api/v1/sync/jobs/{$job['job_id']}", $job['status_url']);
        $done = self::eventually(function () use ($iam, $job) {
            $now = $iam->getSyncJob($job['job_id']);
            return $now['state'] === 'finished' ? $now : null;
        }, 20, 'the batch job finishing');
        self::assertSameMap(['pending' => 0, 'succeeded' => 1, 'failed' => 1, 'retrying' => 0], $done['counts']);
        $failed = $iam->getSyncJob($job['job_id'], state: 'failed', limit: 10);
        $this->assertCount(1, $failed['items']);
        $this->assertSame($bad, $failed['items'][0]['user_id']);
        $this->assertSame('okta-validation-failed', $failed['items'][0]['error']['type']);
        $this->assertSame('email', $failed['items'][0]['error']['field']);
        $this->assertSame('synced', $iam->getPortalUserReference($portal, $good)['status']);
    }

    public function testTheUnassignmentQueueDrainsAndDeadLettersAreRequeued(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $group = self::oktaGroup('leaving');
        $iam->putPortalSetting($portal, 'okta_group_id', $group);
        $panelist = self::nextId();
        self::seedEfsUsers([], [$panelist]);
        $member = $iam->syncPortalUser($portal, $panelist, self::profile(self::uniqueLogin('leaver')))['okta_user_id'];
        $this->assertContains($member, self::control('GET', "/okta/groups/$group/members"));

        $queued = $iam->enqueueUnassignments($portal, [['user_id' => $panelist, 'okta_user_id' => $member, 'email' => 'l@example.com']]);
        $this->assertSame(['portal_id' => $portal, 'enqueued' => 1], [
            'portal_id' => $queued['portal_id'], 'enqueued' => $queued['enqueued'],
        ]);
        $this->assertSame(202, $iam->lastResponse()?->getStatusCode());
        $pending = QueueCount::fromCounts($queued['counts'], UnassignmentState::Pending);
        $this->assertSame([1, false], [$pending->value, $pending->isLowerBound]);
        $this->assertFalse($queued['counts']['dead_capped']);
        $run = $iam->runUnassignments();
        $this->assertContains($run['triggered'], ['woken', 'started', 'already_running']);
        $this->assertIsInt($run['queue']['pending']);
        self::eventually(
            fn () => !in_array($member, self::control('GET', "/okta/groups/$group/members"), true),
            15,
            'the worker removing the member from the Okta group',
        );
        self::eventually(fn () => $iam->listUnassignments($portal)['counts']['pending'] === 0, 15, 'the row deleted');

        // A group deleted in Okta: the rows fail, twice (max attempts), and become dead letters.
        $lost = self::nextId();
        $doomed = self::oktaGroup('deleted');
        $iam->putPortalSetting($lost, 'okta_group_id', $doomed);
        self::control('DELETE', "/okta/groups/$doomed");
        $iam->enqueueUnassignments($lost, [['user_id' => $panelist, 'okta_user_id' => $member]]);
        $iam->runUnassignments(maxRows: 10);
        $dead = self::eventually(function () use ($iam, $lost) {
            $items = $iam->listUnassignments($lost, state: 'dead', limit: 10)['items'];
            return $items === [] ? null : $items[0];
        }, 20, 'a dead letter');
        $this->assertSame([$lost, $panelist, $member], [$dead['portal_id'], $dead['user_id'], $dead['okta_user_id']]);
        $this->assertStringContainsString('okta-group-not-found', (string) $dead['last_error']);
        $letters = $iam->listDeadLetters(limit: 1000)['items'];
        $this->assertContains($dead['id'], array_column($letters, 'id'));
        $this->assertNotContains($dead['id'], array_column($iam->listDeadLetters(withoutPortal: true)['items'], 'id'));

        $requeued = $iam->requeueUnassignments($lost, [$dead['id']]);
        self::assertSameMap(['portal_id' => $lost, 'requeued' => 1, 'skipped' => []], $requeued);
        // What makes a repeat safe: the same request again changes nothing.
        self::assertSameMap(
            ['portal_id' => $lost, 'requeued' => 0, 'skipped' => [['id' => $dead['id'], 'reason' => 'not_dead']]],
            $iam->requeueUnassignments($lost, [$dead['id']]),
        );
    }

    public function testReconcilingAPortalReportsAndRepairs(): void
    {
        $iam = self::client();
        $portal = self::nextId();
        $group = self::oktaGroup('reconciled');
        $iam->putPortalSetting($portal, 'okta_group_id', $group);
        $panelist = self::nextId();
        self::seedEfsUsers([], [$panelist]);
        $iam->syncPortalUser($portal, $panelist, self::profile(self::uniqueLogin('member')));
        // A repair removes only a stranger efs-iam manages: one it adopted and no EFS
        // reference names; someone else's user would be reported and kept.
        $stranger = self::oktaUser('stranger');
        self::manageOktaUsers([$stranger]);
        self::control('PUT', "/okta/groups/$group/members/$stranger");

        $report = $iam->reconcilePortal($portal);
        $this->assertSame([$portal, $group, true, 2, 1], [
            $report['portal_id'], $report['group_id'], $report['dry_run'], $report['okta_members'], $report['references'],
        ]);
        $this->assertSame(1, $report['counts']['extra_members']);
        $this->assertSame($stranger, $report['extra_members'][0]['okta_user_id']);
        $this->assertContains($stranger, self::control('GET', "/okta/groups/$group/members"), 'a dry run changes nothing');

        $run = $iam->reconcilePortal($portal, dryRun: false);
        $this->assertSame(202, $iam->lastResponse()?->getStatusCode());
        $this->assertSame([$portal, 'pending', "/api/v1/sync/reconcile-runs/{$run['run_id']}"], [
            $run['portal_id'], $run['state'], $run['status_url'],
        ]);
        $this->assertSame($run['status_url'], $iam->lastResponse()?->getHeaderLine('Location'));
        $finished = self::eventually(function () use ($iam, $run) {
            $now = $iam->getReconcileRun($run['run_id']);
            return in_array($now['state'], ['succeeded', 'failed'], true) ? $now : null;
        }, 20, 'the repair run ending');
        $this->assertSame('succeeded', $finished['state'], (string) ($finished['error'] ?? ''));
        $this->assertSame(1, $finished['report']['repaired']['removed']);
        $this->assertNotContains($stranger, self::control('GET', "/okta/groups/$group/members"));
        $this->assertSame([$run['run_id']], array_column($iam->listReconcileRuns($portal)['items'], 'run_id'));
        $this->assertContains($run['run_id'], array_column($iam->listReconcileRuns(limit: 500)['items'], 'run_id'));
    }

    public function testAdoptingOktaUsers(): void
    {
        $iam = self::client();
        $person = self::oktaUser('adopted');
        self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getOktaUserManagement($person));

        $this->assertNull($iam->lastCreated(), 'a 404 is neither');
        $adopted = $iam->adoptOktaUser($person);
        $this->assertSame(201, $iam->lastResponse()?->getStatusCode());
        $this->assertTrue($iam->lastCreated());
        $this->assertSame(
            [$person, 'adopted', 'efs-iam-php-client-tests'],
            [$adopted['okta_user_id'], $adopted['origin'], $adopted['managed_by']],
        );
        $this->assertSame($adopted, $iam->adoptOktaUser($person), 'adopting again changes nothing');
        $this->assertSame(200, $iam->lastResponse()?->getStatusCode());
        $this->assertFalse($iam->lastCreated());
        $this->assertSame($adopted, $iam->getOktaUserManagement($person));

        // No event about the user was applied: clearing its watermarks clears none.
        $this->assertSame(
            ['okta_user_id' => $person, 'cleared' => []],
            $iam->clearOktaEventWatermarks($person),
        );
        $this->assertSame(200, $iam->lastResponse()?->getStatusCode());

        // A bulk adoption, dry run: lists, adopts nobody.
        $accepted = $iam->submitAdoption();
        $this->assertSame(202, $iam->lastResponse()?->getStatusCode());
        $this->assertTrue($accepted['dry_run']);
        $this->assertSame("/api/v1/adoptions/{$accepted['run_id']}", $accepted['status_url']);
        $this->assertSame($accepted['status_url'], $iam->lastResponse()?->getHeaderLine('Location'));
        $run = self::eventually(function () use ($iam, $accepted) {
            $now = $iam->getAdoption($accepted['run_id'], limit: 1);
            return $now['state'] === 'succeeded' ? $now : null;
        }, 30, 'the dry run ending');
        $this->assertSame('efs-iam-php-client-tests', $run['requested_by']);
        $this->assertArrayNotHasKey('adopted', array_filter($run['counts']), 'a dry run adopts nobody');
        $this->assertSame(0, $run['counts']['pending'] ?? 0);
        $this->assertLessThanOrEqual(1, count($run['items']));
        if (isset($run['next_cursor'])) {
            $next = $iam->getAdoption($accepted['run_id'], limit: 1, cursor: $run['next_cursor']);
            $this->assertNotSame($run['items'][0]['okta_user_id'], $next['items'][0]['okta_user_id'] ?? null);
        }
        foreach ($iam->getAdoption($accepted['run_id'], state: 'refused', limit: 100)['items'] as $item) {
            $this->assertSame('refused', $item['state']);
            $this->assertNotEmpty($item['reason']);
        }
    }

    public function testSyncStatusAndHealth(): void
    {
        $iam = self::client();
        $status = $iam->syncStatus();
        $this->assertTrue($status['okta']['configured']);
        $this->assertTrue($status['okta']['reachability']['credentials_accepted']);
        $this->assertNull($status['okta']['dpop'], 'an API token: no DPoP');
        $this->assertTrue($status['workers']['enabled']);
        $this->assertIsInt($status['unassignments']['pending']);
        $this->assertIsInt($status['jobs']['running']);
        $this->assertIsArray($status['missing_okta_groups']);

        $this->assertSame(['status' => 'ok'], $iam->live());
        $ready = $iam->ready();
        $this->assertSame('ready', $ready['status']);
        $this->assertSame('up', $ready['components']['database']['status']);
        $this->assertContains($ready['components']['okta']['status'], ['up', 'degraded']);
    }

    public function testTheCallersRequestIdFollowsTheCall(): void
    {
        $iam = self::client()->withRequestId('efs-admin-request-4711');
        $iam->getPortalSettings(1);
        $this->assertSame('efs-admin-request-4711', $iam->lastResponse()?->getHeaderLine('x-request-id'));
        $e = self::expectProblem(NotFound::class, 404, 'not-found', fn () => $iam->getAdminUserReference(self::nextId()));
        $this->assertSame('efs-admin-request-4711', $e->requestId);
    }
}
