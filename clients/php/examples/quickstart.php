<?php

// efs-iam from PHP in one page: an authenticated call, and a refused one whose field
// errors are shown. Needs EFS_IAM_URL, EFS_IAM_AUTH_HS256_SECRET, EFS_IAM_AUTH_ISSUER
// and EFS_IAM_AUTH_AUDIENCE in the environment (the same values efs-iam has).

declare(strict_types=1);

require __DIR__ . '/../autoload.php';

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Efs\Iam\Exception\EfsIamException;
use Efs\Iam\Exception\OktaValidationFailed;
use Efs\Iam\Exception\ValidationFailed;

$iam = new Client(
    getenv('EFS_IAM_URL') ?: 'http://127.0.0.1:8080',
    new Hs256Tokens(
        (string) getenv('EFS_IAM_AUTH_HS256_SECRET'),
        issuer: getenv('EFS_IAM_AUTH_ISSUER') ?: 'efs-admin',
        audience: getenv('EFS_IAM_AUTH_AUDIENCE') ?: 'efs-iam',
    ),
);

try {
    // Each call carries a token with exactly its scope: iam:write here, iam:read next.
    $iam->putPortalSetting(12, 'theme', 'dark');
    $portal = $iam->getPortalSettings(12);
    echo "portal {$portal['portal_id']} settings:\n";
    foreach ($portal['settings'] as $key => $value) {
        echo "  $key = $value\n";
    }

    // Refused: efs-iam names the field at fault, as Okta does for a profile it refuses.
    try {
        $iam->putAdminUserReference(42, 'not an Okta user id!');
    } catch (ValidationFailed | OktaValidationFailed $e) {
        echo "refused ({$e->slug()}, request id {$e->requestId}):\n";
        foreach ($e->errors as $error) {
            echo '  ' . ($error->field ?? '(request)') . ": {$error->message}\n";
        }
    }
} catch (EfsIamException $e) {
    // Any other problem (e.g. Unauthorized for a wrong secret), or no answer at all.
    fwrite(STDERR, $e->getMessage() . "\n");
    exit(1);
}
