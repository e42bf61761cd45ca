//! Users, API tokens and roles in PostgreSQL (`sqlite/accounts.rs` explains
//! them).

use postgres::Row;

use labbook_core::account::{Permission, ResourceKind, Role, TokenInfo, User, validate_user_name};
use labbook_core::run::validate_name;

use super::{Db, PgStore};
use crate::error::{Result, StoreError};
use crate::types::SigninFailures;

fn user_from_row(r: &Row) -> Result<User> {
    Ok(User {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        created_ms: r.try_get(2)?,
        admin: r.try_get(3)?,
    })
}

const USER_COLUMNS: &str = "u.id, u.name, u.created_ms, u.admin";

fn token_from_row(r: &Row) -> Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        name: r.try_get(2)?,
        created_ms: r.try_get(3)?,
        revoked_ms: r.try_get(4)?,
        expires_ms: r.try_get(5)?,
    })
}

const TOKEN_COLUMNS: &str = "t.id, u.name, t.name, t.created_ms, t.revoked_ms, t.expires_ms";

impl PgStore {
    pub fn signin_failures(
        &self,
        guessers: &[String],
        since_ms: i64,
    ) -> Result<Vec<SigninFailures>> {
        self.read_rows(
            "SELECT guesser, count, since_ms FROM signin_failures
             WHERE guesser = ANY($1) AND since_ms > $2",
            &[&guessers, &since_ms],
        )?
        .iter()
        .map(|r| {
            Ok(SigninFailures {
                guesser: r.try_get(0)?,
                count: u32::try_from(r.try_get::<_, i64>(1)?).unwrap_or(u32::MAX),
                since_ms: r.try_get(2)?,
            })
        })
        .collect()
    }

    pub fn record_signin_failure(
        &self,
        guessers: &[String],
        now_ms: i64,
        window_ms: i64,
    ) -> Result<()> {
        let fresh_after = now_ms - window_ms;
        self.write(|db| {
            // Windows that ended are forgotten here, so guessers with many
            // names or addresses cannot grow the table past one window's worth.
            db.exec(
                "DELETE FROM signin_failures WHERE since_ms <= $1",
                &[&fresh_after],
            )?;
            db.exec(
                "INSERT INTO signin_failures (guesser, since_ms, count)
                 SELECT g, $2, 1 FROM unnest($1::text[]) AS g
                 ON CONFLICT (guesser) DO UPDATE SET
                     count = CASE WHEN signin_failures.since_ms > $3 THEN signin_failures.count + 1 ELSE 1 END,
                     since_ms = CASE WHEN signin_failures.since_ms > $3 THEN signin_failures.since_ms ELSE $2 END",
                &[&guessers, &now_ms, &fresh_after],
            )?;
            Ok(())
        })
    }

    pub fn forget_signin_failures(&self, guesser: &str) -> Result<()> {
        self.write(|db| {
            db.exec(
                "DELETE FROM signin_failures WHERE guesser = $1",
                &[&guesser],
            )?;
            Ok(())
        })
    }

    pub fn create_user(&self, name: &str, password_hash: &str, now_ms: i64) -> Result<User> {
        validate_user_name(name)?;
        self.write(|db| {
            let row = db.row(
                "INSERT INTO users (name, password_hash, created_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO NOTHING RETURNING id",
                &[&name, &password_hash, &now_ms],
            )?;
            let Some(row) = row else {
                return Err(StoreError::Conflict(format!(
                    "user {name:?} already exists"
                )));
            };
            Ok(User {
                id: row.try_get(0)?,
                name: name.to_string(),
                created_ms: now_ms,
                admin: false,
            })
        })
    }

