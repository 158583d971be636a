//! The OpenAPI document: what utoipa derives from the handlers, completed with what
//! only this layer knows (paths relative to `/api/v1`, each operation's scope and its
//! 401/403 answers, the problem types).

use axum::http::Method;
use utoipa::OpenApi;

use super::problem::{FieldError, Problem, ProblemType};
use crate::auth::{required_scope, writes_portal_settings, Scope, RECONCILE_ROUTE};
use crate::domain::TRUST_SETTINGS;
use crate::sync::WorkerHealthSnapshot;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "efs-iam",
        description = "EFS's Okta integration service: portal settings, references from EFS users \
                       to Okta users, session token storage, the Okta error log and the unassignment \
                       queue. Errors are RFC 9457 problem documents (`application/problem+json`) \
                       whose `type` is a stable `urn:efs-iam:problem:<slug>`."
    ),
    servers((url = "/api/v1", description = "This instance")),
    components(schemas(Problem, FieldError, WorkerHealthSnapshot)),
    tags(
        (name = "portal settings", description = "Per-portal settings such as okta_client_id"),
        (name = "user references", description = "EFS users and panelists ↔ Okta user ids"),
        (name = "session tokens", description = "IdP token responses per login session"),
        (name = "error log", description = "Errors received from Okta"),
        (name = "unassignment queue", description = "Portal users to remove from their portal's Okta group: enqueueing, the queue, the worker on demand, dead letters and requeueing"),
        (name = "sync", description = "Okta sync: users, portal memberships, batch jobs, reconciliation, status"),
        (name = "managed okta users", description = "The Okta users efs-iam may act on (created by it, or adopted by an iam:admin): one user's management, adopting one, bulk adoption runs"),
        (name = "health", description = "Load-balancer probes (outside /api/v1)"),
        (name = "okta event hooks", description = "Okta tells efs-iam about changes made in Okta (outside /api/v1; authenticated by the hook's own secret)"),
    )
)]
pub(super) struct ApiDoc;

/// Completes the derived document.
pub(super) fn complete(api: &mut utoipa::openapi::OpenApi) {
    // `servers` says /api/v1 so Swagger UI's "try it out" works; the paths are listed
    // relative to it and the health probes get their own server entry.
    let mut paths = utoipa::openapi::path::Paths::new();
    for (path, item) in std::mem::take(&mut api.paths.paths) {
        match path.strip_prefix("/api/v1") {
            Some(rest) => {
                paths.paths.insert(rest.to_owned(), item);
            }
            None => {
                let mut item = item;
                item.servers = Some(vec![utoipa::openapi::Server::new("/")]);
                paths.paths.insert(path, item);
            }
        }
    }
    api.paths = paths;
    problems_as_problem_json(api);
    document_security(api);
    require_properties(api, &["PatchPortalUserReference", "TokenResponse"]);
    document_problem_types(api);
}

/// Every answer whose body is a [`Problem`] is `application/problem+json`: the
/// handlers' annotations say only `body = Problem`, and the media type is set here once.
fn problems_as_problem_json(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, Schema};
    let is_problem = |schema: &Option<RefOr<Schema>>| matches!(schema, Some(RefOr::Ref(r)) if r.ref_location == "#/components/schemas/Problem");
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if let Some(json) = response
                    .content
                    .get("application/json")
                    .filter(|c| is_problem(&c.schema))
                    .cloned()
                {
                    response.content.shift_remove("application/json");
                    response
                        .content
                        .insert("application/problem+json".to_owned(), json);
                }
            }
        }
    }
}

/// The `type` of a problem document, with the table of every type
/// ([`ProblemType::ALL`]), so the document cannot list one the server does not have.
fn document_problem_types(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(RefOr::T(Schema::Object(problem))) = api
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("Problem"))
    else {
        return;
    };
    let Some(RefOr::T(Schema::Object(ty))) = problem.properties.get_mut("type") else {
        return;
    };
    let mut text = String::from(
        "Stable, machine-readable problem type: `urn:efs-iam:problem:<slug>`.\n\n\
         | slug | status | title |\n|---|---|---|\n",
    );
    for p in ProblemType::ALL {
        text.push_str(&format!(
            "| `{}` | {} | {} |\n",
            p.slug,
            p.status.as_u16(),
            p.title
        ));
    }
    ty.description = Some(text);
}

/// `minProperties: 1` on request bodies that must name something. Set here because
/// utoipa-gen 5.5 turns a `min_properties` attribute into `maxProperties`.
fn require_properties(api: &mut utoipa::openapi::OpenApi, names: &[&str]) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(components) = api.components.as_mut() else {
        return;
    };
    for name in names {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
            object.min_properties = Some(1);
        }
    }
}

