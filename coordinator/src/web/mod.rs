//! The dashboard: pages and a JSON API under `/api/v1/`, served over HTTP/1.1 on the gRPC
//! port (as the worker artifact is). Read-only. Every page, asset and API path needs an
//! admin or client token, as a `Bearer` header or the HttpOnly cookie the login page
//! sets; without one the answer is 401 and the login form, nothing else.
//!
//! The API answers through the client service itself (the same calls, the same checks)
//! and prints with `sweep_view::json`, the functions behind the CLI's `-o json`, so a
//! script and the page read one thing.

mod api;
mod events;

use std::sync::Arc;

use axum::extract::{Form, FromRequestParts, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The cookie holding the token after a login.
const COOKIE: &str = "sweep_token";

const SHELL: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What a browser may load and from where: this origin only (no CDN, nothing fetched from
/// outside), no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(shell))
        .route("/sweeps/{id}", get(shell))
        .route("/trials/{id}", get(shell))
        .route("/workers", get(shell))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.js", get(|_: Token| async { asset("text/javascript; charset=utf-8", APP_JS) }))
        .route("/assets/app.css", get(|_: Token| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .merge(api::routes())
        .with_state(state)
}

/// The page URL of a sweep, for `sweep ui`.
pub fn sweep_path(sweep_id: &str) -> String {
    format!("/sweeps/{sweep_id}")
}

/// A caller's token, checked: an admin or client API token.
pub struct Token(pub String);

impl FromRequestParts<Arc<AppState>> for Token {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let api = parts.uri.path().starts_with("/api/");
        let Some(token) = token_of(&parts.headers) else {
            return Err(unauthorized(api, "sign in with an API token"));
        };
        match crate::auth::client(&state.db, &request((), &token)).await {
            Ok(_) => Ok(Token(token)),
            Err(e) => Err(unauthorized(api, &e.to_string())),
        }
    }
}

/// `Authorization: Bearer` first, else the login cookie.
fn token_of(headers: &HeaderMap) -> Option<String> {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let cookie = || {
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
            |c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == COOKIE).then(|| v.to_string())
            },
        )
    };
    plausible(&bearer.map(str::to_string).or_else(cookie)?)
}

/// A token as a header can carry it (visible ASCII, at most 256 bytes), or None.
fn plausible(token: &str) -> Option<String> {
    let ok = !token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| token.to_string())
}

/// A client-service request carrying `token`, for calls made on a page's behalf.
pub(crate) fn request<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    let value = format!("Bearer {token}").parse().expect("token_of admits only visible ASCII");
    r.metadata_mut().insert("authorization", value);
    r
}

/// 401: JSON for the API, the login form for pages. Nothing about the sweeps.
fn unauthorized(api: bool, why: &str) -> Response {
    let mut r =
        if api { axum::Json(serde_json::json!({"error": why})).into_response() } else { html(&login_html(why)) };
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"sweep\""));
    r
}

fn html(body: &str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body.to_string()).into_response();
    secure_headers(r.headers_mut());
    r
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, kind)], body).into_response();
    secure_headers(r.headers_mut());
    r
}

fn login_html(message: &str) -> String {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    LOGIN.replace("{{message}}", &escaped)
}

async fn shell(_: Token) -> Response {
    html(SHELL)
}

async fn login_page() -> Response {
    html(&login_html(""))
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

/// Checks the token and keeps it in an HttpOnly, SameSite=Strict cookie (Secure under TLS).
async fn login(State(state): State<Arc<AppState>>, Form(f): Form<Login>) -> Response {
    let Some(token) = plausible(f.token.trim()) else { return unauthorized(false, "that is not a token") };
    if let Err(e) = crate::auth::client(&state.db, &request((), &token)).await {
        return unauthorized(false, &e.to_string());
    }
    let secure = if state.settings.tls_cert.is_some() { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800{secure}");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("visible ASCII"));
    r
}

async fn logout() -> Response {
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&clear).expect("visible ASCII"));
    r
}

/// An API failure: the HTTP status a client-service status maps to, and its message
/// (answered as `{"error": message}`).
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl From<tonic::Status> for ApiError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let status = match s.code() {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::InvalidArgument => StatusCode::BAD_REQUEST,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError { status, message: s.message().to_string() }
    }
}

impl From<crate::error::CoordinatorError> for ApiError {
    fn from(e: crate::error::CoordinatorError) -> Self {
        tonic::Status::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(serde_json::json!({"error": self.message}))).into_response()
    }
}
