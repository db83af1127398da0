//! Who may get in, as stored: password hashes per role, server-side sessions, login throttling
//! per client address, and the audit log.
//!
//! Only digests of session ids are stored (see `crate::auth::token_digest`); this module never
//! sees a password, only argon2id PHC strings. Policy (expiry, delays) is decided by the callers:
//! here are the rows.
use super::{Store, StoreError, sql_err};
use crate::auth::{Failures, Role, Throttle, Verdict};
use rusqlite::{OptionalExtension, params};

/// The audit log keeps this many newest security events (logins, setup, password and token
/// changes, lockouts); older ones are pruned as new ones arrive.
pub const AUDIT_KEEP: i64 = 10_000;
/// Failed and refused logins are kept apart, this many newest: anyone on the LAN can cause them,
/// so they must neither fill the SD card nor push the events above out of the log.
pub const AUDIT_KEEP_FAILURES: i64 = 2_000;
/// The actions an anonymous client can cause at will, kept under [`AUDIT_KEEP_FAILURES`].
pub const FAILURE_ACTIONS: [&str; 3] = ["login failed", "login refused", "setup code wrong"];
/// Attempts refused by the throttle are summed into one row per address and this many seconds.
pub const REFUSED_WINDOW_SECS: i64 = 600;

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
        read_failures(&self.conn, client).map_err(sql_err(&self.path, "reading login failures"))
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

    /// Decides whether `client` may have a password checked now and, if so, counts the attempt
    /// as a failure in the same write transaction, before anything is checked: parallel
    /// attempts from one address are serialised here, so none can slip past the count. The
    /// caller forgives it with [`Store::login_succeeded`]. Returns the verdict and the failures
    /// as they now stand.
    pub fn claim_login_attempt(
        &mut self,
        client: &str,
        now: i64,
        throttle: &Throttle,
    ) -> Result<(Verdict, Failures), StoreError> {
        let op = "recording a login attempt";
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(&path, op))?;
        let before = read_failures(&tx, client).map_err(sql_err(&path, op))?;
        let verdict = throttle.verdict(&before, now);
        if verdict != Verdict::Allow {
            return Ok((verdict, before));
        }
        let after = throttle.after_failure(&before, now);
        tx.execute(
            "INSERT INTO login_throttle (client, failures, last_failure, locked)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (client) DO UPDATE SET failures = excluded.failures,
                 last_failure = excluded.last_failure, locked = excluded.locked",
            params![client, after.count, after.last_at, after.locked],
        )
        .map_err(sql_err(&path, op))?;
        tx.commit().map_err(sql_err(&path, op))?;
        Ok((verdict, after))
    }

    /// The password was right: the attempt claimed for it (and the address's earlier failures)
    /// are forgiven, even if that claim reached the lockout count.
    pub fn login_succeeded(&self, client: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM login_throttle WHERE client = ?1", [client])
            .map_err(sql_err(&self.path, "clearing login failures"))?;
        Ok(())
    }

    /// Counts `n` attempts refused by the throttle: one "login refused" row per address and
    /// [`REFUSED_WINDOW_SECS`], whose detail starts with the count (a flood writes one row).
    pub fn audit_refused(
        &self,
        client: &str,
        now: i64,
        why: &str,
        n: u32,
    ) -> Result<(), StoreError> {
        let op = "writing the audit log";
        let updated = self
            .conn
            .execute(
                "UPDATE audit_log SET detail = (CAST(detail AS INTEGER) + ?4) || ' attempts refused; last: ' || ?3
                 WHERE id = (SELECT id FROM audit_log WHERE action = 'login refused' AND client = ?1
                             AND at > ?2 ORDER BY id DESC LIMIT 1)",
                params![client, now - REFUSED_WINDOW_SECS, why, n],
            )
            .map_err(sql_err(&self.path, op))?;
        if updated == 0 {
            self.audit(&AuditEntry {
                at: now,
                actor: "anonymous",
                client,
                action: "login refused",
                detail: &format!("{n} attempts refused; last: {why}"),
            })?;
        }
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
            self.prune_audit(AUDIT_KEEP, AUDIT_KEEP_FAILURES)?;
        }
        Ok(())
    }

    /// Keeps the newest `keep` security events and, counted apart, the newest `keep_failures`
    /// failed or refused logins ([`FAILURE_ACTIONS`]); deletes the rest.
    pub fn prune_audit(&self, keep: i64, keep_failures: i64) -> Result<usize, StoreError> {
        let op = "pruning the audit log";
        let mut n = 0;
        for (negate, keep) in [("NOT", keep), ("", keep_failures)] {
            let sql = format!(
                "DELETE FROM audit_log WHERE action {negate} IN (?1, ?2, ?3) AND id < coalesce(
                   (SELECT id FROM audit_log WHERE action {negate} IN (?1, ?2, ?3)
                    ORDER BY id DESC LIMIT 1 OFFSET ?4 - 1), 0)"
            );
            let [a, b, c] = FAILURE_ACTIONS;
            n += self
                .conn
                .execute(&sql, params![a, b, c, keep])
                .map_err(sql_err(&self.path, op))?;
        }
        Ok(n)
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

