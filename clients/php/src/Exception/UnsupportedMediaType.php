<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `unsupported-media-type` (415): the body was not sent as JSON.
 */
final class UnsupportedMediaType extends InvalidInput
{
}
