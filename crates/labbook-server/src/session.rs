//! The dashboard's sign-in (`/api/v1/session`, `/api/v1/session/sign-out`), on a server started with
//! `--auth`: a user name and password become a session, a token kept in an
//! HttpOnly, SameSite=Strict cookie that the browser sends with every
//! request of the dashboard (its API calls and its live event stream).
//! Scripts sign in with tokens instead (`crate::auth`).

use std::net::SocketAddr;

use axum::Extension;
use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use labbook_core::account::User;

use crate::AppState;
use crate::api::JsonBody;
use crate::auth::{SESSION_COOKIE, SESSION_LIFETIME, Unauthenticated};
use crate::error::ApiError;

/// Who the dashboard is signed in as: `{auth, user}`. Without `--auth`
/// there is no one to be (`auth: false`); with it, a request that names
/// no one never gets here (the guard answers 401).
pub(crate) async fn current(user: Option<Extension<User>>) -> Json<Value> {
    match user {
        Some(Extension(user)) => Json(json!({ "auth": true, "user": public(&user) })),
        None => Json(json!({ "auth": false, "user": null })),
    }
}

/// Signs in with `{"user", "password"}`; the answer sets the cookie.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let Some(accounts) = state.accounts.clone() else {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "NO_ACCOUNTS",
            message: "this server has no accounts to sign in to (it was not started with --auth)"
                .into(),
            field: None,
            column: None,
        });
    };
    let text = |name: &str| -> Result<String, ApiError> {
        match body.get(name) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 1024 => Ok(s.clone()),
            _ => Err(ApiError::invalid(
                name,
                format!("{name} must be a non-empty string of at most 1024 bytes"),
            )),
        }
    };
    let (name, password) = (text("user")?, text("password")?);
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let opened = tokio::task::spawn_blocking(move || {
        let user = accounts.by_password_throttled(&name, &password, client)?;
        let token = accounts
            .open_session(&user)
            .map_err(|_| Unauthenticated::Wrong)?;
        Ok::<_, Unauthenticated>((user, token))
    })
    .await
    .map_err(|e| ApiError::internal(format!("a sign-in task failed: {e}")))?;
    let (user, token) = match opened {
        Ok(opened) => opened,
        Err(why) => return Ok(refused(why)),
    };
    let mut cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    if served_over_https(&headers) {
        cookie.push_str("; Secure");
    }
    let mut response = Json(json!({ "auth": true, "user": public(&user) })).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Signs out: the session is revoked in the store (so a copied cookie stops
/// working too) and the browser told to forget it.
pub(crate) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(_): JsonBody,
) -> Result<Response, ApiError> {
    if let Some(accounts) = state.accounts.clone() {
        tokio::task::spawn_blocking(move || accounts.close_session(&headers))
            .await
            .map_err(|e| ApiError::internal(format!("a sign-out task failed: {e}")))??;
    }
    let mut response =
        Json(json!({ "auth": state.accounts.is_some(), "user": null })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("labbook_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(response)
}

fn public(user: &User) -> Value {
    json!({ "name": user.name, "admin": user.admin })
}

/// A failed sign-in, without the challenge that would make a browser ask
/// for a password in its own prompt.
fn refused(why: Unauthenticated) -> Response {
    let (status, code) = match why {
        Unauthenticated::Throttled(_) => (StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_ATTEMPTS"),
        _ => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
    };
    let message = match why {
        Unauthenticated::Missing | Unauthenticated::Wrong => {
            "the user name or password is wrong".to_string()
        }
        Unauthenticated::Throttled(_) => why.message().to_string(),
    };
    let mut response = ApiError {
        status,
        code,
        message,
        field: None,
        column: None,
    }
    .into_response();
    if let Unauthenticated::Throttled(wait) = why {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    }
    response
}

/// Whether the browser reached the server over TLS (directly, or through a
/// proxy that says so): the cookie is then sent over TLS only.
fn served_over_https(headers: &HeaderMap) -> bool {
    let says = |name: &str, prefix: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with(prefix))
    };
    says("origin", "https://") || says("x-forwarded-proto", "https")
}
