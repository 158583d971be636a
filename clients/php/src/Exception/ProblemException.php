<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

use Psr\Http\Message\ResponseInterface;

/**
 * efs-iam answered with an RFC 9457 problem document (`application/problem+json`).
 *
 * Each problem type of the API has its own subclass (the slug in PascalCase:
 * `okta-validation-failed` → {@see OktaValidationFailed}); a type this client does not
 * know yet (a newer server) arrives as this base class, so `catch (ProblemException)`
 * catches every problem. Between the two sit the {@see CATEGORIES}.
 */
class ProblemException extends \RuntimeException implements EfsIamException
{
    public const TYPE_PREFIX = 'urn:efs-iam:problem:';

    /**
     * The categories: every problem type's class extends exactly one of them, so callers
     * can catch by what to do (fix the input, wait, call an operator) rather than list
     * leaves. A type this client does not know yet arrives as ProblemException itself.
     *
     * @var list<class-string<ProblemException>>
     */
    public const CATEGORIES = [
        InvalidInput::class,
        ResourceNotFound::class,
        Conflict::class,
        AccessDenied::class,
        Unavailable::class,
        Misconfigured::class,
        ServerFault::class,
    ];

    /**
     * The problem types of the API (openapi.json, `Problem.type`) and their classes. The
     * slug `okta-group-not-found` comes with 409 (a stored setting) and 422 (a setting
     * being written): one class, `status` tells them apart.
     *
     * @var array<string, class-string<ProblemException>>
     */
    public const CLASSES = [
        'malformed-body' => MalformedBody::class,
        'bad-request' => BadRequest::class,
        'invalid-parameter' => InvalidParameter::class,
        'unauthorized' => Unauthorized::class,
        'forbidden' => Forbidden::class,
        'not-found' => NotFound::class,
        'method-not-allowed' => MethodNotAllowed::class,
        'portal-not-linked' => PortalNotLinked::class,
        'okta-group-not-found' => OktaGroupNotFound::class,
        'okta-user-deprovisioned' => OktaUserDeprovisioned::class,
        'okta-login-conflict' => OktaLoginConflict::class,
        'okta-user-not-managed' => OktaUserNotManaged::class,
        'okta-user-privileged' => OktaUserPrivileged::class,
        'issuer-not-allowed' => IssuerNotAllowed::class,
        'payload-too-large' => PayloadTooLarge::class,
        'token-too-large' => TokenTooLarge::class,
        'unsupported-media-type' => UnsupportedMediaType::class,
        'validation-failed' => ValidationFailed::class,
        'unknown-efs-user' => UnknownEfsUser::class,
        'invalid-id-token' => InvalidIdToken::class,
        'okta-validation-failed' => OktaValidationFailed::class,
        'okta-user-not-found' => OktaUserNotFound::class,
        'internal' => Internal::class,
        'token-unreadable' => TokenUnreadable::class,
        'okta-auth-failed' => OktaAuthFailed::class,
        'okta-refused' => OktaRefused::class,
        'service-unavailable' => ServiceUnavailable::class,
        'database-unavailable' => DatabaseUnavailable::class,
        'token-store-unavailable' => TokenStoreUnavailable::class,
        'idp-unavailable' => IdpUnavailable::class,
        'okta-not-configured' => OktaNotConfigured::class,
        'okta-unavailable' => OktaUnavailable::class,
        'user-busy' => UserBusy::class,
        'overloaded' => Overloaded::class,
        'timeout' => Timeout::class,
    ];

    /**
     * @param string $type the problem type URI, `urn:efs-iam:problem:<slug>`
     * @param list<FieldError> $errors the request fields at fault
     * @param string|null $requestId the answer's `x-request-id` (find the call in efs-iam's logs by it)
     * @param int|null $retryAfter the answer's `Retry-After` in seconds (503s carry one)
     * @param array<string, mixed> $document the whole problem document as sent
     */
    final public function __construct(
        public readonly string $type,
        public readonly string $title,
        public readonly int $status,
        public readonly string $detail,
        public readonly array $errors = [],
        public readonly ?string $requestId = null,
        public readonly ?int $retryAfter = null,
        public readonly array $document = [],
    ) {
        parent::__construct("efs-iam $status {$this->slug()}: $detail", $status);
    }

    /** The problem document of `$response` as the exception of its type. */
    public static function fromResponse(ResponseInterface $response): self
    {
        $document = json_decode((string) $response->getBody(), true);
        if (!is_array($document)) {
            $document = [];
        }
        $type = self::text($document, 'type') ?? 'about:blank';
        $status = is_int($document['status'] ?? null) ? $document['status'] : $response->getStatusCode();
        $errors = [];
        foreach (is_array($document['errors'] ?? null) ? $document['errors'] : [] as $entry) {
            if (is_array($entry)) {
                $errors[] = FieldError::fromArray($entry);
            }
        }
        $retryAfter = trim($response->getHeaderLine('Retry-After'));
        $requestId = $response->getHeaderLine('x-request-id');
        $class = self::CLASSES[self::slugOf($type)] ?? self::class;
        return new $class(
            $type,
            self::text($document, 'title') ?? $response->getReasonPhrase(),
            $status,
            self::text($document, 'detail') ?? '',
            $errors,
            $requestId === '' ? null : $requestId,
            preg_match('/^[0-9]+$/', $retryAfter) === 1 ? (int) $retryAfter : null,
            $document,
        );
    }

    /**
     * A string member of the document, or null.
     *
     * @param array<mixed> $document
     */
    private static function text(array $document, string $key): ?string
    {
        return is_string($document[$key] ?? null) ? $document[$key] : null;
    }

    /** The slug of a type URI (`urn:efs-iam:problem:not-found` → `not-found`); '' for another URI. */
    public static function slugOf(string $type): string
    {
        return str_starts_with($type, self::TYPE_PREFIX) ? substr($type, strlen(self::TYPE_PREFIX)) : '';
    }

    /** The type's slug, e.g. `okta-validation-failed`; '' when the type is not one of efs-iam's URIs. */
    public function slug(): string
    {
        return self::slugOf($this->type);
    }

    /**
     * The field errors that name a request field, as field => message (for showing next
     * to form fields, e.g. `email`, `attributes.countryCode`); several messages for one
     * field are joined with "; ". Entries without a field are in {@see generalMessages()}.
     *
     * @return array<string, string>
     */
    public function fieldMessages(): array
    {
        $messages = [];
        foreach ($this->errors as $error) {
            if ($error->field === null) {
                continue;
            }
            $messages[$error->field] = isset($messages[$error->field])
                ? $messages[$error->field] . '; ' . $error->message
                : $error->message;
        }
        return $messages;
    }

    /**
     * Messages of the field errors that name no request field.
     *
     * @return list<string>
     */
    public function generalMessages(): array
    {
        $messages = [];
        foreach ($this->errors as $error) {
            if ($error->field === null) {
                $messages[] = $error->message;
            }
        }
        return $messages;
    }

    /** Whether the same call may succeed later without anyone changing anything ({@see Unavailable}, 429). */
    public function isTransient(): bool
    {
        return $this instanceof Unavailable || $this->status === 429;
    }
}
