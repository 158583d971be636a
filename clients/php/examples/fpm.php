<?php

// Under PHP-FPM: one minted token for all workers through a PSR-16 cache (APCu here,
// through Debian's php-apcu and php-symfony-cache), a deadline per call below FPM's
// request_terminate_timeout, and calls safe to repeat repeated across a restart of
// efs-iam. From the command line: php -d apc.enable_cli=1 fpm.php

declare(strict_types=1);

require_once __DIR__ . '/vendor/efs-iam/autoload.php';
require_once '/usr/share/php/Symfony/Component/Cache/autoload.php';

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;
use Symfony\Component\Cache\Adapter\ApcuAdapter;
use Symfony\Component\Cache\Psr16Cache;

$iam = new Client(
    getenv('EFS_IAM_URL') ?: 'http://127.0.0.1:8080',
    new Hs256Tokens(
        (string) getenv('EFS_IAM_AUTH_HS256_SECRET'),
        issuer: getenv('EFS_IAM_AUTH_ISSUER') ?: 'efs-admin',
        audience: getenv('EFS_IAM_AUTH_AUDIENCE') ?: 'efs-iam',
        shared: new Psr16Cache(new ApcuAdapter('efs-iam')),
    ),
    timeout: 20.0,      // one attempt
    deadline: 45.0,     // the whole call: every attempt, Retry-After wait and reconnect
);

$iam->getPortalSettings(12);
echo 'tokens in APCu: ' . count(apcu_cache_info()['cache_list']) . "\n";
