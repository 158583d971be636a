<?php

// Configure: one Client for the whole request, from the same values efs-iam has
// (EFS_IAM_URL, EFS_IAM_AUTH_HS256_SECRET, EFS_IAM_AUTH_ISSUER, EFS_IAM_AUTH_AUDIENCE).
// The other examples start with `$iam = require __DIR__ . '/efs-iam.php';`.

declare(strict_types=1);

require_once __DIR__ . '/vendor/efs-iam/autoload.php';

use Efs\Iam\Auth\Hs256Tokens;
use Efs\Iam\Client;

return new Client(
    getenv('EFS_IAM_URL') ?: 'http://127.0.0.1:8080',
    new Hs256Tokens(
        (string) getenv('EFS_IAM_AUTH_HS256_SECRET'),
        issuer: getenv('EFS_IAM_AUTH_ISSUER') ?: 'efs-admin',
        audience: getenv('EFS_IAM_AUTH_AUDIENCE') ?: 'efs-iam',
        subject: 'efs-admin',
    ),
);
