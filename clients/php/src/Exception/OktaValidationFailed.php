<?php

declare(strict_types=1);

namespace Efs\Iam\Exception;

/**
 * `okta-validation-failed` (422): Okta refused the profile. `errors` names the fields of
 * efs-iam's request (`email`, `first_name`, `attributes.countryCode`…), so they can be
 * shown next to the form fields: {@see profileErrors()}.
 */
final class OktaValidationFailed extends InvalidInput
{
    /**
     * What Okta said about each profile field, as request field => message; a cause that
     * names no field is under `profile`.
     *
     * @return array<string, string>
     */
    public function profileErrors(): array
    {
        $errors = $this->fieldMessages();
        $general = $this->generalMessages();
        if ($general !== []) {
            $errors['profile'] = isset($errors['profile'])
                ? $errors['profile'] . '; ' . implode('; ', $general)
                : implode('; ', $general);
        }
        return $errors;
    }
}
