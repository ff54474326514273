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

/// The cookie holding a login's session id (never the API token itself).
const COOKIE: &str = "sweep_session";

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
        .layer(axum::middleware::map_response(|mut r: Response| async move {
            // Every answer, JSON and event streams included: never sniffed, never cached.
            r.headers_mut().insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }))
        .with_state(state)
}

/// The page URL of a sweep, for `sweep ui`.
pub fn sweep_path(sweep_id: &str) -> String {
    format!("/sweeps/{sweep_id}")
}

/// A caller, authenticated once: an admin or client API token as a `Bearer` header, or
/// a live login session in the cookie.
pub struct Token(pub crate::auth::Caller);

impl FromRequestParts<Arc<AppState>> for Token {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        use crate::auth::Caller;
        use crate::db::tokens::{self, Role};
        let api = parts.uri.path().starts_with("/api/");
        let found = match credential_of(&parts.headers) {
            None => return Err(unauthorized(api, "sign in with an API token")),
            Some(Credential::Bearer(token)) => tokens::lookup(&state.db, &token).await,
            Some(Credential::Session(session)) => tokens::session(&state.db, &session).await,
        };
        match found {
            Ok(Some((token, role @ (Role::Admin | Role::Client)))) => Ok(Token(Caller { token, role })),
            Ok(Some((_, Role::Join))) => Err(unauthorized(api, "a join token can only register workers")),
            Ok(None) => Err(unauthorized(api, "unknown or revoked token, or the login ended: sign in again")),
            Err(e) => Err(unauthorized(api, &e.to_string())),
        }
    }
}

/// What a request presents: a Bearer token, else the login cookie's session id.
enum Credential {
    Bearer(String),
    Session(String),
}

fn credential_of(headers: &HeaderMap) -> Option<Credential> {
    let bearer =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if let Some(b) = bearer {
        return plausible(b).map(Credential::Bearer);
    }
    session_of(headers).map(Credential::Session)
}

/// The login cookie's session id, if the request carries one.
fn session_of(headers: &HeaderMap) -> Option<String> {
    let found =
        headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
            |c| {
                let (k, v) = c.trim().split_once('=')?;
                (k == COOKIE).then(|| v.to_string())
            },
        )?;
    plausible(&found)
}

/// A token as a header can carry it (visible ASCII, at most 256 bytes), or None.
fn plausible(token: &str) -> Option<String> {
    let ok = !token.is_empty() && token.len() <= 256 && token.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| token.to_string())
}

/// A client-service request made on a page's behalf by `caller`, already authenticated
/// (the service does not look the token up again).
pub(crate) fn request<T>(msg: T, caller: &crate::auth::Caller) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.extensions_mut().insert(crate::auth::Authenticated(*caller));
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
    // Not `no-referrer`: under it a browser sends `Origin: null` with the login form, and
    // the login's origin check could not tell it from another site's post.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
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

/// Whether a login form comes from this dashboard's own page: a browser's `Origin` (or
/// `Sec-Fetch-Site`) naming another site is refused, so no other site can sign a visitor
/// in. A request with neither (curl, a script) is not a browser's cross-site post.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |h| headers.get(h).and_then(|v: &HeaderValue| v.to_str().ok());
    // Browsers of the last years say where a request comes from in Sec-Fetch-Site.
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    match (text(header::ORIGIN.as_str()), text(header::HOST.as_str())) {
        (None, _) => true,
        (Some(origin), Some(host)) => {
            origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host)
        }
        (Some(_), None) => false,
    }
}

/// Checks the token and starts a session: its id (not the token) in an HttpOnly,
/// SameSite=Strict cookie (Secure under TLS), expiring with the session.
async fn login(State(state): State<Arc<AppState>>, headers: HeaderMap, Form(f): Form<Login>) -> Response {
    if !same_origin(&headers) {
        let mut r = html(&login_html("sign in from this dashboard's own login page"));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let Some(token) = plausible(f.token.trim()) else { return unauthorized(false, "that is not a token") };
    let caller = match crate::auth::client(&state.db, &bearer_request(&token)).await {
        Ok(caller) => caller,
        Err(e) => return unauthorized(false, &e.to_string()),
    };
    let session = match crate::db::tokens::start_session(&state.db, caller.token).await {
        Ok(s) => s,
        Err(e) => return unauthorized(false, &e.to_string()),
    };
    let secure = if state.settings.tls_cert.is_some() { "; Secure" } else { "" };
    let max_age = crate::db::tokens::SESSION_DAYS * 86_400;
    let cookie = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("visible ASCII"));
    r
}

/// A request carrying `token` as its Bearer credential (the login form's token).
fn bearer_request(token: &str) -> tonic::Request<()> {
    let mut r = tonic::Request::new(());
    let value = format!("Bearer {token}").parse().expect("plausible admits only visible ASCII");
    r.metadata_mut().insert("authorization", value);
    r
}

/// Ends the session on the server (the cookie alone would outlive a cleared browser).
async fn logout(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(session) = session_of(&headers) {
        if let Err(e) = crate::db::tokens::end_session(&state.db, &session).await {
            tracing::warn!(error = %e, "session not ended");
        }
    }
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
