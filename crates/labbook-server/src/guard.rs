//! The request guard: one layer in front of every route of `labbook ui` and
//! `labbook serve`. Neither asks for a password, so on one person's machine
//! the browser is the thing to defend against: a page on another site (or
//! on a DNS name rebound to 127.0.0.1) must not read from, write to or
//! crash the server. The guard
//! - answers only Host names that cannot be rebound (IP addresses,
//!   `localhost`, this machine's name) and those given by `--allowed-hosts`;
//! - refuses writes from other origins (`Origin`, `Sec-Fetch-Site`), and
//!   API reads embedded by other sites (`<img>`, `<script>`, no-cors fetch);
//! - requires `Content-Type: application/json` on the JSON APIs' writes, so
//!   an HTML form or a text/plain fetch cannot reach a handler;
//! - grants CORS only to origins named by `--cors-allowed-origins`;
//! - sends security headers on every response (a strict CSP for the
//!   dashboard, `nosniff`, no framing, no referrer);
//! - answers a method a route does not serve with 405.
//!
//! Non-browser clients (the `mlflow` client, labbook's SDK, curl) send no
//! `Origin` or `Sec-Fetch-*` headers and pass unchanged. Every refusal is a
//! 4xx in the error format of the API it was meant for.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Who may talk to the server, beyond what is always safe.
#[derive(Debug, Clone, Default)]
pub struct GuardOptions {
    /// Host names (or `*.suffix` patterns, or `*` for any) answered besides
    /// IP addresses, `localhost` and this machine's name. An entry with a
    /// port (`labbook.internal:8080`) matches only that port.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://notebook.example:8888`) whose pages may call the
    /// API with CORS; `*` allows any origin.
    pub cors_allowed_origins: Vec<String>,
}

/// The dashboard's policy: its own scripts, styles and API only; images
/// from itself or data/blob URLs (chart exports); never framed.
pub const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self' data:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Everything else (JSON, artifacts, plain text): nothing may run or load,
/// even if a response is opened as a page.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";

pub(crate) struct Guard {
    options: GuardOptions,
    /// With `--auth`: the accounts every request but `/health` must name.
    accounts: Option<Arc<crate::auth::Accounts>>,
    /// This machine's host name, lower case: a name the user's own browser
    /// uses for the server, never one a web page can rebind.
    hostname: Option<String>,
}

impl Guard {
    pub(crate) fn new(
        options: GuardOptions,
        accounts: Option<Arc<crate::auth::Accounts>>,
    ) -> Guard {
        Guard {
            options,
            accounts,
            hostname: labbook_capture::hostname().map(|h| h.to_ascii_lowercase()),
        }
    }
}

/// Which API a path belongs to, for the shape of its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    Mlflow,
    /// MLflow's artifact proxy: raw file bodies, not JSON.
    MlflowArtifacts,
    Labbook,
    Dashboard,
}

impl Surface {
    pub(crate) fn of(path: &str) -> Surface {
        if path.starts_with("/api/2.0/mlflow-artifacts")
            || path.starts_with("/ajax-api/2.0/mlflow-artifacts")
        {
            Surface::MlflowArtifacts
        } else if path.starts_with("/api/2.0/mlflow")
            || path.starts_with("/ajax-api/")
            || path.starts_with("/api/3.0/")
            || path == "/get-artifact"
            || path == "/version"
            // MLflow serves these; labbook does not, and a client must read
            // a JSON 404 there, never the dashboard's page.
            || path == "/graphql"
            || path.starts_with("/graphql/")
            || path == "/model-versions/get-artifact"
            || path == "/v1/traces"
            || path == "/gateway"
            || path.starts_with("/gateway/")
        {
            Surface::Mlflow
        } else if path.starts_with("/api/") || path == "/api" || path == "/health" {
            Surface::Labbook
        } else {
            Surface::Dashboard
        }
    }

    fn is_api(self) -> bool {
        self != Surface::Dashboard
    }
}

