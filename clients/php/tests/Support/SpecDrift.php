<?php

declare(strict_types=1);

namespace Efs\Iam\Tests\Support;

use Efs\Iam\Client;
use Efs\Iam\Scope;
use Efs\Iam\Exception\ProblemException;

/**
 * Where the client and an OpenAPI document of efs-iam disagree: operations without a
 * client method (named after the `operationId` in camelCase) or with another method,
 * path, scope or parameters; client methods for operations the document no longer
 * has; POST operations without a retry decision; problem types without an exception
 * class. Not the client's: operations tagged `health` (the load balancer's) and any
 * served outside `/api/v1` by a `servers` override of their own (other callers', such
 * as Okta's event hooks); see {@see forOtherCallers()}.
 */
final class SpecDrift
{
    /** Tags of operations that are not EFS-Admin's to call: the load balancer's probes. */
    public const OTHER_CALLERS_TAGS = ['health'];

    /** Public methods of the client that are not API operations. */
    /** Operations whose client method adds iam:admin under the spec's `admin_when`. */
    public const ADMIN_WHEN = ['reconcilePortal' => 'dry_run=false'];

    public const HELPERS = ['__construct', '__debugInfo', 'withRequestId', 'lastResponse', 'lastAttempts', 'lastCreated', 'live', 'ready', 'request', 'paginate'];

    /**
     * @param array<string, mixed> $spec the decoded OpenAPI document
     * @return list<string> one line per disagreement; empty when there is none
     */
    public static function problems(array $spec): array
    {
        $problems = [];
        if (($spec['servers'][0]['url'] ?? null) !== '/api/v1') {
            $problems[] = 'the spec\'s server URL is no longer /api/v1, which the client puts before every path';
        }
        $operations = self::operations($spec, $problems);
        $client = new \ReflectionClass(Client::class);

        foreach ($operations as $name => $op) {
            $label = "operation {$op['id']} ({$op['method']} {$op['path']})";
            if (!$client->hasMethod($name) || !$client->getMethod($name)->isPublic()) {
                $problems[] = "$label has no client method $name()";
                continue;
            }
            $known = Client::OPERATIONS[$name] ?? null;
            $expected = [$op['method'], $op['path'], $op['scope']];
            if ($known === null) {
                $problems[] = "$label: $name() is missing from Client::OPERATIONS";
            } elseif ($known !== $expected) {
                $problems[] = "$label: Client::OPERATIONS['$name'] says " . implode(' ', $known)
                    . ', the spec says ' . implode(' ', $expected);
            }
            $arguments = array_map(
                static fn (\ReflectionParameter $p): string => $p->getName(),
                $client->getMethod($name)->getParameters(),
            );
            foreach ($op['parameters'] as $parameter) {
                $argument = self::camel($parameter);
                if (!in_array($argument, $arguments, true)) {
                    $problems[] = "$label: parameter $parameter has no argument \$$argument in $name()";
                }
            }
            if (
                $op['method'] === 'POST'
                && !isset(Client::RETRY_SAFE[$name]) && !isset(Client::NOT_RETRIED[$name])
            ) {
                $problems[] = "$label: POST $name() is in neither Client::RETRY_SAFE nor Client::NOT_RETRIED; "
                    . 'decide whether repeating it is safe';
            }
            $problems = [...$problems, ...self::machineReadable($label, $name, $op)];
        }

        foreach ($client->getMethods(\ReflectionMethod::IS_PUBLIC) as $method) {
            $name = $method->getName();
            if (
                $method->getDeclaringClass()->getName() !== Client::class
                || $method->isStatic() || in_array($name, self::HELPERS, true)
            ) {
                continue;
            }
            if (!isset($operations[$name])) {
                $problems[] = "Client::$name() names no operation of the spec (removed or renamed?)";
            }
        }
        $listed = [
            ...array_keys(Client::OPERATIONS),
            ...array_keys(Client::RETRY_SAFE),
            ...array_keys(Client::NOT_RETRIED),
        ];
        foreach (array_unique($listed) as $name) {
            if (!isset($operations[$name])) {
                $problems[] = "the client's tables name $name, which the spec does not have";
            }
        }

        $slugs = self::problemSlugs($spec);
        if ($slugs === []) {
            $problems[] = 'the spec\'s Problem.type description no longer holds the table of problem types';
        }
        foreach ($slugs as $slug) {
            $class = ProblemException::CLASSES[$slug] ?? null;
            if ($class === null) {
                $problems[] = "problem type $slug has no exception class in ProblemException::CLASSES";
            } elseif (!class_exists($class) || !is_subclass_of($class, ProblemException::class)) {
                $problems[] = "problem type $slug: $class is not a ProblemException";
            }
        }
        foreach (array_keys(ProblemException::CLASSES) as $slug) {
            if (!in_array($slug, $slugs, true)) {
                $problems[] = "ProblemException::CLASSES maps $slug, which the spec does not list";
            }
        }
        return $problems;
    }

