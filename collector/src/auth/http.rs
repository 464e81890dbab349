//! Requiring a scope on routes of Meridian's JSON APIs (the analyzer's API, the collector's
//! `/metrics`): 401 with `WWW-Authenticate` for an unknown caller, 403 for a known one without
//! the scope, both with a JSON `{"error": ...}` body like the APIs' other errors.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};

use super::{Auth, Denied, Scope};

#[derive(Clone)]
struct Guard {
    auth: Auth,
    scope: Scope,
    listener: &'static str,
}

/// `router` with every route requiring `scope` (a no-op when `auth` has no tokens). The caller
/// is put in the request's extensions as an [`super::Caller`].
pub fn require(router: Router, auth: &Auth, scope: Scope, listener: &'static str) -> Router {
    if !auth.enabled() {
        return router;
    }
    let guard = Guard {
        auth: auth.clone(),
        scope,
        listener,
    };
    router.route_layer(middleware::from_fn_with_state(guard, check))
}

async fn check(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    match authorize(&guard.auth, guard.listener, request.headers(), guard.scope) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(denied) => denied_response(&denied),
    }
}

/// Checks a request's `authorization` header.
pub fn authorize(
    auth: &Auth,
    listener: &'static str,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<super::Caller, Denied> {
    let value = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    auth.check(listener, value, scope)
}

/// The HTTP status of a denial: 401 or 403.
pub fn status(denied: &Denied) -> StatusCode {
    if denied.unauthenticated() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::FORBIDDEN
    }
}

/// `WWW-Authenticate` for a 401, as RFC 6750 asks.
pub const CHALLENGE: &str = r#"Bearer realm="meridian""#;

fn denied_response(denied: &Denied) -> Response {
    let mut response = (
        status(denied),
        Json(serde_json::json!({ "error": denied.to_string() })),
    )
        .into_response();
    if denied.unauthenticated() {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(CHALLENGE),
        );
    }
    response
}