/// A refused request: a status and a message naming the reason.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    /// labbook's code for it; MLflow's is derived from the status.
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// The refusal in the error format of `surface`.
    pub(crate) fn into_response(self, surface: Surface) -> Response {
        match surface {
            Surface::Mlflow | Surface::MlflowArtifacts => crate::mlflow::MlflowError {
                status: self.status,
                code: mlflow_code(self.status),
                message: self.message,
            }
            .into_response(),
            Surface::Labbook | Surface::Dashboard => crate::ApiError {
                status: self.status,
                code: self.code,
                message: self.message,
                field: None,
                column: None,
            }
            .into_response(),
        }
    }
}

/// MLflow's `error_code` for a refusal's status.
fn mlflow_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::FORBIDDEN => "PERMISSION_DENIED",
        StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND => "ENDPOINT_NOT_FOUND",
        StatusCode::PAYLOAD_TOO_LARGE => "REQUEST_LIMIT_EXCEEDED",
        StatusCode::INSUFFICIENT_STORAGE => "RESOURCE_EXHAUSTED",
        StatusCode::TOO_MANY_REQUESTS => "REQUEST_LIMIT_EXCEEDED",
        _ => "BAD_REQUEST",
    }
}

/// The middleware: checks, then forwards, then dresses the response.
pub(crate) async fn guard(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    let surface = Surface::of(req.uri().path());
    let html_page = surface == Surface::Dashboard;
    let cors_origin = guard.cors_origin(req.headers());
    let checked = guard.check(&req, surface, cors_origin.is_some());
    let req_from_browser = req.headers().contains_key("sec-fetch-mode");
    let signed_in = match (&checked, &guard.accounts) {
        (Ok(()), Some(accounts)) if needs_sign_in(&req, surface) => {
            let client = req
                .extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip());
            Some(sign_in(accounts.clone(), req.headers().clone(), client).await)
        }
        _ => None,
    };
    let mut response = match (checked, signed_in) {
        (Err(refusal), _) => refusal.into_response(surface),
        (Ok(()), Some(Err(crate::auth::Unauthenticated::Throttled(wait)))) => {
            let why = crate::auth::Unauthenticated::Throttled(wait);
            let mut response = Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_ATTEMPTS",
                why.message(),
            )
            .into_response(surface);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
        (Ok(()), Some(Err(why))) => {
            let mut response =
                Refusal::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", why.message())
                    .into_response(surface);
            // The challenge lets a script's HTTP library (and curl) know
            // Basic is taken. Browsers send `Sec-Fetch-Mode` and get none:
            // the dashboard signs them in on its own page, never through
            // the browser's prompt.
            if !req_from_browser {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"labbook\", charset=\"UTF-8\""),
                );
            }
            response
        }
        (Ok(()), _) if req.method() == Method::OPTIONS => preflight(&req, cors_origin.is_some()),
        (Ok(()), signed_in) => {
            let mut req = req;
            if let Some(Ok(user)) = signed_in {
                req.extensions_mut().insert(user);
            }
            let method = req.method().clone();
            let response = next.run(req).await;
            explain_status(response, surface, &method).await
        }
    };
    let headers = response.headers_mut();
    if let Some(origin) = cors_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    security_headers(headers, html_page);
    response
}

/// Whether a request must name an account (on `--auth`). Not `/health`
/// (load balancers), preflights, the dashboard's sign-in, nor the
/// dashboard's own pages and scripts: they hold no data, and a browser
/// must load them to show the sign-in page.
fn needs_sign_in(req: &Request, surface: Surface) -> bool {
    let (method, path) = (req.method(), req.uri().path());
    let open = method == Method::OPTIONS
        || path == "/health"
        || (path == "/api/v1/session" && method == Method::POST)
        || (surface == Surface::Dashboard && (method == Method::GET || method == Method::HEAD));
    !open
}

/// The account a request names, read off the async workers: it reads the
/// store and may verify a password hash.
async fn sign_in(
    accounts: Arc<crate::auth::Accounts>,
    headers: HeaderMap,
    client: Option<std::net::IpAddr>,
) -> Result<labbook_core::account::User, crate::auth::Unauthenticated> {
    tokio::task::spawn_blocking(move || accounts.authenticate(&headers, client))
        .await
        .unwrap_or(Err(crate::auth::Unauthenticated::Wrong))
}

