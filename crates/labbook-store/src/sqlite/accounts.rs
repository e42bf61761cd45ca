//! Users and API tokens (`labbook user`, `labbook token`, `serve --auth`).

use rusqlite::{OptionalExtension, params};

use labbook_core::account::{Permission, ResourceKind, Role, TokenInfo, User, validate_user_name};
use labbook_core::run::validate_name;

use super::SqliteStore;
use crate::error::{Result, StoreError};

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        created_ms: r.get(2)?,
        admin: r.get(3)?,
    })
}

const USER_COLUMNS: &str = "u.id, u.name, u.created_ms, u.admin";

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        user: r.get(1)?,
        name: r.get(2)?,
        created_ms: r.get(3)?,
        revoked_ms: r.get(4)?,
        expires_ms: r.get(5)?,
    })
}

const TOKEN_COLUMNS: &str = "t.id, u.name, t.name, t.created_ms, t.revoked_ms, t.expires_ms";

impl SqliteStore {
    pub(super) fn create_user_impl(
        &self,
        name: &str,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<User> {
        validate_user_name(name)?;
        self.write(|tx| {
            let exists: Option<i64> = tx
                .query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
                .optional()?;
            if exists.is_some() {
                return Err(StoreError::Conflict(format!(
                    "user {name:?} already exists"
                )));
            }
            tx.execute(
                "INSERT INTO users (name, password_hash, created_ms) VALUES (?1, ?2, ?3)",
                params![name, password_hash, now_ms],
            )?;
            Ok(User {
                id: tx.last_insert_rowid(),
                name: name.to_string(),
                created_ms: now_ms,
                admin: false,
            })
        })
    }

    pub(super) fn set_password_impl(&self, name: &str, password_hash: &str) -> Result<()> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )?;
            if changed == 0 {
                return Err(no_user(name));
            }
            Ok(())
        })
    }

    pub(super) fn users_impl(&self) -> Result<Vec<User>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
        ))?;
        let users = stmt
            .query_map([], user_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(users)
    }

    pub(super) fn delete_user_impl(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            let id = user_id(tx, name)?;
            tx.execute("DELETE FROM tokens WHERE user_id = ?1", [id])?;
            tx.execute("DELETE FROM permissions WHERE user_id = ?1", [id])?;
            tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    pub(super) fn password_hash_impl(&self, name: &str) -> Result<Option<(User, String)>> {
        let conn = self.conn.lock();
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = ?1"
            ))?
            .query_row([name], |r| Ok((user_from_row(r)?, r.get::<_, String>(4)?)))
            .optional()?)
    }

    pub(super) fn create_token_impl(
        &self,
        user: &str,
        name: &str,
        digest: &str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<TokenInfo> {
        validate_name("name", name)?;
        self.write(|tx| {
            let user_id = user_id(tx, user)?;
            // Expired tokens (old dashboard sessions) go as new ones come.
            tx.execute(
                "DELETE FROM tokens WHERE expires_ms IS NOT NULL AND expires_ms <= ?1",
                [now_ms],
            )?;
            tx.execute(
                "INSERT INTO tokens (user_id, name, digest, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![user_id, name, digest, now_ms, expires_ms],
            )?;
            Ok(TokenInfo {
                id: tx.last_insert_rowid(),
                user: user.to_string(),
                name: name.to_string(),
                created_ms: now_ms,
                revoked_ms: None,
                expires_ms,
            })
        })
    }

    pub(super) fn tokens_impl(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id
             WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id"
        ))?;
        let tokens = stmt
            .query_map([user], token_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(tokens)
    }

    pub(super) fn revoke_token_impl(&self, id: i64, now_ms: i64) -> Result<TokenInfo> {
        self.write(|tx| {
            tx.execute(
                "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms IS NULL",
                params![id, now_ms],
            )?;
            tx.query_row(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.id = ?1"
                ),
                [id],
                token_from_row,
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                what: "token",
                id: id.to_string(),
            })
        })
    }

    pub(super) fn revoke_token_digest_impl(&self, digest: &str, now_ms: i64) -> Result<bool> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE tokens SET revoked_ms = ?2 WHERE digest = ?1 AND revoked_ms IS NULL",
                params![digest, now_ms],
            )? > 0)
        })
    }

    pub(super) fn user_of_token_impl(&self, digest: &str, now_ms: i64) -> Result<Option<User>> {
        let conn = self.conn.lock();
        Ok(conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.digest = ?1 AND t.revoked_ms IS NULL
                     AND (t.expires_ms IS NULL OR t.expires_ms > ?2)"
            ))?
            .query_row(params![digest, now_ms], user_from_row)
            .optional()?)
    }

    pub(super) fn set_admin_impl(&self, name: &str, admin: bool) -> Result<()> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE users SET admin = ?2 WHERE name = ?1",
                params![name, admin],
            )?;
            if changed == 0 {
                return Err(no_user(name));
            }
            Ok(())
        })
    }

    pub(super) fn set_permission_impl(
        &self,
        user: &str,
        kind: ResourceKind,
        resource: &str,
        role: Role,
    ) -> Result<Permission> {
        self.write(|tx| {
            let user_id = user_id(tx, user)?;
            tx.execute(
                "INSERT INTO permissions (user_id, kind, resource, role) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id, kind, resource) DO UPDATE SET role = excluded.role",
                params![user_id, kind.as_str(), resource, role.as_str()],
            )?;
            Ok(Permission {
                user: user.to_string(),
                kind,
                resource: resource.to_string(),
                role,
            })
        })
    }

    pub(super) fn remove_permission_impl(
        &self,
        user: &str,
        kind: ResourceKind,
        resource: &str,
    ) -> Result<()> {
        self.write(|tx| {
            let user_id = user_id(tx, user)?;
            let removed = tx.execute(
                "DELETE FROM permissions WHERE user_id = ?1 AND kind = ?2 AND resource = ?3",
                params![user_id, kind.as_str(), resource],
            )?;
            if removed == 0 {
                return Err(StoreError::NotFound {
                    what: "permission",
                    id: format!("{user} on {} {resource}", kind.as_str()),
                });
            }
            Ok(())
        })
    }

    pub(super) fn permissions_impl(&self, user: Option<&str>) -> Result<Vec<Permission>> {
        let conn = self.conn.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT u.name, p.kind, p.resource, p.role FROM permissions p
             JOIN users u ON u.id = p.user_id
             WHERE ?1 IS NULL OR u.name = ?1 ORDER BY u.name, p.kind, p.resource",
        )?;
        let rows = stmt
            .query_map([user], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(user, kind, resource, role)| stored_permission(user, &kind, resource, &role))
            .collect()
    }

    pub(super) fn move_permissions_impl(
        &self,
        kind: ResourceKind,
        from: &str,
        to: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| {
            match to {
                Some(to) => tx.execute(
                    "UPDATE permissions SET resource = ?3 WHERE kind = ?1 AND resource = ?2",
                    params![kind.as_str(), from, to],
                )?,
                None => tx.execute(
                    "DELETE FROM permissions WHERE kind = ?1 AND resource = ?2",
                    params![kind.as_str(), from],
                )?,
            };
            Ok(())
        })
    }
}

fn user_id(tx: &rusqlite::Transaction<'_>, name: &str) -> Result<i64> {
    tx.query_row("SELECT id FROM users WHERE name = ?1", [name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| no_user(name))
}

fn no_user(name: &str) -> StoreError {
    StoreError::NotFound {
        what: "user",
        id: name.to_string(),
    }
}

/// A permission from its stored texts; a kind or role this labbook does not
/// know is an error, never a guess.
pub(crate) fn stored_permission(
    user: String,
    kind: &str,
    resource: String,
    role: &str,
) -> Result<Permission> {
    Ok(Permission {
        kind: ResourceKind::parse(kind).ok_or_else(|| {
            StoreError::Internal(format!("a permission is on an unknown kind {kind:?}"))
        })?,
        role: Role::parse(role).map_err(|_| {
            StoreError::Internal(format!("a permission has an unknown role {role:?}"))
        })?,
        user,
        resource,
    })
}
