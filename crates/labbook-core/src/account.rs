//! Accounts of a team server: users who sign in with a password or a token.
//! The store keeps only what verifies a secret (a password's Argon2 hash, a
//! token's BLAKE3 digest), never the secret itself.

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// A user as listed: never their password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub created_ms: i64,
}

/// An API token as listed: never the token, nor its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    pub user: String,
    /// What the owner calls it ("cluster", "laptop").
    pub name: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// A user name: 1–64 letters, digits, `.`, `_`, `-` or `@`, so it is safe
/// in HTTP Basic credentials (no `:`), in a URL and in a terminal.
pub fn validate_user_name(name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new("user", "must not be empty"));
    }
    if name.len() > 64 {
        return Err(ValidationError::new(
            "user",
            format!("is {} bytes; the limit is 64", name.len()),
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(ValidationError::new(
            "user",
            format!("{c:?} is not allowed: use letters, digits, '.', '_', '-' or '@'"),
        ));
    }
    Ok(())
}

/// A password: 8 to 1024 bytes (a longer one only costs the hash time).
pub fn validate_password(password: &str) -> Result<(), ValidationError> {
    if password.len() < 8 {
        return Err(ValidationError::new(
            "password",
            "is shorter than 8 characters",
        ));
    }
    if password.len() > 1024 {
        return Err(ValidationError::new(
            "password",
            "is longer than 1024 bytes",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_basic_credentials() {
        for good in ["ada", "a.lovelace@lab", "build-bot_2"] {
            assert!(validate_user_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a:b", "a b", "ü", &"x".repeat(65)] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }
}
