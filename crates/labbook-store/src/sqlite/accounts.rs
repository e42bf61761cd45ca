//! Users and API tokens (`labbook user`, `labbook token`, `serve --auth`).

use rusqlite::{OptionalExtension, params};

use labbook_core::account::{TokenInfo, User, validate_user_name};
use labbook_core::run::validate_name;

use super::SqliteStore;
use crate::error::{Result, StoreError};

fn user_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        created_ms: r.get(2)?,
    })
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    Ok(TokenInfo {
        id: r.get(0)?,
        user: r.get(1)?,
        name: r.get(2)?,
        created_ms: r.get(3)?,
        revoked_ms: r.get(4)?,
    })
}

const TOKEN_COLUMNS: &str = "t.id, u.name, t.name, t.created_ms, t.revoked_ms";

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
        let mut stmt =
            conn.prepare_cached("SELECT id, name, created_ms FROM users ORDER BY name")?;
        let users = stmt
            .query_map([], user_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(users)
    }

    pub(super) fn delete_user_impl(&self, name: &str) -> Result<()> {
        self.write(|tx| {
            let id = user_id(tx, name)?;
            tx.execute("DELETE FROM tokens WHERE user_id = ?1", [id])?;
            tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    pub(super) fn password_hash_impl(&self, name: &str) -> Result<Option<(User, String)>> {
        let conn = self.conn.lock();
        Ok(conn
            .prepare_cached(
                "SELECT id, name, created_ms, password_hash FROM users WHERE name = ?1",
            )?
            .query_row([name], |r| Ok((user_from_row(r)?, r.get::<_, String>(3)?)))
            .optional()?)
    }

    pub(super) fn create_token_impl(
        &self,
        user: &str,
        name: &str,
        digest: &str,
        now_ms: i64,
    ) -> Result<TokenInfo> {
        validate_name("name", name)?;
        self.write(|tx| {
            let user_id = user_id(tx, user)?;
            tx.execute(
                "INSERT INTO tokens (user_id, name, digest, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![user_id, name, digest, now_ms],
            )?;
            Ok(TokenInfo {
                id: tx.last_insert_rowid(),
                user: user.to_string(),
                name: name.to_string(),
                created_ms: now_ms,
                revoked_ms: None,
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

    pub(super) fn user_of_token_impl(&self, digest: &str) -> Result<Option<User>> {
        let conn = self.conn.lock();
        Ok(conn
            .prepare_cached(
                "SELECT u.id, u.name, u.created_ms FROM tokens t JOIN users u ON u.id = t.user_id
                 WHERE t.digest = ?1 AND t.revoked_ms IS NULL",
            )?
            .query_row([digest], user_from_row)
            .optional()?)
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
