//! Who is calling, on a server started with `--auth`: every request but
//! `/health` carries an account's credentials, as the clients people use
//! send them:
//! - `Authorization: Bearer TOKEN`: labbook's SDK (`LABBOOK_TOKEN`),
//!   `labbook sync`, and the `mlflow` client (`MLFLOW_TRACKING_TOKEN`);
//! - `Authorization: Basic` with a user name and their password (the
//!   `mlflow` client's `MLFLOW_TRACKING_USERNAME`/`PASSWORD`, a browser's
//!   own sign-in prompt) or a token of theirs in the password's place.
//!
//! The store holds an Argon2id hash of each password and a BLAKE3 digest
//! of each token, never the secret. A token is 256 random bits, so its
//! digest needs no salt or slowness; a password's hash is slow on purpose,
//! so a verified (user, password) is remembered against the hash it was
//! checked with: a changed password or a removed user is seen at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::{HeaderMap, header};
use base64::Engine as _;

use labbook_core::account::{User, validate_password};
use labbook_store::{Result, Store, StoreError};

/// The dashboard's session cookie: a token, HttpOnly and SameSite=Strict.
pub const SESSION_COOKIE: &str = "labbook_session";
/// What the store calls a session's token (`labbook token ls` lists it).
const SESSION_NAME: &str = "dashboard session";
/// How long a dashboard session lasts; signing in again starts a new one.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// The session token a request's `Cookie` headers carry.
fn session_of(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What every token starts with, so a leaked one is recognisable (secret
/// scanners match prefixes like it).
pub const TOKEN_PREFIX: &str = "lbk_";

/// A new token to show once, and the digest the store keeps.
pub fn new_token() -> Result<(String, String)> {
    let mut bits = [0u8; 32];
    getrandom::fill(&mut bits)
        .map_err(|e| StoreError::Internal(format!("the OS gave no random bytes: {e}")))?;
    let token = format!("{TOKEN_PREFIX}{}", blake3::Hash::from(bits).to_hex());
    let digest = token_digest(&token);
    Ok((token, digest))
}

/// What the store keeps of a token.
pub fn token_digest(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// A password's Argon2id hash (PHC string) with a fresh salt.
pub fn hash_password(password: &str) -> Result<String> {
    validate_password(password)?;
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt)
        .map_err(|e| StoreError::Internal(format!("the OS gave no random bytes: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| StoreError::Internal(format!("cannot encode a salt: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Internal(format!("cannot hash the password: {e}")))
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unauthenticated {
    /// No `Authorization` header, or one of another scheme.
    Missing,
    /// Credentials that match no live account.
    Wrong,
    /// Too many wrong passwords lately, for this user or from this client:
    /// no password is checked for this many more seconds.
    Throttled(u64),
}

impl Unauthenticated {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Unauthenticated::Missing => {
                "this server asks who you are: send a token (Authorization: Bearer, \
                 LABBOOK_TOKEN or MLFLOW_TRACKING_TOKEN) or a user name and password \
                 (HTTP Basic)"
            }
            Unauthenticated::Wrong => {
                "the credentials sent match no account: the token is unknown or revoked, \
                 or the user name or password is wrong"
            }
            Unauthenticated::Throttled(_) => {
                "too many wrong passwords lately, for this user or from this address: \
                 wait (Retry-After says how long) or sign in with a token"
            }
        }
    }
}

/// Checks credentials against the store's accounts.
pub(crate) struct Accounts {
    store: Arc<dyn Store>,
    /// (user, BLAKE3 of the password) → the hash it was verified against.
    verified: Mutex<HashMap<(String, [u8; 32]), String>>,
    /// Wrong passwords lately, by user name and by client address.
    failures: Mutex<HashMap<Guesser, Failures>>,
}

/// Who is guessing passwords: a name guessed at, from anywhere, or a client
/// guessing at any names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Guesser {
    User(String),
    Client(std::net::IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    since: Instant,
    count: u32,
}

/// How a guesser is named in a store's shared counts. A long user name
/// (no account has one) is named by its digest, so every key fits the
/// table's index and is counted.
fn shared_keys(guessers: &[Option<Guesser>]) -> Vec<String> {
    guessers
        .iter()
        .flatten()
        .map(|g| match g {
            Guesser::User(name) if name.len() > 128 || name.contains('\0') => {
                format!("user:#{}", blake3::hash(name.as_bytes()).to_hex())
            }
            Guesser::User(name) => format!("user:{name}"),
            Guesser::Client(addr) => format!("addr:{addr}"),
        })
        .collect()
}

fn limit_of_key(key: &str) -> u32 {
    if key.starts_with("user:") {
        MAX_WRONG_PER_USER
    } else {
        MAX_WRONG_PER_CLIENT
    }
}

/// Wrong passwords allowed per window before password checks stop for the
/// rest of it: for one user name (a slow online guess at one account), and
/// from one client address (a guess across many names). Tokens are 256
/// random bits, so they are never throttled, and a throttled user can
/// still sign in with one.
const GUESS_WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_WRONG_PER_USER: u32 = 10;
const MAX_WRONG_PER_CLIENT: u32 = 50;
/// Guessers remembered at most; past it the oldest windows are dropped.
const MAX_GUESSERS: usize = 65_536;

/// Verified passwords remembered at most; past it the memory starts over
/// (a password is then checked slowly once more).
const MAX_REMEMBERED: usize = 4096;

impl Accounts {
    pub(crate) fn new(store: Arc<dyn Store>) -> Accounts {
        Accounts {
            store,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The account a request's credentials name. Blocking: it reads the
    /// store and may verify a password hash.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        client: Option<std::net::IpAddr>,
    ) -> std::result::Result<User, Unauthenticated> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            // A browser signed in on the dashboard's page sends its cookie.
            return match session_of(headers) {
                Some(token) => self.by_token(token),
                None => Err(Unauthenticated::Missing),
            };
        };
        let (scheme, rest) = value
            .trim()
            .split_once(' ')
            .ok_or(Unauthenticated::Missing)?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.by_token(rest);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(Unauthenticated::Missing);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Unauthenticated::Wrong)?;
        let text = String::from_utf8(decoded).map_err(|_| Unauthenticated::Wrong)?;
        let (name, secret) = text.split_once(':').ok_or(Unauthenticated::Wrong)?;
        if secret.starts_with(TOKEN_PREFIX) {
            let user = self.by_token(secret)?;
            return if user.name == name {
                Ok(user)
            } else {
                Err(Unauthenticated::Wrong)
            };
        }
        self.by_password_throttled(name, secret, client)
    }

    /// A user name and password, checked unless too many wrong ones came
    /// lately for the name or from the client. Blocking (Argon2).
    pub(crate) fn by_password_throttled(
        &self,
        name: &str,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> std::result::Result<User, Unauthenticated> {
        let guessers = [
            Some(Guesser::User(name.to_string())),
            client.map(Guesser::Client),
        ];
        let (wait, user_failed) = self.throttled(&guessers);
        if let Some(wait) = wait {
            return Err(Unauthenticated::Throttled(wait));
        }
        let checked = self.by_password(name, password);
        match &checked {
            // Only a count on record needs forgetting: a right password, the
            // common case, writes nothing.
            Ok(_) if user_failed => self.forget(&Guesser::User(name.to_string())),
            Ok(_) => {}
            Err(_) => self.count_failure(&guessers),
        }
        checked
    }

    /// Makes a dashboard session for a signed-in user: the token to set as
    /// the cookie. The store keeps its digest and when it expires.
    pub(crate) fn open_session(&self, user: &User) -> Result<String> {
        let (token, digest) = new_token()?;
        let now = now_ms();
        self.store.create_token(
            &user.name,
            SESSION_NAME,
            &digest,
            now,
            Some(now + SESSION_LIFETIME.as_millis() as i64),
        )?;
        Ok(token)
    }

    /// Ends the session a request's cookie names, if any.
    pub(crate) fn close_session(&self, headers: &HeaderMap) -> Result<()> {
        if let Some(token) = session_of(headers) {
            self.store
                .revoke_token_digest(&token_digest(token), now_ms())?;
        }
        Ok(())
    }

    /// Seconds until a guesser may try a password again, if it must wait,
    /// and whether the user name (the first guesser) has wrong passwords on
    /// record. A store several servers share counts for all of them;
    /// otherwise this process counts in memory.
    fn throttled(&self, guessers: &[Option<Guesser>]) -> (Option<u64>, bool) {
        let keys = shared_keys(guessers);
        let now = now_ms();
        let window = GUESS_WINDOW.as_millis() as i64;
        match self.store.signin_failures(&keys, now - window) {
            Ok(Some(counted)) => {
                let wait = counted
                    .iter()
                    .filter(|f| f.count >= limit_of_key(&f.guesser))
                    .map(|f| ((f.since_ms + window - now).max(1000) / 1000) as u64)
                    .max();
                let user_failed = counted.iter().any(|f| keys.first() == Some(&f.guesser));
                return (wait, user_failed);
            }
            Ok(None) => {}
            // A store that cannot say lets no password be tried (429 with a
            // Retry-After: clients try again).
            Err(_) => return (Some(1), false),
        }
        let Ok(failures) = self.failures.lock() else {
            return (None, true);
        };
        let now = Instant::now();
        let user_failed = guessers
            .first()
            .and_then(Option::as_ref)
            .is_some_and(|g| failures.contains_key(g));
        let wait = guessers
            .iter()
            .flatten()
            .filter_map(|g| {
                let f = failures.get(g)?;
                let limit = match g {
                    Guesser::User(_) => MAX_WRONG_PER_USER,
                    Guesser::Client(_) => MAX_WRONG_PER_CLIENT,
                };
                let left = GUESS_WINDOW.checked_sub(now.duration_since(f.since))?;
                (f.count >= limit).then(|| left.as_secs().max(1))
            })
            .max();
        (wait, user_failed)
    }

    fn count_failure(&self, guessers: &[Option<Guesser>]) {
        // Counted in the store where it shares counts (a no-op elsewhere),
        // and in memory, the count of a store served by this process alone.
        // A store that cannot count it cannot answer the next check either,
        // and that check refuses.
        let window = GUESS_WINDOW.as_millis() as i64;
        let _ = self
            .store
            .record_signin_failure(&shared_keys(guessers), now_ms(), window);
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if failures.len() >= MAX_GUESSERS {
            failures.retain(|_, f| now.duration_since(f.since) < GUESS_WINDOW);
            if failures.len() >= MAX_GUESSERS {
                failures.clear();
            }
        }
        for g in guessers.iter().flatten() {
            let f = failures.entry(g.clone()).or_insert(Failures {
                since: now,
                count: 0,
            });
            if now.duration_since(f.since) >= GUESS_WINDOW {
                *f = Failures {
                    since: now,
                    count: 0,
                };
            }
            f.count += 1;
        }
    }

    fn forget(&self, guesser: &Guesser) {
        if let Some(key) = shared_keys(&[Some(guesser.clone())]).pop() {
            // Failing to forget only keeps an old count a while longer.
            let _ = self.store.forget_signin_failures(&key);
        }
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(guesser);
        }
    }

    fn by_token(&self, token: &str) -> std::result::Result<User, Unauthenticated> {
        match self.store.user_of_token(&token_digest(token), now_ms()) {
            Ok(Some(user)) => Ok(user),
            _ => Err(Unauthenticated::Wrong),
        }
    }

    fn by_password(
        &self,
        name: &str,
        password: &str,
    ) -> std::result::Result<User, Unauthenticated> {
        let Ok(Some((user, hash))) = self.store.password_hash(name) else {
            return Err(Unauthenticated::Wrong);
        };
        let key = (
            name.to_string(),
            *blake3::hash(password.as_bytes()).as_bytes(),
        );
        if let Ok(verified) = self.verified.lock()
            && verified.get(&key) == Some(&hash)
        {
            return Ok(user);
        }
        let parsed = PasswordHash::new(&hash).map_err(|_| Unauthenticated::Wrong)?;
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .map_err(|_| Unauthenticated::Wrong)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= MAX_REMEMBERED {
                verified.clear();
            }
            verified.insert(key, hash);
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_guesser_has_a_short_storable_key() {
        let ip: std::net::IpAddr = [10, 0, 0, 9].into();
        let keys = shared_keys(&[
            Some(Guesser::User("ada".into())),
            Some(Guesser::User("x".repeat(10_000))),
            Some(Guesser::User("a\0b".into())),
            None,
            Some(Guesser::Client(ip)),
        ]);
        assert_eq!(keys[0], "user:ada");
        assert!(keys[1].starts_with("user:#") && keys[1].len() == 70);
        assert!(keys[2].starts_with("user:#") && !keys[2].contains('\0'));
        assert_eq!(keys[3], "addr:10.0.0.9");
        assert_eq!(limit_of_key(&keys[1]), MAX_WRONG_PER_USER);
        assert_eq!(limit_of_key(&keys[3]), MAX_WRONG_PER_CLIENT);
    }

    #[test]
    fn a_token_is_long_random_and_kept_only_as_its_digest() {
        let (a, digest) = new_token().expect("a token");
        let (b, _) = new_token().expect("a token");
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == TOKEN_PREFIX.len() + 64);
        assert_ne!(a, b);
        assert_eq!(digest, token_digest(&a));
        assert!(!digest.contains(&a[TOKEN_PREFIX.len()..]));
    }

    #[test]
    fn a_password_hash_verifies_only_its_password() {
        let hash = hash_password("correct horse").expect("a hash");
        assert!(hash.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&hash).expect("a PHC string");
        let argon = argon2::Argon2::default();
        assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
        assert!(argon.verify_password(b"correct horse ", &parsed).is_err());
        assert!(hash_password("short").is_err());
    }
}
