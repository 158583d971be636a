<?php
// EFS-Admin's side of calling efs-iam, with nothing but PHP's standard extensions
// (json, hash, streams): an HS256 caller token and a JSON call that turns an RFC 9457
// problem into an exception. The token is the one firebase/php-jwt's
// JWT::encode($claims, $secret, 'HS256') produces; tests/api/php_client.rs runs this
// file against a live efs-iam so the README's snippet stays true.

function efsIamBase64Url(string $raw): string {
    return rtrim(strtr(base64_encode($raw), '+/', '-_'), '=');
}

/** A short-lived caller token for efs-iam, signed with the shared HS256 secret. */
function efsIamToken(string $scope, int $ttlSeconds = 300): string {
    $now = time();
    $header = ['typ' => 'JWT', 'alg' => 'HS256'];
    $claims = [
        'iss'   => getenv('EFS_IAM_AUTH_ISSUER') ?: 'efs-admin',
        'aud'   => getenv('EFS_IAM_AUTH_AUDIENCE') ?: 'efs-iam',
        'sub'   => 'efs-admin',
        'scope' => $scope,
        'iat'   => $now,
        'exp'   => $now + $ttlSeconds,
    ];
    $signingInput = efsIamBase64Url(json_encode($header)) . '.' . efsIamBase64Url(json_encode($claims));
    $signature = hash_hmac('sha256', $signingInput, getenv('EFS_IAM_AUTH_HS256_SECRET'), true);
    return $signingInput . '.' . efsIamBase64Url($signature);
}

/** Calls efs-iam; returns the decoded JSON answer, throws on a problem answer. */
function efsIam(string $method, string $path, ?array $body = null, string $scope = 'iam:read iam:write'): array {
    $base = getenv('EFS_IAM_URL') ?: 'http://127.0.0.1:8080';
    $headers = ['Authorization: Bearer ' . efsIamToken($scope), 'Accept: application/json'];
    if ($body !== null) {
        $headers[] = 'Content-Type: application/json';
    }
    $context = stream_context_create(['http' => [
        'method'        => $method,
        'header'        => implode("\r\n", $headers),
        'content'       => $body === null ? '' : json_encode($body),
        'timeout'       => 5,
        'ignore_errors' => true,   // read the problem body of a 4xx/5xx too
    ]]);
    $raw = file_get_contents($base . '/api/v1' . $path, false, $context);
    if ($raw === false) {
        throw new RuntimeException("efs-iam unreachable at $base");
    }
    preg_match('#^HTTP/\S+ (\d{3})#', $http_response_header[0], $m);
    $status = (int) $m[1];
    $data = $raw === '' ? [] : json_decode($raw, true);
    if ($status >= 400) {   // an RFC 9457 problem: branch on $data['type']
        throw new RuntimeException("efs-iam $status {$data['type']}: {$data['detail']}", $status);
    }
    return $data ?? [];
}
