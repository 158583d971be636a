<?php
// Driven by php_client.rs: uses examples/php/efs_iam.php as EFS-Admin would and prints
// what it saw as one JSON line.
require __DIR__ . '/../../examples/php/efs_iam.php';

$out = [];
// okta_client_id steers trust: writing it needs iam:admin besides iam:write.
efsIam('PUT', '/portals/77/settings/okta_client_id', ['value' => '0oa-from-php'], 'iam:write iam:admin');
$out['read_back'] = efsIam('GET', '/portals/77/settings/okta_client_id')['value'];
try {
    efsIam('PUT', '/portals/77/settings/okta_client_id', ['value' => 'x'], 'iam:read');
    $out['without_write_scope'] = 'accepted';
} catch (RuntimeException $e) {
    $out['without_write_scope'] = $e->getCode();
}
try {
    efsIam('PUT', '/portals/77/settings/okta_client_id', ['value' => 'x'], 'iam:write');
    $out['without_admin_scope'] = 'accepted';
} catch (RuntimeException $e) {
    $out['without_admin_scope'] = $e->getCode();
}
echo json_encode($out), "\n";
