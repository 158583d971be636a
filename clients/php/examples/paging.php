<?php

// Paging: every listing is keyset-paged (`limit`, `cursor`; the last page has no
// `next_cursor`). paginate() walks a listing to its end, fetching each page only when
// the loop reaches it, and stops early at `max` items.

declare(strict_types=1);

use Efs\Iam\Client;

/** @var Client $iam */
$iam = require __DIR__ . '/efs-iam.php';

// Five error-log entries to page through, two per page.
$marker = 'paging example ' . bin2hex(random_bytes(4));
for ($i = 1; $i <= 5; $i++) {
    $iam->recordError(['message' => "$marker #$i", 'status_code' => 429, 'error_code' => 'E0000047']);
}

$pages = 0;
$messages = [];
$listing = function (?string $cursor) use ($iam, $marker, &$pages): array {
    $pages++;
    return $iam->queryErrorLog(q: $marker, since: new \DateTimeImmutable('-1 hour'), limit: 2, cursor: $cursor);
};
foreach ($iam->paginate($listing) as $entry) {
    $messages[] = $entry['message'];
}
echo count($messages) . " entries in $pages pages, newest first: " . implode(', ', $messages) . "\n";

// The first three only: the third page is never fetched.
$pages = 0;
$firstThree = iterator_to_array($iam->paginate($listing, max: 3), false);
echo count($firstThree) . " entries in $pages pages with max: 3\n";