    pub fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        self.write(|db| {
            let changed = db.exec(
                "UPDATE users SET password_hash = $2 WHERE name = $1",
                &[&name, &password_hash],
            )?;
            if changed == 0 {
                return Err(no_user(name));
            }
            Ok(())
        })
    }

    pub fn users(&self) -> Result<Vec<User>> {
        self.read(|db| {
            db.rows(
                &format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"),
                &[],
            )?
            .iter()
            .map(user_from_row)
            .collect()
        })
    }

    pub fn delete_user(&self, name: &str) -> Result<()> {
        self.write(|db| {
            let id = user_id(db, name)?;
            db.exec("DELETE FROM tokens WHERE user_id = $1", &[&id])?;
            db.exec("DELETE FROM permissions WHERE user_id = $1", &[&id])?;
            db.exec("DELETE FROM users WHERE id = $1", &[&id])?;
            Ok(())
        })
    }

    pub fn password_hash(&self, name: &str) -> Result<Option<(User, String)>> {
        self.read_rows(
            &format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = $1"),
            &[&name],
        )?
        .pop()
        .map(|r| Ok((user_from_row(&r)?, r.try_get::<_, String>(4)?)))
        .transpose()
    }

    pub fn create_token(
        &self,
        user: &str,
        name: &str,
        digest: &str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<TokenInfo> {
        validate_name("name", name)?;
        self.write(|db| {
            let user_id = user_id(db, user)?;
            // Expired tokens (old dashboard sessions) go as new ones come.
            db.exec(
                "DELETE FROM tokens WHERE expires_ms IS NOT NULL AND expires_ms <= $1",
                &[&now_ms],
            )?;
            let id: i64 = db
                .one(
                    "INSERT INTO tokens (user_id, name, digest, created_ms, expires_ms)
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                    &[&user_id, &name, &digest, &now_ms, &expires_ms],
                )?
                .try_get(0)?;
            Ok(TokenInfo {
                id,
                user: user.to_string(),
                name: name.to_string(),
                created_ms: now_ms,
                revoked_ms: None,
                expires_ms,
            })
        })
    }

    pub fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>> {
        self.read(|db| {
            db.rows(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id
                     WHERE $1::TEXT IS NULL OR u.name = $1 ORDER BY t.id"
                ),
                &[&user],
            )?
            .iter()
            .map(token_from_row)
            .collect()
        })
    }

    pub fn revoke_token(&self, id: i64, now_ms: i64) -> Result<TokenInfo> {
        self.write(|db| {
            db.exec(
                "UPDATE tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL",
                &[&id, &now_ms],
            )?;
            db.row(
                &format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.id = $1"
                ),
                &[&id],
            )?
            .map(|r| token_from_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound {
                what: "token",
                id: id.to_string(),
            })
        })
    }

    pub fn revoke_token_digest(&self, digest: &str, now_ms: i64) -> Result<bool> {
        self.write(|db| {
            Ok(db.exec(
                "UPDATE tokens SET revoked_ms = $2 WHERE digest = $1 AND revoked_ms IS NULL",
                &[&digest, &now_ms],
            )? > 0)
        })
    }

    pub fn user_of_token(&self, digest: &str, now_ms: i64) -> Result<Option<User>> {
        self.read_rows(
            &format!(
                "SELECT {USER_COLUMNS} FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.digest = $1 AND t.revoked_ms IS NULL
                     AND (t.expires_ms IS NULL OR t.expires_ms > $2)"
            ),
            &[&digest, &now_ms],
        )?
        .pop()
        .map(|r| user_from_row(&r))
        .transpose()
    }

    pub fn set_admin(&self, name: &str, admin: bool) -> Result<()> {
        self.write(|db| {
            let changed = db.exec(
                "UPDATE users SET admin = $2 WHERE name = $1",
                &[&name, &admin],
            )?;
            if changed == 0 {
                return Err(no_user(name));
            }
            Ok(())
        })
    }

    pub fn set_permission(
        &self,
        user: &str,
        kind: ResourceKind,
        resource: &str,
        role: Role,
    ) -> Result<Permission> {
        self.write(|db| {
            let user_id = user_id(db, user)?;
            db.exec(
                "INSERT INTO permissions (user_id, kind, resource, role) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id, kind, resource) DO UPDATE SET role = excluded.role",
                &[&user_id, &kind.as_str(), &resource, &role.as_str()],
            )?;
            Ok(Permission {
                user: user.to_string(),
                kind,
                resource: resource.to_string(),
                role,
            })
        })
    }

    pub fn remove_permission(&self, user: &str, kind: ResourceKind, resource: &str) -> Result<()> {
        self.write(|db| {
            let user_id = user_id(db, user)?;
            let removed = db.exec(
                "DELETE FROM permissions WHERE user_id = $1 AND kind = $2 AND resource = $3",
                &[&user_id, &kind.as_str(), &resource],
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

    pub fn permissions(&self, user: Option<&str>) -> Result<Vec<Permission>> {
        let rows: Vec<(String, String, String, String)> = self
            .read_rows(
                "SELECT u.name, p.kind, p.resource, p.role FROM permissions p
                 JOIN users u ON u.id = p.user_id
                 WHERE $1::TEXT IS NULL OR u.name = $1 ORDER BY u.name, p.kind, p.resource",
                &[&user],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<_>>()?;
        rows.into_iter()
            .map(|(user, kind, resource, role)| {
                crate::sqlite::stored_permission(user, &kind, resource, &role)
            })
            .collect()
    }

    pub fn move_permissions(&self, kind: ResourceKind, from: &str, to: Option<&str>) -> Result<()> {
        self.write(|db| {
            match to {
                Some(to) => db.exec(
                    "UPDATE permissions SET resource = $3 WHERE kind = $1 AND resource = $2",
                    &[&kind.as_str(), &from, &to],
                )?,
                None => db.exec(
                    "DELETE FROM permissions WHERE kind = $1 AND resource = $2",
                    &[&kind.as_str(), &from],
                )?,
            };
            Ok(())
        })
    }
}

fn user_id(db: &mut Db<'_>, name: &str) -> Result<i64> {
    db.row("SELECT id FROM users WHERE name = $1", &[&name])?
        .map(|r| r.try_get(0))
        .transpose()?
        .ok_or_else(|| no_user(name))
}

fn no_user(name: &str) -> StoreError {
    StoreError::NotFound {
        what: "user",
        id: name.to_string(),
    }
}