/// Declares the bearer scheme and, on every API operation, the scope
/// [`required_scope`] enforces plus its 401/403 answers, and for clients by machine
/// (`x-efs-iam`: `scopes`, and `repeatable` on POSTs; see [`scopes_extension`],
/// [`repeatable`]).
fn document_security(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with `iss`/`aud` as configured, a `sub` and a `scope` claim: \
                         iam:read, iam:write, iam:sync, iam:tokens, iam:admin. Mint one with \
                         `efs-iam token`.",
                    ))
                    .build(),
            ),
        );
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "okta_event_hook",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "Authorization",
                    "The secret configured on the Okta event hook \
                     (EFS_IAM_OKTA_EVENT_HOOK_SECRET), in the header configured with it \
                     (EFS_IAM_OKTA_EVENT_HOOK_HEADER, default Authorization).",
                ),
            )),
        );
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for (path, item) in api.paths.paths.iter_mut() {
        if item.servers.is_some() {
            continue; // health probes: open
        }
        let route = format!("/api/v1{path}");
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let scope = required_scope(&method, &route);
            operation.security = Some(vec![SecurityRequirement::new("bearer", [scope.as_str()])]);
            // One extension key: utoipa keeps extensions in a HashMap, whose order would
            // change the served document from one start to the next.
            let mut machine =
                serde_json::json!({ "scopes": scopes_extension(&method, &route, scope) });
            if method == Method::POST {
                machine["repeatable"] = repeatable(&route);
            }
            operation
                .extensions
                .get_or_insert_with(Default::default)
                .insert(EXTENSION.into(), machine);
            let mut forbidden = format!("The token lacks the scope {}", scope.as_str());
            if writes_portal_settings(&method, &route) {
                let trust = TRUST_SETTINGS.map(|k| format!("`{k}`")).join(", ");
                let admin = Scope::Admin.as_str();
                forbidden.push_str(&format!(
                    ", or, for the settings that steer trust ({trust}, in any case), the \
                     scope {admin} as well"
                ));
                let note = format!(
                    "\n\nWriting or deleting {trust} needs the scope `{admin}` in addition to \
                     `{}`.",
                    scope.as_str()
                );
                let description = operation.description.get_or_insert_with(String::new);
                description.push_str(&note);
            }
            if route == RECONCILE_ROUTE && method == Method::POST {
                let admin = Scope::Admin.as_str();
                forbidden.push_str(&format!(
                    ", or, for a repair (`dry_run=false`), the scope {admin} as well"
                ));
            }
            let responses = &mut operation.responses.responses;
            responses.insert(
                "401".into(),
                problem("Missing or invalid bearer token").into(),
            );
            responses.insert("403".into(), problem(&forbidden).into());
        }
    }
}

/// What a client must know of an operation, by machine: `{"scopes": …, "repeatable": …}`.
const EXTENSION: &str = "x-efs-iam";

/// What an operation needs:
/// `{"required": [scope], "admin_for_settings": [...], "admin_when": "dry_run=false"}`,
/// the last two only where `iam:admin` is needed on top (trust settings; a repair).
fn scopes_extension(method: &Method, route: &str, scope: Scope) -> serde_json::Value {
    let mut scopes = serde_json::json!({ "required": [scope.as_str()] });
    if writes_portal_settings(method, route) {
        scopes["admin_for_settings"] = serde_json::json!(TRUST_SETTINGS);
    }
    if route == RECONCILE_ROUTE && *method == Method::POST {
        scopes["admin_when"] = serde_json::json!("dry_run=false");
    }
    scopes
}

/// Whether a POST may be repeated after a lost answer or a 503: `true`, `false`, or the
/// query that makes it repeatable (`"dry_run=true"`). The POSTs that may, and why (the
/// handlers' behaviour); every other POST creates something each time it is called (an
/// error-log row, queue rows, a job, an adoption run) and may not.
fn repeatable(route: &str) -> serde_json::Value {
    match route.strip_prefix("/api/v1").unwrap_or(route) {
        // One Okta user per person whatever the repeats: the user and login locks, the
        // lookup by reference then login, "login already exists" resolved by linking.
        "/sync/users/{user_id}" | "/sync/portals/{portal_id}/users/{user_id}" => true.into(),
        // A trigger: waking the worker twice does no harm.
        "/sync/unassignments/run" => true.into(),
        // Dead letters back to pending: a repeat finds them pending and skips them.
        "/sync/unassignments/requeue" => true.into(),
        // A dry run reads and reports; a repair queues a run each time.
        "/sync/portals/{portal_id}/reconcile" => "dry_run=true".into(),
        _ => false.into(),
    }
}
