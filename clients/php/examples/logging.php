<?php

// Logging: any PSR-3 logger (psr/log; Debian's php-psr-log) sees each attempt (debug),
// each Retry-After repeat (info) and each lost answer (warning), with the operation,
// route template, status, duration and efs-iam's request id; never a path, header,
// token or body. withRequestId() puts EFS-Admin's own request id in both logs.

declare(strict_types=1);

require_once __DIR__ . '/vendor/efs-iam/autoload.php';

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Psr\Log\AbstractLogger;

$logger = new class extends AbstractLogger {
    public function log($level, $message, array $context = []): void
    {
        echo "[$level] $message " . json_encode($context, JSON_UNESCAPED_SLASHES) . "\n";
    }
};

$iam = new Client(
    getenv('EFS_IAM_URL') ?: 'http://127.0.0.1:8080',
    new Hs256Tokens(
        (string) getenv('EFS_IAM_AUTH_HS256_SECRET'),
        issuer: getenv('EFS_IAM_AUTH_ISSUER') ?: 'efs-admin',
        audience: getenv('EFS_IAM_AUTH_AUDIENCE') ?: 'efs-iam',
    ),
    logger: $logger,
);

// withRequestId() returns a copy for this request: ask the copy about its last call.
$call = $iam->withRequestId('efs-admin-' . bin2hex(random_bytes(4)));
$call->putPortalSetting(13, 'locale', 'de');
echo $call->lastCreated() ? "created\n" : "replaced\n";