impl Guard {
    fn check(&self, req: &Request, surface: Surface, cors_allowed: bool) -> Result<(), Refusal> {
        let headers = req.headers();
        let host = host_of(req)?;
        if !self.host_allowed(&host) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN_HOST",
                format!(
                    "the Host {:?} is not served (a guard against DNS rebinding): this server \
                     answers IP addresses, localhost and this machine's name; name others with \
                     --allowed-hosts",
                    clip(&host.name)
                ),
            ));
        }
        let method = req.method();
        let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let origin = headers
            .get(header::ORIGIN)
            .map(|o| o.to_str().unwrap_or("?"));
        let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
        let foreign_origin = match origin {
            Some(origin) => !same_origin(origin, &host.authority) && !cors_allowed,
            // No Origin: a non-browser client, or a browser's same-origin
            // GET; Sec-Fetch-Site (sent by every current browser) tells.
            None => matches!(fetch_site, Some("cross-site" | "same-site")) && !cors_allowed,
        };
        if foreign_origin && (writes || *method == Method::OPTIONS) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "CROSS_ORIGIN",
                format!(
                    "cross-origin request refused: a page from {} may not change this server \
                     (to allow one, start it with --cors-allowed-origins ORIGIN)",
                    clip(origin.unwrap_or("another site"))
                ),
            ));
        }
        // A page elsewhere embedding an API answer (<img>, <script>, a
        // no-cors fetch) could still observe its size or timing; a user
        // following a link (a navigation) is fine.
        let navigation = headers
            .get("sec-fetch-mode")
            .is_some_and(|m| m.as_bytes() == b"navigate");
        if foreign_origin && surface.is_api() && !navigation {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "CROSS_ORIGIN",
                "cross-origin read refused: this API answers pages of its own origin only \
                 (to allow one, start the server with --cors-allowed-origins ORIGIN)",
            ));
        }
        // A write without a body (MLflow's client deletes a tag that way)
        // carries nothing to smuggle; one with a body must say it is JSON.
        if writes && json_api(surface) && !is_json(headers) && has_body(headers) {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                format!(
                    "the request body must be JSON, sent with Content-Type: application/json \
                     (got {})",
                    headers
                        .get(header::CONTENT_TYPE)
                        .map(|v| format!("{:?}", clip(v.to_str().unwrap_or("?"))))
                        .unwrap_or_else(|| "none".into())
                ),
            ));
        }
        Ok(())
    }

    fn host_allowed(&self, host: &Host) -> bool {
        let name = host.name.as_str();
        if name.is_empty() {
            return false;
        }
        // An address cannot be rebound: a page that reaches the server by
        // one was loaded from that address itself.
        if name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok()
        {
            return true;
        }
        if name == "localhost" || self.hostname.as_deref() == Some(name) {
            return true;
        }
        self.options.allowed_hosts.iter().any(|pattern| {
            let pattern = pattern.trim().to_ascii_lowercase();
            let subject = if pattern.contains(':') && !pattern.starts_with('[') {
                host.authority.as_str()
            } else {
                name
            };
            match pattern.strip_prefix("*.") {
                _ if pattern == "*" => true,
                Some(suffix) => subject
                    .strip_suffix(suffix)
                    .is_some_and(|head| head.ends_with('.') && head.len() > 1),
                None => subject == pattern,
            }
        })
    }

    /// The request's `Origin`, when CORS is granted to it.
    fn cors_origin(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        let allowed = self
            .options
            .cors_allowed_origins
            .iter()
            .any(|o| o == "*" || o.trim_end_matches('/').eq_ignore_ascii_case(text));
        (allowed && text != "null").then(|| origin.clone())
    }
}

/// The Host a request names: its name (lower case, no port, no trailing
/// dot) and its authority as sent (lower case).
struct Host {
    name: String,
    authority: String,
}

