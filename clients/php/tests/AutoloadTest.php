<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use PHPUnit\Framework\TestCase;

/**
 * clients/php/autoload.php in a fresh PHP process, the way EFS-Admin requires it:
 * Debian's Guzzle and the library's own classes without Composer, or Composer's
 * vendor/autoload.php when there is one.
 */
final class AutoloadTest extends TestCase
{
    /** Runs `$code` in a new PHP process; its output. */
    private static function php(string $code): string
    {
        $command = escapeshellarg(PHP_BINARY) . ' -d include_path=. -r ' . escapeshellarg($code) . ' 2>&1';
        exec($command, $lines, $status);
        $output = implode("\n", $lines);
        self::assertSame(0, $status, $output);
        return $output;
    }

    public function testWithoutComposerDebiansGuzzleAndTheLibraryLoad(): void
    {
        // Without /usr/share/php on the include path: autoload.php must find Debian's files.
        $autoload = var_export(realpath(__DIR__ . '/../autoload.php'), true);
        $output = self::php(<<<PHP
            require $autoload;
            \$iam = new Efs\\Iam\\Client('http://127.0.0.1:1', new Efs\\Iam\\Auth\\Hs256Tokens(str_repeat('s', 32)));
            echo get_class(\$iam), ' ', GuzzleHttp\\ClientInterface::MAJOR_VERSION, ' ',
                class_exists(GuzzleHttp\\Psr7\\Response::class) ? 'psr7' : '-', ' ',
                class_exists(Efs\\Iam\\Exception\\OktaValidationFailed::class) ? 'exceptions' : '-';
            PHP);
        $this->assertSame('Efs\Iam\Client 7 psr7 exceptions', $output);
    }

    public function testComposersAutoloaderIsPreferred(): void
    {
        $dir = sys_get_temp_dir() . '/efs-iam-autoload-' . bin2hex(random_bytes(4));
        mkdir("$dir/vendor", 0o700, true);
        try {
            copy(__DIR__ . '/../autoload.php', "$dir/autoload.php");
            file_put_contents("$dir/vendor/autoload.php", <<<'PHP'
                <?php
                echo "composer's autoloader\n";
                require '/usr/share/php/GuzzleHttp/autoload.php';
                PHP);
            $output = self::php('set_include_path("/usr/share/php"); require ' . var_export("$dir/autoload.php", true) . ';'
                . ' echo class_exists("Efs\\\\Iam\\\\Client") ? "library loaded" : "library not registered";');
            $this->assertSame("composer's autoloader\nlibrary not registered", $output);
        } finally {
            @unlink("$dir/vendor/autoload.php");
            @unlink("$dir/autoload.php");
            @rmdir("$dir/vendor");
            @rmdir($dir);
        }
    }
}