    /**
     * The API operations of the spec by client method name.
     *
     * @param array<string, mixed> $spec
     * @param list<string> $problems
     * @return array<string, array{id: string, method: string, path: string, scope: string,
     *         parameters: list<string>}>
     */
    /**
     * The client's tables against what the spec says by machine (`x-efs-iam`): the
     * scopes an operation needs (`scopes`: the trust settings that add `iam:admin`, and
     * when a repair does) and whether a POST may be repeated (`repeatable`).
     *
     * @param array<string, mixed> $op
     * @return list<string>
     */
    private static function machineReadable(string $label, string $name, array $op): array
    {
        $problems = [];
        $scopes = $op['scopes'];
        if (!is_array($scopes)) {
            return ["$label has no x-efs-iam.scopes"];
        }
        if (($scopes['required'] ?? null) !== explode(' ', $op['scope'])) {
            $problems[] = "$label: x-efs-iam.scopes.required disagrees with its security requirement";
        }
        if (isset($scopes['admin_for_settings'])) {
            $spec = $scopes['admin_for_settings'];
            $mine = Scope::TRUST_SETTINGS;
            sort($spec);
            sort($mine);
            if ($spec !== $mine) {
                $problems[] = "$label: the spec's trust settings are " . implode(', ', $spec)
                    . ', Scope::TRUST_SETTINGS has ' . implode(', ', $mine);
            }
        }
        if (isset($scopes['admin_when']) && (self::ADMIN_WHEN[$name] ?? null) !== $scopes['admin_when']) {
            $problems[] = "$label: the spec asks for iam:admin when {$scopes['admin_when']}; "
                . "teach $name() and list it in SpecDrift::ADMIN_WHEN";
        }
        if ($op['method'] === 'POST') {
            $repeatable = $op['repeatable'];
            $safe = isset(Client::RETRY_SAFE[$name]);
            $never = isset(Client::NOT_RETRIED[$name]);
            $ok = match (true) {
                $repeatable === true => $safe && !$never,
                $repeatable === false => $never && !$safe,
                is_string($repeatable) => $safe && $never,
                default => false,
            };
            if (!$ok) {
                $problems[] = "$label: the spec says x-efs-iam.repeatable " . json_encode($repeatable)
                    . ', the client has it ' . ($safe ? 'in RETRY_SAFE ' : '') . ($never ? 'in NOT_RETRIED' : '');
            }
        }
        return $problems;
    }

