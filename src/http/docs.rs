//! The public documents: the OpenAPI document and Swagger UI's files. Anyone who can
//! reach the port may fetch them, so they must cost little: each is made once, kept in
//! memory with its gzip form (compressed once, not per request) and a strong `ETag`,
//! and served with `Cache-Control`; a repeat with `If-None-Match` gets a bodiless 304.
//! A client fetching the 200 KB document in a loop gets about 25 KB per request with
//! `Accept-Encoding: gzip`, and nothing with a cached copy.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};

/// The OpenAPI document's path.
pub const OPENAPI_PATH: &str = "/api-docs/openapi.json";

/// The document changes with a release: a browser may keep it five minutes.
const DOCUMENT_CACHE: &str = "public, max-age=300";
/// Swagger UI's own files change with a release of efs-iam too, but rarely.
const ASSET_CACHE: &str = "public, max-age=86400";

/// One document, ready to send.
struct Document {
    body: Bytes,
    gzip: Bytes,
    etag: HeaderValue,
    content_type: HeaderValue,
    cache: &'static str,
}

impl Document {
    fn new(body: Vec<u8>, content_type: &str, cache: &'static str) -> Self {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(&body).expect("gzip into memory");
        let gzip = encoder.finish().expect("gzip into memory");
        let digest = Sha256::digest(&body);
        let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            body: Bytes::from(body),
            gzip: Bytes::from(gzip),
            etag: HeaderValue::from_str(&format!("\"{tag}\"")).expect("hex is a header value"),
            content_type: HeaderValue::from_str(content_type)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            cache,
        }
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let cached = request
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == self.etag);
        let mut headers = HeaderMap::new();
        headers.insert(ETAG, self.etag.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(self.cache));
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
        if cached {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        headers.insert(CONTENT_TYPE, self.content_type.clone());
        if accepts_gzip(request) {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return (headers, self.gzip.clone()).into_response();
        }
        (headers, self.body.clone()).into_response()
    }
}

/// `Accept-Encoding` names gzip (or `*`) without `q=0`.
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// Swagger UI's files, each made on first request and kept (only files Swagger UI
/// has: an unknown path is a 404 and leaves nothing behind).
struct SwaggerFiles {
    config: Arc<utoipa_swagger_ui::Config<'static>>,
    made: Mutex<HashMap<String, Arc<Document>>>,
}

impl SwaggerFiles {
    fn get(&self, tail: &str) -> Option<Arc<Document>> {
        if let Some(doc) = self.made.lock().unwrap().get(tail) {
            return Some(doc.clone());
        }
        let file = utoipa_swagger_ui::serve(tail, self.config.clone()).ok()??;
        // The page and its initializer carry the configuration; the rest is Swagger
        // UI's release.
        let cache = if tail.is_empty() || tail.ends_with(".html") || tail.contains("initializer") {
            DOCUMENT_CACHE
        } else {
            ASSET_CACHE
        };
        let doc = Arc::new(Document::new(
            file.bytes.into_owned(),
            &file.content_type,
            cache,
        ));
        self.made
            .lock()
            .unwrap()
            .insert(tail.to_owned(), doc.clone());
        Some(doc)
    }
}

/// `/api-docs/openapi.json` and `/swagger-ui/…`.
pub fn router<S: Clone + Send + Sync + 'static>(api: &utoipa::openapi::OpenApi) -> Router<S> {
    let json = serde_json::to_vec(api).expect("the OpenAPI document serializes");
    let document = Arc::new(Document::new(json, "application/json", DOCUMENT_CACHE));
    let files = Arc::new(SwaggerFiles {
        config: Arc::new(utoipa_swagger_ui::Config::new([OPENAPI_PATH])),
        made: Mutex::new(HashMap::new()),
    });
    let root = files.clone();
    Router::new()
        .route(
            OPENAPI_PATH,
            get(move |headers: HeaderMap| async move { document.respond(&headers) }),
        )
        .route(
            "/swagger-ui",
            get(|| async { Redirect::to("/swagger-ui/") }),
        )
        .route(
            "/swagger-ui/",
            get(move |headers: HeaderMap| async move { serve_file(&root, "", &headers) }),
        )
        .route(
            "/swagger-ui/{*rest}",
            get(
                move |Path(rest): Path<String>, headers: HeaderMap| async move {
                    serve_file(&files, &rest, &headers)
                },
            ),
        )
}

fn serve_file(files: &SwaggerFiles, tail: &str, headers: &HeaderMap) -> Response {
    match files.get(tail) {
        Some(doc) => doc.respond(headers),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br, gzip;q=0.8"
        )])));
        assert!(accepts_gzip(&headers(&[("accept-encoding", "*")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn a_known_etag_gets_a_bodiless_304() {
        let doc = Document::new(b"{\"a\":1}".to_vec(), "application/json", DOCUMENT_CACHE);
        let full = doc.respond(&headers(&[]));
        assert_eq!(full.status(), 200);
        let tag = full.headers()[ETAG].to_str().unwrap().to_owned();
        let again = doc.respond(&headers(&[("if-none-match", &format!("\"x\", {tag}"))]));
        assert_eq!(again.status(), 304);
        assert_eq!(again.headers()[ETAG], tag.as_str());
    }
}
