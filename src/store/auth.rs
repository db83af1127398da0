//! Who may get in, as stored: password hashes per role, server-side sessions, login throttling
//! per client address, and the audit log.
//!
//! Only digests of session ids are stored (see `crate::auth::token_digest`); this module never
//! sees a password, only argon2id PHC strings. Policy (expiry, delays) is decided by the callers:
//! here are the rows.
use super::{Store, StoreError, sql_err};
use crate::auth::{Failures, Role};
use rusqlite::{OptionalExtension, params};

/// The audit log keeps this many newest rows; older ones are pruned as new ones arrive, so a
/// brute-force attempt cannot fill the SD card.
pub const AUDIT_KEEP: i64 = 10_000;

/// A stored session, looked up by the digest of its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    pub id_digest: String,
    pub role: Role,
    pub csrf: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub client: String,
}

/// One audit log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    /// "admin", "viewer", "anonymous" or "shell".
    pub actor: String,
    /// The client address, or "shell".
    pub client: String,
    pub action: String,
    pub detail: String,
}

/// A new audit entry (the id and nothing else is assigned by the store).
#[derive(Clone, Debug)]
pub struct AuditEntry<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub client: &'a str,
    pub action: &'a str,
    pub detail: &'a str,
}

fn role_from_sql(s: String) -> rusqlite::Result<Role> {
    Role::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown role {s:?}").into(),
        )
    })
}

