<?php

declare(strict_types=1);

// The library through its own autoloader (Debian's Guzzle or Composer's vendor/), as
// EFS-Admin loads it; the tests' helpers by PSR-4 under Efs\Iam\Tests\.
require __DIR__ . '/../autoload.php';

// PSR-3 and PSR-16 (optional for the library: a logger, a token cache) from Debian's
// php-psr-log and php-psr-simple-cache.
foreach (['Psr/Log', 'Psr/SimpleCache'] as $psr) {
    if (is_file("/usr/share/php/$psr/autoload.php")) {
        require_once "/usr/share/php/$psr/autoload.php";
    }
}

spl_autoload_register(static function (string $class): void {
    $prefix = 'Efs\\Iam\\Tests\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