/// A client address's recorded login failures (all zero when none are), read on a connection or
/// inside a caller's transaction.
fn read_failures(conn: &rusqlite::Connection, client: &str) -> rusqlite::Result<Failures> {
    conn.query_row(
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_failed_logins_cannot_push_out_security_events() {
        let (_d, s) = store();
        let entry = |at, action, detail| AuditEntry {
            at,
            actor: "anonymous",
            client: "192.0.2.66",
            action,
            detail,
        };
        s.audit(&AuditEntry {
            actor: "admin",
            ..entry(1, "token created", "ha (admin, lm_abcdef)")
        })
        .unwrap();
        let t = std::time::Instant::now();
        // One transaction: the same statements and pruning, without 11,000 fsyncs.
        let tx = s.conn.unchecked_transaction().unwrap();
        for i in 0..11_000 {
            s.audit(&entry(2 + i, "login failed", "wrong password"))
                .unwrap();
        }
        tx.commit().unwrap();
        eprintln!("11,000 failed logins audited in {:?}", t.elapsed());
        let all = s.audit_recent(100_000).unwrap();
        assert!(all.iter().any(|r| r.action == "token created"));
        let failed = all.iter().filter(|r| r.action == "login failed").count() as i64;
        assert!(
            (AUDIT_KEEP_FAILURES..AUDIT_KEEP_FAILURES + 100).contains(&failed),
            "{failed}"
        );
        // Ordinary events still have their own limit.
        assert_eq!(s.prune_audit(0, AUDIT_KEEP_FAILURES).unwrap(), 1);
    }

    #[test]
    fn refused_attempts_are_summed_per_address_and_window() {
        let (_d, s) = store();
        for i in 0..500 {
            s.audit_refused("192.0.2.7", 1_000 + i / 10, "wait", 1)
                .unwrap();
        }
        s.audit_refused("192.0.2.8", 1_000, "locked", 1).unwrap();
        s.audit_refused("192.0.2.7", 1_000 + REFUSED_WINDOW_SECS + 100, "locked", 1)
            .unwrap();
        let rows = s.audit_recent(100).unwrap();
        let details: Vec<(&str, &str)> = rows
            .iter()
            .map(|r| (r.client.as_str(), r.detail.as_str()))
            .collect();
        assert_eq!(
            details,
            [
                ("192.0.2.7", "1 attempts refused; last: locked"),
                ("192.0.2.8", "1 attempts refused; last: locked"),
                ("192.0.2.7", "500 attempts refused; last: wait"),
            ]
        );
    }

    #[test]
    fn a_claimed_attempt_counts_before_the_check_and_is_forgiven_on_success() {
        let (_d, mut s) = store();
        let t = Throttle::default();
        for i in 0..t.free_failures {
            let (v, f) = s.claim_login_attempt("192.0.2.9", 50, &t).unwrap();
            assert_eq!((v, f.count), (Verdict::Allow, i + 1));
        }
        let (v, f) = s.claim_login_attempt("192.0.2.9", 50, &t).unwrap();
        assert_eq!((v, f.count), (Verdict::Wait(1), t.free_failures));
        s.login_succeeded("192.0.2.9").unwrap();
        assert_eq!(s.login_failures("192.0.2.9").unwrap(), Failures::default());
    }

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
        assert_eq!(s.prune_audit(5, 5).unwrap(), 15);
        let left = s.audit_recent(100).unwrap();
        assert_eq!(left.len(), 5);
        assert_eq!(left[4].at, 15);
    }
}
