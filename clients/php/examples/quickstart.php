<?php

// efs-iam from PHP in one page: an authenticated call, and a refused one whose field
// errors are shown.

declare(strict_types=1);

use Efs\Iam\Client;
use Efs\Iam\Exception\EfsIamException;
use Efs\Iam\Exception\InvalidInput;

/** @var Client $iam */
$iam = require __DIR__ . '/efs-iam.php';

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
    } catch (InvalidInput $e) {
        echo "refused ({$e->slug()}, request id {$e->requestId}):\n";
        foreach ($e->fieldMessages() as $field => $message) {
            echo "  $field: $message\n";
        }
    }
} catch (EfsIamException $e) {
    // Any other problem (e.g. Unauthorized for a wrong secret), or no answer at all.
    fwrite(STDERR, $e->getMessage() . "\n");
    exit(1);
}
