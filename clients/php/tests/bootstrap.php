<?php

declare(strict_types=1);

// The library through its own autoloader (Debian's Guzzle or Composer's vendor/), as
// EFS-Admin loads it; the tests' helpers by PSR-4 under Efs\Iam\Tests\.
require __DIR__ . '/../autoload.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'Efs\\Iam\\Tests\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
