<?php

declare(strict_types=1);

namespace Efs\Iam\Tests\Support;

use Psr\SimpleCache\CacheInterface;

/**
 * A PSR-16 cache in files of one directory, shared by PHP processes (as APCu is by the
 * workers of one PHP-FPM pool): enough for tests of the shared token cache.
 */
final class FileCache implements CacheInterface
{
    public function __construct(private readonly string $dir)
    {
    }

    private function file(string $key): string
    {
        return $this->dir . '/' . hash('sha256', $key);
    }

    public function get($key, $default = null)
    {
        $raw = @file_get_contents($this->file($key));
        if ($raw === false) {
            return $default;
        }
        [$expires, $value] = unserialize($raw);
        return $expires === null || $expires > time() ? $value : $default;
    }

    public function set($key, $value, $ttl = null)
    {
        $expires = $ttl === null ? null : time() + (is_int($ttl) ? $ttl : (int) $ttl->format('%s'));
        return file_put_contents($this->file($key), serialize([$expires, $value]), LOCK_EX) !== false;
    }

    public function delete($key)
    {
        @unlink($this->file($key));
        return true;
    }

    public function clear()
    {
        array_map('unlink', glob($this->dir . '/*') ?: []);
        return true;
    }

    public function getMultiple($keys, $default = null)
    {
        $values = [];
        foreach ($keys as $key) {
            $values[$key] = $this->get($key, $default);
        }
        return $values;
    }

    public function setMultiple($values, $ttl = null)
    {
        foreach ($values as $key => $value) {
            $this->set($key, $value, $ttl);
        }
        return true;
    }

    public function deleteMultiple($keys)
    {
        foreach ($keys as $key) {
            $this->delete($key);
        }
        return true;
    }

    public function has($key)
    {
        return $this->get($key, $this) !== $this;
    }
}