fn host_of(req: &Request) -> Result<Host, Refusal> {
    let authority = match req.headers().get(header::HOST) {
        Some(value) => value.to_str().map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "BAD_HOST",
                "the Host header is not valid text",
            )
        })?,
        None => req.uri().authority().map(|a| a.as_str()).ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "BAD_HOST",
                "the request names no Host",
            )
        })?,
    };
    let authority = authority.trim().to_ascii_lowercase();
    let name = if authority.starts_with('[') {
        match authority.find(']') {
            Some(end) => authority[..=end].to_string(),
            None => authority.clone(),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
            _ => authority.clone(),
        }
    };
    let name = name.trim_end_matches('.').to_string();
    Ok(Host { name, authority })
}

/// Whether `origin` (`scheme://host[:port]`) names the authority the request
/// was sent to. The scheme is not compared: behind a TLS proxy the browser
/// says https while the server sees http, and one port serves one scheme.
fn same_origin(origin: &str, authority: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let rest = rest.trim_end_matches('/').to_ascii_lowercase();
    let strip = |a: &str| a.strip_suffix(default_port).map(str::to_string);
    rest == authority
        || strip(&rest).as_deref() == Some(authority)
        || strip(authority).as_deref() == Some(rest.as_str())
}

/// Whether writes to this surface carry JSON bodies (artifact uploads are
/// raw files).
fn json_api(surface: Surface) -> bool {
    matches!(surface, Surface::Mlflow | Surface::Labbook)
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::CONTENT_TYPE)
        || headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|n| n.as_bytes() != b"0")
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The answer to an OPTIONS request that passed the checks: a CORS
/// preflight from an allowed origin, or a plain question about methods.
fn preflight(req: &Request, cors_allowed: bool) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
    );
    if cors_allowed {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"),
        );
        if let Some(asked) = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .filter(|v| v.len() <= 256)
        {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
        }
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}

/// Gives the router's and extractors' own refusals the API's error body: a
/// bare 405 (a path served for other methods, keeping its `Allow` header),
/// and a text/plain 4xx ([`plain_errors_as_json`]).
async fn explain_status(response: Response, surface: Surface, method: &Method) -> Response {
    let response = plain_errors_as_json(surface, response).await;
    let status = response.status();
    if status != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut refused = Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!(
            "{method} is not served here{}",
            allow
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .map(|a| format!("; this path takes {a}"))
                .unwrap_or_default()
        ),
    )
    .into_response(surface);
    if let Some(allow) = allow {
        refused.headers_mut().insert(header::ALLOW, allow);
    }
    refused
}

/// The headers every response carries; built once (a `HeaderValue` made
/// from a string checks every byte).
const SECURITY_HEADERS: [(header::HeaderName, HeaderValue); 4] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    ),
];
const DASHBOARD_CSP_VALUE: HeaderValue = HeaderValue::from_static(DASHBOARD_CSP);
const API_CSP_VALUE: HeaderValue = HeaderValue::from_static(API_CSP);
const COOP: header::HeaderName = header::HeaderName::from_static("cross-origin-opener-policy");

fn security_headers(headers: &mut HeaderMap, html_page: bool) {
    let html = html_page
        && headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    for (name, value) in SECURITY_HEADERS {
        headers.entry(name).or_insert(value);
    }
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(if html {
            DASHBOARD_CSP_VALUE
        } else {
            API_CSP_VALUE
        });
    if html {
        headers
            .entry(COOP)
            .or_insert(HeaderValue::from_static("same-origin"));
    }
}

/// At most 100 characters of a header value quoted back.
fn clip(s: &str) -> String {
    if s.len() <= 100 {
        s.to_string()
    } else {
        format!("{}…", &s[..s.floor_char_boundary(100)])
    }
}

