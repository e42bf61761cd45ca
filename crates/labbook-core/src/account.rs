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
    /// An admin may do everything on every project and model, and is the
    /// only one who may change who else may.
    #[serde(default)]
    pub admin: bool,
}

/// What a user may do with a project (an MLflow experiment) or a registered
/// model, in MLflow's terms; each level includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// Not even that it exists.
    NoPermissions,
    /// See it, its runs, curves, files and notes.
    Read,
    /// Log to it: start runs, log points, tags, files and notes, rename.
    Edit,
    /// Delete and restore runs, delete the project or model.
    Manage,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::NoPermissions, Role::Read, Role::Edit, Role::Manage];

    /// MLflow's name for it (`READ`, `NO_PERMISSIONS`), also how the store
    /// and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::NoPermissions => "NO_PERMISSIONS",
            Role::Read => "READ",
            Role::Edit => "EDIT",
            Role::Manage => "MANAGE",
        }
    }

    /// Reads MLflow's names, in any case; `none` also names `NO_PERMISSIONS`.
    pub fn parse(text: &str) -> Result<Role, ValidationError> {
        let upper = text.trim().to_ascii_uppercase();
        if upper == "NONE" {
            return Ok(Role::NoPermissions);
        }
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == upper)
            .ok_or_else(|| {
                ValidationError::new(
                    "role",
                    format!("{text:?} is not a role: use READ, EDIT, MANAGE or NO_PERMISSIONS"),
                )
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a permission is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    /// A project, by its id (projects are never purged, so ids are not
    /// reused).
    Project,
    /// A registered model, by its name.
    Model,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Project => "project",
            ResourceKind::Model => "model",
        }
    }

    pub fn parse(text: &str) -> Option<ResourceKind> {
        match text {
            "project" => Some(ResourceKind::Project),
            "model" => Some(ResourceKind::Model),
            _ => None,
        }
    }
}

/// One user's role on one project or registered model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub user: String,
    pub kind: ResourceKind,
    /// The project's id (decimal) or the registered model's name.
    pub resource: String,
    pub role: Role,
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
    /// When it stops working by itself (a dashboard session).
    #[serde(default)]
    pub expires_ms: Option<i64>,
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
    fn roles_read_mlflow_names_and_order_by_power() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
            assert_eq!(Role::parse(&role.as_str().to_lowercase()).unwrap(), role);
        }
        assert_eq!(Role::parse("none").unwrap(), Role::NoPermissions);
        assert!(Role::parse("OWNER").is_err());
        assert!(Role::NoPermissions < Role::Read && Role::Read < Role::Edit);
        assert!(Role::Edit < Role::Manage);
    }

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
