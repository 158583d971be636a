<?php
// Driven by php_client.rs: uses examples/php/efs_iam.php as EFS-Admin would and prints
// what it saw as one JSON line.
require __DIR__ . '/../../examples/php/efs_iam.php';

$out = [];
efsIam('PUT', '/portals/77/settings/okta_client_id', ['value' => '0oa-from-php']);
$out['read_back'] = efsIam('GET', '/portals/77/settings/okta_client_id')['value'];
try {
    efsIam('PUT', '/portals/77/settings/okta_client_id', ['value' => 'x'], 'iam:read');
    $out['without_write_scope'] = 'accepted';
} catch (RuntimeException $e) {
    $out['without_write_scope'] = $e->getCode();
}
echo json_encode($out), "\n";
