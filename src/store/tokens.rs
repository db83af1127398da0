//! API tokens as stored: a name, a role, the SHA-256 digest of the secret and its first
//! characters, when it was made, last used and revoked.
//!
//! This module never sees a token's secret, only its digest (see `crate::auth::token_digest`),
//! so a copied database holds no usable token. Policy (who may create one, how the secret is
//! made and shown) belongs to the callers.
use super::{Store, StoreError, sql_err};
use crate::auth::Role;
use rusqlite::{OptionalExtension, params};

/// Most tokens (revoked ones included) a database keeps: a script creating tokens in a loop
/// cannot fill the SD card.
pub const TOKENS_MAX: i64 = 1000;

/// One stored token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The first characters of the secret, to tell tokens apart.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A token to insert.
#[derive(Clone, Debug)]
pub struct NewToken<'a> {
    pub name: &'a str,
    pub role: Role,
    pub digest: &'a str,
    pub prefix: &'a str,
    pub now: i64,
}

const COLUMNS: &str = "id, name, role, prefix, created_at, last_used_at, revoked_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    let role: String = r.get(2)?;
    Ok(TokenRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role: Role::parse(&role).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("unknown role {role:?}").into(),
            )
        })?,
        prefix: r.get(3)?,
        created_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

impl Store {
    /// Stores a new token and returns it; `None` when [`TOKENS_MAX`] tokens exist already.
    pub fn create_token(&self, t: &NewToken<'_>) -> Result<Option<TokenRow>, StoreError> {
        let e = sql_err(&self.path, "creating an API token");
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM api_tokens", [], |r| r.get(0))
            .map_err(sql_err(&self.path, "counting API tokens"))?;
        if n >= TOKENS_MAX {
            return Ok(None);
        }
        self.conn
            .query_row(
                &format!(
                    "INSERT INTO api_tokens (name, role, digest, prefix, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING {COLUMNS}"
                ),
                params![t.name, t.role.as_str(), t.digest, t.prefix, t.now],
                row,
            )
            .map(Some)
            .map_err(e)
    }

    /// Every token, newest first.
    pub fn list_tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let e = sql_err(&self.path, "listing API tokens");
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_tokens ORDER BY id DESC"
            ))
            .and_then(|mut st| st.query_map([], row)?.collect())
            .map_err(e)
    }

    /// Marks a token revoked; its row is kept. Returns the token, `None` if there is no such id.
    /// Revoking a revoked token keeps the first revocation time.
    pub fn revoke_token(&self, id: i64, now: i64) -> Result<Option<TokenRow>, StoreError> {
        let e = sql_err(&self.path, "revoking an API token");
        self.conn
            .query_row(
                &format!(
                    "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, ?2) WHERE id = ?1
                     RETURNING {COLUMNS}"
                ),
                params![id, now],
                row,
            )
            .optional()
            .map_err(e)
    }

    /// The live (not revoked) token with this digest.
    pub fn token_by_digest(&self, digest: &str) -> Result<Option<TokenRow>, StoreError> {
        let e = sql_err(&self.path, "looking up an API token");
        self.conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM api_tokens WHERE digest = ?1 AND revoked_at IS NULL"
            ))
            .and_then(|mut st| st.query_row(params![digest], row).optional())
            .map_err(e)
    }

    /// Records that a token was used (callers throttle how often).
    pub fn touch_token(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map_err(sql_err(&self.path, "recording API token use"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_digest_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        let t = s
            .create_token(&NewToken {
                name: "grafana",
                role: Role::Viewer,
                digest: "d1",
                prefix: "lm_ab",
                now: 10,
            })
            .unwrap()
            .unwrap();
        assert_eq!(
            (t.name.as_str(), t.role, t.revoked_at),
            ("grafana", Role::Viewer, None)
        );
        assert_eq!(s.token_by_digest("d1").unwrap().unwrap().id, t.id);
        assert!(s.token_by_digest("d2").unwrap().is_none());
        s.touch_token(t.id, 20).unwrap();
        assert_eq!(s.list_tokens().unwrap()[0].last_used_at, Some(20));
        assert_eq!(
            s.revoke_token(t.id, 30).unwrap().unwrap().revoked_at,
            Some(30)
        );
        assert_eq!(
            s.revoke_token(t.id, 40).unwrap().unwrap().revoked_at,
            Some(30)
        );
        assert!(s.token_by_digest("d1").unwrap().is_none());
        assert!(s.revoke_token(999, 1).unwrap().is_none());
        assert_eq!(s.list_tokens().unwrap().len(), 1, "revoked rows are kept");
    }
}