    public static function operations(array $spec, array &$problems = []): array
    {
        $operations = [];
        foreach ($spec['paths'] ?? [] as $path => $item) {
            foreach ($item as $method => $op) {
                if (
                    !in_array($method, ['get', 'put', 'post', 'delete', 'patch'], true)
                    || self::forOtherCallers($item, $op)
                ) {
                    continue;
                }
                $id = $op['operationId'] ?? null;
                if (!is_string($id)) {
                    $problems[] = strtoupper($method) . " $path has no operationId";
                    continue;
                }
                $scopes = [];
                foreach ($op['security'] ?? [] as $requirement) {
                    foreach ($requirement as $granted) {
                        $scopes = [...$scopes, ...$granted];
                    }
                }
                $parameters = [];
                foreach ($op['parameters'] ?? [] as $parameter) {
                    if (in_array($parameter['in'] ?? '', ['path', 'query'], true)) {
                        $parameters[] = $parameter['name'];
                    }
                }
                $operations[self::camel($id)] = [
                    'id' => $id,
                    'method' => strtoupper($method),
                    'path' => $path,
                    'scope' => implode(' ', $scopes),
                    'parameters' => $parameters,
                    // What the server says by machine (x-efs-iam); absent in old specs.
                    'scopes' => $op['x-efs-iam']['scopes'] ?? null,
                    'repeatable' => $op['x-efs-iam']['repeatable'] ?? null,
                    // Every success answer is 204: there is no body to return.
                    'no_content' => array_filter(
                        array_keys($op['responses'] ?? []),
                        static fn ($status): bool => (int) $status >= 200 && (int) $status < 300 && (int) $status !== 204,
                    ) === [],
                ];
            }
        }
        return $operations;
    }

    /**
     * Whether an operation is not EFS-Admin's: tagged `health`, or served outside
     * `/api/v1` (its path's or its own `servers` name another base).
     *
     * @param array<string, mixed> $pathItem
     * @param array<string, mixed> $operation
     */
    public static function forOtherCallers(array $pathItem, array $operation): bool
    {
        if (array_intersect(self::OTHER_CALLERS_TAGS, $operation['tags'] ?? []) !== []) {
            return true;
        }
        $servers = $operation['servers'] ?? $pathItem['servers'] ?? null;
        return is_array($servers) && ($servers[0]['url'] ?? '/api/v1') !== '/api/v1';
    }

    /**
     * The operations the client leaves to others, as `METHOD path`.
     *
     * @param array<string, mixed> $spec
     * @return list<string>
     */
    public static function otherCallersOperations(array $spec): array
    {
        $found = [];
        foreach ($spec['paths'] ?? [] as $path => $item) {
            foreach ($item as $method => $op) {
                $isOperation = in_array($method, ['get', 'put', 'post', 'delete', 'patch'], true);
                if ($isOperation && self::forOtherCallers($item, $op)) {
                    $found[] = strtoupper($method) . " $path";
                }
            }
        }
        return $found;
    }

    /**
     * The slugs of the spec's problem type table (`| \`slug\` | status | title |`).
     *
     * @param array<string, mixed> $spec
     * @return list<string>
     */
    public static function problemSlugs(array $spec): array
    {
        return array_values(array_unique(array_map(
            static fn (array $row): string => $row[0],
            self::problemTable($spec),
        )));
    }

    /**
     * The rows of the spec's problem type table: [slug, status].
     *
     * @param array<string, mixed> $spec
     * @return list<array{0: string, 1: int}>
     */
    public static function problemTable(array $spec): array
    {
        $description = $spec['components']['schemas']['Problem']['properties']['type']['description'] ?? '';
        preg_match_all('/^\| `([a-z0-9-]+)` \| (\d{3}) \|/m', (string) $description, $rows, PREG_SET_ORDER);
        return array_map(static fn (array $row): array => [$row[1], (int) $row[2]], $rows);
    }

    /** `get_portal_settings` → `getPortalSettings`. */
    public static function camel(string $snake): string
    {
        return lcfirst(str_replace(' ', '', ucwords(str_replace(['_', '-'], ' ', $snake))));
    }

    /** @return array<string, mixed> */
    public static function load(string $file): array
    {
        return json_decode((string) file_get_contents($file), true, 512, JSON_THROW_ON_ERROR);
    }
}
