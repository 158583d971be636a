<?php

declare(strict_types=1);

/*
 * Loads the efs-iam client without Composer: a PSR-4 autoloader for Efs\Iam\ and
 * Guzzle 7 from Debian's packages (php-guzzlehttp-guzzle, which pulls in
 * php-guzzlehttp-psr7 and php-guzzlehttp-promises with their own autoload files).
 *
 *     require '/path/to/clients/php/autoload.php';
 *
 * When `composer install` has been run here, Composer's vendor/autoload.php is used
 * instead. When Guzzle is already loaded (EFS-Admin's own Composer autoloader), it is
 * left alone. EFS_IAM_GUZZLE_AUTOLOAD names another Guzzle autoload file. Debian's
 * PSR-3 and PSR-16 interfaces (php-psr-log, php-psr-simple-cache) are loaded beside
 * Debian's Guzzle when installed, for the optional logger and shared token cache.
 */

(static function (): void {
    $composer = __DIR__ . '/vendor/autoload.php';
    if (is_file($composer)) {
        require_once $composer;
        return;
    }

    spl_autoload_register(static function (string $class): void {
        $prefix = 'Efs\\Iam\\';
        if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
            return;
        }
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    });

    if (interface_exists(\GuzzleHttp\ClientInterface::class)) {
        return;
    }
    $guzzle = getenv('EFS_IAM_GUZZLE_AUTOLOAD') ?: '/usr/share/php/GuzzleHttp/autoload.php';
    if (!is_file($guzzle)) {
        throw new \RuntimeException(
            "efs-iam client: Guzzle 7 not found at $guzzle. Install Debian's php-guzzlehttp-guzzle, "
            . 'run `composer install` in ' . __DIR__ . ', or set EFS_IAM_GUZZLE_AUTOLOAD.'
        );
    }
    // Debian's autoload files require their dependencies (psr7, promises, PSR
    // interfaces) by paths relative to /usr/share/php, through the include path.
    $root = dirname($guzzle, 2);
    if (!in_array($root, explode(PATH_SEPARATOR, get_include_path()), true)) {
        set_include_path(get_include_path() . PATH_SEPARATOR . $root);
    }
    require_once $guzzle;

    // The optional PSR interfaces (a logger, a shared token cache) from Debian's
    // php-psr-log and php-psr-simple-cache, when installed and not loaded already.
    $optional = [
        'Psr/Log' => \Psr\Log\LoggerInterface::class,
        'Psr/SimpleCache' => \Psr\SimpleCache\CacheInterface::class,
    ];
    foreach ($optional as $psr => $interface) {
        if (!interface_exists($interface) && is_file("$root/$psr/autoload.php")) {
            require_once "$root/$psr/autoload.php";
        }
    }
})();

if (!defined('GuzzleHttp\ClientInterface::MAJOR_VERSION') || \GuzzleHttp\ClientInterface::MAJOR_VERSION < 7) {
    throw new \RuntimeException('efs-iam client: needs Guzzle 7 or later');
}
