<?php

// Errors by category: every problem efs-iam answers is an exception under exactly one
// abstract category, so callers decide what to do by category and reach for a leaf
// class only where it changes the answer.

declare(strict_types=1);

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Efs\Iam\Exception\AccessDenied;
use Efs\Iam\Exception\Conflict;
use Efs\Iam\Exception\InvalidInput;
use Efs\Iam\Exception\Misconfigured;
use Efs\Iam\Exception\ProblemException;
use Efs\Iam\Exception\ResourceNotFound;
use Efs\Iam\Exception\TransportException;
use Efs\Iam\Exception\Unavailable;

/** @var Client $iam */
$iam = require __DIR__ . '/efs-iam.php';

$explain = static function (callable $call): string {
    try {
        $call();
        return 'done';
    } catch (InvalidInput $e) {
        return 'fix the input: ' . json_encode($e->fieldMessages());
    } catch (ResourceNotFound $e) {
        return 'nothing there: ' . $e->detail;
    } catch (Conflict $e) {
        return "not now ({$e->slug()}): " . $e->detail;
    } catch (AccessDenied $e) {
        return "not allowed ({$e->slug()})";
    } catch (Unavailable $e) {
        return 'busy, already retried where safe; try later';
    } catch (Misconfigured $e) {
        return "an operator must act ({$e->slug()})";
    } catch (ProblemException $e) {
        return "efs-iam failed; report request id {$e->requestId}";
    } catch (TransportException $e) {
        return 'no answer: ' . $e->getMessage();
    }
};

$stranger = new Client(
    getenv('EFS_IAM_URL') ?: 'http://127.0.0.1:8080',
    new Hs256Tokens(str_repeat('not the secret ', 3), issuer: 'efs-admin', audience: 'efs-iam'),
);

echo 'bad Okta user id: ' . $explain(fn () => $iam->putAdminUserReference(42, 'not an Okta user id!')) . "\n";
echo 'unknown admin user: ' . $explain(fn () => $iam->getAdminUserReference(2_000_000_001)) . "\n";
echo 'portal without a group: ' . $explain(fn () => $iam->syncPortalUser(2_000_000_002, 1, [
    'login' => 'panelist@example.org', 'email' => 'panelist@example.org',
    'first_name' => 'Pat', 'last_name' => 'Panelist',
])) . "\n";
echo 'wrong secret: ' . $explain(fn () => $stranger->getPortalSettings(12)) . "\n";