impl Store {
    /// The PHC hash of `role`'s password, if one was set.
    pub fn password_hash(&self, role: Role) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT phc FROM auth_passwords WHERE role = ?1",
                [role.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err(&self.path, "reading a password hash"))
    }

    /// Sets the first admin password; false (and nothing changed) if one exists already, so two
    /// browsers racing through the setup page cannot overwrite each other.
    pub fn set_initial_admin_password(&self, phc: &str, now: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute(
                "INSERT INTO auth_passwords (role, phc, changed_at) VALUES ('admin', ?1, ?2)
                 ON CONFLICT (role) DO NOTHING",
                params![phc, now],
            )
            .map_err(sql_err(&self.path, "setting the admin password"))?;
        Ok(n == 1)
    }

    /// Sets or replaces `role`'s password and ends every session of that role: a reset password
    /// must lock out whoever knew the old one.
    pub fn set_password(&self, role: Role, phc: &str, now: i64) -> Result<usize, StoreError> {
        let op = "setting a password";
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql_err(&self.path, op))?;
        tx.execute(
            "INSERT INTO auth_passwords (role, phc, changed_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (role) DO UPDATE SET phc = excluded.phc, changed_at = excluded.changed_at",
            params![role.as_str(), phc, now],
        )
        .map_err(sql_err(&self.path, op))?;
        let ended = tx
            .execute("DELETE FROM sessions WHERE role = ?1", [role.as_str()])
            .map_err(sql_err(&self.path, op))?;
        tx.commit().map_err(sql_err(&self.path, op))?;
        Ok(ended)
    }

    pub fn insert_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO sessions (id_digest, role, csrf, created_at, last_seen, client)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    s.id_digest,
                    s.role.as_str(),
                    s.csrf,
                    s.created_at,
                    s.last_seen,
                    s.client
                ],
            )
            .map_err(sql_err(&self.path, "creating a session"))?;
        Ok(())
    }

    pub fn session(&self, id_digest: &str) -> Result<Option<SessionRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT id_digest, role, csrf, created_at, last_seen, client
                 FROM sessions WHERE id_digest = ?1",
                [id_digest],
                |r| {
                    Ok(SessionRow {
                        id_digest: r.get(0)?,
                        role: role_from_sql(r.get(1)?)?,
                        csrf: r.get(2)?,
                        created_at: r.get(3)?,
                        last_seen: r.get(4)?,
                        client: r.get(5)?,
                    })
                },
            )
            .optional()
            .map_err(sql_err(&self.path, "reading a session"))
    }

    pub fn touch_session(&self, id_digest: &str, now: i64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE sessions SET last_seen = ?2 WHERE id_digest = ?1",
                params![id_digest, now],
            )
            .map_err(sql_err(&self.path, "refreshing a session"))?;
        Ok(())
    }

    pub fn delete_session(&self, id_digest: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .execute("DELETE FROM sessions WHERE id_digest = ?1", [id_digest])
            .map_err(sql_err(&self.path, "ending a session"))?;
        Ok(n > 0)
    }

    /// Ends every session except `keep`; returns how many ended.
    pub fn delete_other_sessions(&self, keep: &str) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE id_digest <> ?1", [keep])
            .map_err(sql_err(&self.path, "ending other sessions"))
    }

    /// Removes sessions idle since before `idle_before` or created before `created_before`.
    pub fn delete_expired_sessions(
        &self,
        idle_before: i64,
        created_before: i64,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM sessions WHERE last_seen < ?1 OR created_at < ?2",
                params![idle_before, created_before],
            )
            .map_err(sql_err(&self.path, "removing expired sessions"))
    }

    pub fn session_count(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .map_err(sql_err(&self.path, "counting sessions"))
    }

    /// Recent login failures of a client address (none recorded: all zero).
    pub fn login_failures(&self, client: &str) -> Result<Failures, StoreError> {
        self.conn
            .query_row(
                "SELECT failures, last_failure, locked FROM login_throttle WHERE client = ?1",
                [client],
                |r| {
                    Ok(Failures {
                        count: r.get(0)?,
                        last_at: r.get(1)?,
                        locked: r.get(2)?,
                    })
                },
            )
            .optional()
            .map(Option::unwrap_or_default)
            .map_err(sql_err(&self.path, "reading login failures"))
    }

    pub fn set_login_failures(&self, client: &str, f: &Failures) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO login_throttle (client, failures, last_failure, locked)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (client) DO UPDATE SET failures = excluded.failures,
                     last_failure = excluded.last_failure, locked = excluded.locked",
                params![client, f.count, f.last_at, f.locked],
            )
            .map_err(sql_err(&self.path, "recording a login failure"))?;
        Ok(())
    }

    /// Forgets a client's failures after a successful login. A locked address stays locked
    /// (it never gets as far as a successful login).
    pub fn clear_login_failures(&self, client: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM login_throttle WHERE client = ?1 AND locked = 0",
                [client],
            )
            .map_err(sql_err(&self.path, "clearing login failures"))?;
        Ok(())
    }

    /// Addresses currently locked out, with their failure counts.
    pub fn locked_clients(&self) -> Result<Vec<(String, u32)>, StoreError> {
        let op = "listing locked addresses";
        let mut st = self
            .conn
            .prepare("SELECT client, failures FROM login_throttle WHERE locked = 1 ORDER BY client")
            .map_err(sql_err(&self.path, op))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(sql_err(&self.path, op))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql_err(&self.path, op))
    }

    /// Clears the lockout and failures of one address (or of every address); returns the
    /// addresses that were locked.
    pub fn unlock(&self, client: Option<&str>) -> Result<Vec<String>, StoreError> {
        let op = "clearing a login lockout";
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(sql_err(&self.path, op))?;
        let locked: Vec<String> = {
            let mut st = tx
                .prepare(
                    "SELECT client FROM login_throttle WHERE locked = 1
                     AND (?1 IS NULL OR client = ?1) ORDER BY client",
                )
                .map_err(sql_err(&self.path, op))?;
            let rows = st
                .query_map([client], |r| r.get(0))
                .map_err(sql_err(&self.path, op))?;
            rows.collect::<Result<_, _>>()
                .map_err(sql_err(&self.path, op))?
        };
        tx.execute(
            "DELETE FROM login_throttle WHERE ?1 IS NULL OR client = ?1",
            [client],
        )
        .map_err(sql_err(&self.path, op))?;
        tx.commit().map_err(sql_err(&self.path, op))?;
        Ok(locked)
    }

    /// Appends to the audit log and prunes it to the newest [`AUDIT_KEEP`] rows.
    pub fn audit(&self, e: &AuditEntry<'_>) -> Result<(), StoreError> {
        let op = "writing the audit log";
        self.conn
            .execute(
                "INSERT INTO audit_log (at, actor, client, action, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.at, e.actor, e.client, e.action, e.detail],
            )
            .map_err(sql_err(&self.path, op))?;
        // Pruning every hundredth insert keeps the common insert a single-row write.
        if self.conn.last_insert_rowid() % 100 == 0 {
            self.prune_audit(AUDIT_KEEP)?;
        }
        Ok(())
    }

    /// Deletes all but the newest `keep` audit rows.
    pub fn prune_audit(&self, keep: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM audit_log WHERE id <= (SELECT max(id) FROM audit_log) - ?1",
                [keep],
            )
            .map_err(sql_err(&self.path, "pruning the audit log"))
    }

    /// The newest audit entries first.
    pub fn audit_recent(&self, limit: u32) -> Result<Vec<AuditRow>, StoreError> {
        let op = "reading the audit log";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, client, action, detail FROM audit_log
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(sql_err(&self.path, op))?;
        let rows = st
            .query_map([limit], |r| {
                Ok(AuditRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    client: r.get(3)?,
                    action: r.get(4)?,
                    detail: r.get(5)?,
                })
            })
            .map_err(sql_err(&self.path, op))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql_err(&self.path, op))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        (dir, s)
    }

    fn session(id: &str, role: Role) -> SessionRow {
        SessionRow {
            id_digest: id.into(),
            role,
            csrf: format!("csrf-{id}"),
            created_at: 100,
            last_seen: 100,
            client: "192.0.2.1".into(),
        }
    }

    #[test]
    fn initial_admin_is_set_once_and_reset_ends_sessions() {
        let (_d, s) = store();
        assert_eq!(s.password_hash(Role::Admin).unwrap(), None);
        assert!(s.set_initial_admin_password("h1", 1).unwrap());
        assert!(!s.set_initial_admin_password("h2", 2).unwrap());
        assert_eq!(s.password_hash(Role::Admin).unwrap().as_deref(), Some("h1"));
        s.insert_session(&session("a", Role::Admin)).unwrap();
        s.insert_session(&session("v", Role::Viewer)).unwrap();
        assert_eq!(s.set_password(Role::Admin, "h3", 3).unwrap(), 1);
        assert_eq!(s.password_hash(Role::Admin).unwrap().as_deref(), Some("h3"));
        assert!(s.session("a").unwrap().is_none());
        assert_eq!(s.session("v").unwrap(), Some(session("v", Role::Viewer)));
    }

    #[test]
    fn sessions_expire_touch_and_end_others() {
        let (_d, s) = store();
        for id in ["a", "b", "c"] {
            s.insert_session(&session(id, Role::Admin)).unwrap();
        }
        s.touch_session("a", 500).unwrap();
        assert_eq!(s.session("a").unwrap().unwrap().last_seen, 500);
        assert_eq!(s.delete_expired_sessions(200, 0).unwrap(), 2);
        s.insert_session(&session("d", Role::Viewer)).unwrap();
        assert_eq!(s.delete_other_sessions("a").unwrap(), 1);
        assert_eq!(s.session_count().unwrap(), 1);
        assert!(s.delete_session("a").unwrap());
        assert!(!s.delete_session("a").unwrap());
    }

    #[test]
    fn lockouts_are_cleared_per_address_or_all() {
        let (_d, s) = store();
        let locked = Failures {
            count: 20,
            last_at: 9,
            locked: true,
        };
        s.set_login_failures("10.0.0.5", &locked).unwrap();
        s.set_login_failures("10.0.0.6", &locked).unwrap();
        s.clear_login_failures("10.0.0.5").unwrap();
        assert_eq!(s.login_failures("10.0.0.5").unwrap(), locked);
        assert_eq!(s.locked_clients().unwrap().len(), 2);
        assert_eq!(s.unlock(Some("10.0.0.5")).unwrap(), ["10.0.0.5"]);
        assert_eq!(s.login_failures("10.0.0.5").unwrap(), Failures::default());
        assert_eq!(s.unlock(None).unwrap(), ["10.0.0.6"]);
        assert!(s.locked_clients().unwrap().is_empty());
    }

    #[test]
    fn audit_is_newest_first_and_pruned() {
        let (_d, s) = store();
        for i in 0..20 {
            s.audit(&AuditEntry {
                at: i,
                actor: "admin",
                client: "192.0.2.1",
                action: "login",
                detail: "",
            })
            .unwrap();
        }
        let recent = s.audit_recent(2).unwrap();
        assert_eq!((recent[0].at, recent[1].at), (19, 18));
        assert_eq!(s.prune_audit(5).unwrap(), 15);
        let left = s.audit_recent(100).unwrap();
        assert_eq!(left.len(), 5);
        assert_eq!(left[4].at, 15);
    }
}