/// An extractor's text/plain 4xx (a path segment that is not UTF-8, a query
/// string that does not parse) as the API's error object. Compressed
/// answers pass unchanged: the labbook API applies this inside its
/// compression layer, where the text is still readable.
pub(crate) async fn plain_errors_as_json(surface: Surface, response: Response) -> Response {
    let headers = response.headers();
    let plain_text = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/plain"));
    if !surface.is_api()
        || !response.status().is_client_error()
        || !plain_text
        || headers.contains_key(header::CONTENT_ENCODING)
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_string();
    let mut refused = Refusal::new(
        parts.status,
        match parts.status {
            StatusCode::NOT_FOUND => "NOT_FOUND",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            _ => "INVALID_ARGUMENT",
        },
        clip(if message.is_empty() {
            parts.status.canonical_reason().unwrap_or("bad request")
        } else {
            &message
        }),
    )
    .into_response(surface);
    refused.headers_mut().extend(
        parts
            .headers
            .into_iter()
            .filter_map(|(name, value)| Some((name?, value)))
            .filter(|(name, _)| name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH),
    );
    refused
}

/// The 405 for a method the dashboard's pages do not serve.
pub(crate) fn page_method_not_allowed(method: &Method) -> Response {
    let mut response = Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not served here; pages take GET and HEAD"),
    )
    .into_response(Surface::Dashboard);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn guard(hosts: &[&str]) -> Guard {
        Guard {
            options: GuardOptions {
                allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
                cors_allowed_origins: Vec::new(),
            },
            accounts: None,
            hostname: Some("box1".into()),
        }
    }

    fn host(authority: &str) -> Host {
        let req = Request::builder()
            .uri("/")
            .header(header::HOST, authority)
            .body(Body::empty())
            .expect("a request");
        host_of(&req).unwrap_or_else(|r| panic!("{}", r.message))
    }

    #[test]
    fn hosts_that_cannot_be_rebound_are_answered() {
        let g = guard(&[]);
        for ok in [
            "127.0.0.1:5000",
            "localhost:5001",
            "LOCALHOST",
            "localhost.",
            "[::1]:5000",
            "10.1.2.3",
            "box1:5000",
        ] {
            assert!(g.host_allowed(&host(ok)), "{ok} should be answered");
        }
        for bad in [
            "evil.example",
            "localhost.evil.example",
            "evil.example:5000",
            "",
            "127.0.0.1.evil.example",
            "box1.evil.example",
        ] {
            assert!(!g.host_allowed(&host(bad)), "{bad} should be refused");
        }
    }

    #[test]
    fn allowed_hosts_take_names_patterns_and_ports() {
        let g = guard(&["labbook.internal", "*.corp.example", "pinned.example:8080"]);
        assert!(g.host_allowed(&host("labbook.internal:5000")));
        assert!(g.host_allowed(&host("a.corp.example")));
        assert!(!g.host_allowed(&host("corp.example")));
        assert!(!g.host_allowed(&host("evilcorp.example")));
        assert!(g.host_allowed(&host("pinned.example:8080")));
        assert!(!g.host_allowed(&host("pinned.example:9090")));
        assert!(guard(&["*"]).host_allowed(&host("anything.example")));
    }

    #[test]
    fn same_origin_compares_host_and_port() {
        assert!(same_origin("http://127.0.0.1:5001", "127.0.0.1:5001"));
        assert!(same_origin("http://localhost", "localhost:80"));
        assert!(same_origin("https://labbook.example", "labbook.example"));
        assert!(!same_origin("http://127.0.0.1:9999", "127.0.0.1:5001"));
        assert!(!same_origin("null", "127.0.0.1:5001"));
        assert!(!same_origin("http://evil.example", "127.0.0.1:5001"));
    }

    #[test]
    fn surfaces() {
        assert_eq!(Surface::of("/api/2.0/mlflow/runs/create"), Surface::Mlflow);
        assert_eq!(
            Surface::of("/ajax-api/2.0/mlflow/runs/get"),
            Surface::Mlflow
        );
        assert_eq!(
            Surface::of("/api/2.0/mlflow-artifacts/artifacts/x"),
            Surface::MlflowArtifacts
        );
        assert_eq!(Surface::of("/api/v1/runs"), Surface::Labbook);
        assert_eq!(Surface::of("/p/x"), Surface::Dashboard);
    }
}
