<?php

declare(strict_types=1);

namespace Efs\Iam\Tests;

use Efs\Iam\Client;
use Efs\Iam\Exception\ProblemException;
use PHPUnit\Framework\TestCase;

/** The README says what the code does: the quick start verbatim, every operation, every problem class. */
final class DocumentationTest extends TestCase
{
    private static function readme(): string
    {
        return (string) file_get_contents(__DIR__ . '/../README.md');
    }

    /**
     * Every PHP block of the README is an example file verbatim, and every example is
     * shown: the suite runs the files (tests/clients/php_library.rs, from a scratch
     * project outside the repository), so what a reader copies has run.
     */
    public function testEveryPhpBlockIsARunExampleVerbatim(): void
    {
        preg_match_all('/^```php\n(.*?)\n```$/ms', self::readme(), $blocks);
        $examples = [];
        foreach (glob(__DIR__ . '/../examples/*.php') ?: [] as $file) {
            $examples[basename($file)] = rtrim((string) file_get_contents($file));
        }
        $this->assertGreaterThanOrEqual(7, count($examples));
        foreach ($blocks[1] as $block) {
            $this->assertContains($block, $examples, "a PHP block of the README that is no example:\n$block");
        }
        foreach ($examples as $name => $script) {
            $this->assertContains($script, $blocks[1], "examples/$name is not shown in the README");
            $this->assertStringContainsString("(examples/$name)", self::readme());
        }
    }

    public function testEveryOperationAndRetryDecisionIsListed(): void
    {
        $readme = self::readme();
        foreach (Client::OPERATIONS as $name => [$method, $path]) {
            $this->assertMatchesRegularExpression(
                '/^\| `' . preg_quote($name, '/') . '\(.*\| `' . preg_quote("$method $path", '/') . '` \|/m',
                $readme,
                "$name in the operation table",
            );
        }
        foreach ([...array_keys(Client::RETRY_SAFE), ...array_keys(Client::NOT_RETRIED)] as $name) {
            $this->assertStringContainsString("`$name`", $readme);
        }
    }

    public function testEveryProblemClassIsListed(): void
    {
        foreach (ProblemException::CLASSES as $slug => $class) {
            $short = substr($class, strrpos($class, '\\') + 1);
            $parent = (string) get_parent_class($class);
            $category = substr($parent, strrpos($parent, '\\') + 1);
            $this->assertMatchesRegularExpression(
                "/^\\| `$slug` \\| [0-9 or]+ \\| `$short` \\| `$category` \\|$/m",
                self::readme(),
            );
        }
    }
}
