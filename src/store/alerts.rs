//! Alerts and the outbox in SQLite: alert episodes with their lifecycle, the durable queue of
//! messages to send, the engine's small key/value state, and the "should always be online" flag.
//!
//! It stores what the alert engine decided; it never decides (cooldown, quiet hours, which rule
//! fires) and never sends anything. Times are Unix seconds. Every multi-row change is one
//! transaction, so a crash never leaves an alert marked queued without its outbox message.

use super::{Store, StoreError, sql_err};
use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

/// One alert episode as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub rule: String,
    pub subject: String,
    pub severity: String,
    pub title: String,
    pub body: String,
    /// `[label, value]` pairs shown under the body.
    pub facts: Vec<(String, String)>,
    /// `[label, path]` pairs: dashboard links (paths, joined to the dashboard URL when sent).
    pub links: Vec<(String, String)>,
    pub auto_resolve: bool,
    /// How often the condition came back while this episode was open or within the cooldown.
    pub occurrences: i64,
    pub triggered_at: i64,
    pub last_active_at: i64,
    pub notify: String,
    pub queued_at: Option<i64>,
    pub notified_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
    pub resolved_at: Option<i64>,
}

impl AlertRow {
    /// The lifecycle stage: triggered → notified → acknowledged → resolved.
    pub fn stage(&self) -> &'static str {
        if self.resolved_at.is_some() {
            "resolved"
        } else if self.acked_at.is_some() {
            "acknowledged"
        } else if self.notified_at.is_some() {
            "notified"
        } else {
            "triggered"
        }
    }
}

/// A new alert episode.
#[derive(Clone, Debug)]
pub struct NewAlert<'a> {
    pub rule: &'a str,
    pub subject: &'a str,
    pub severity: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub facts: &'a [(String, String)],
    pub links: &'a [(String, String)],
    pub auto_resolve: bool,
    pub now: i64,
    pub notify: &'a str,
}

/// One outbox message as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: String,
    pub kind: String,
    pub alert_ids: Vec<i64>,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    pub json_body: Option<String>,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i64,
    pub expires_at: i64,
    pub delivered_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
}

impl OutboxRow {
    pub fn status(&self) -> &'static str {
        if self.delivered_at.is_some() {
            "delivered"
        } else if self.failed_at.is_some() {
            "failed"
        } else if self.attempts > 0 {
            "retrying"
        } else {
            "waiting"
        }
    }
}

/// A message to queue.
#[derive(Clone, Debug, Default)]
pub struct NewMessage {
    pub channel: &'static str,
    pub kind: &'static str,
    pub alert_ids: Vec<i64>,
    pub subject: String,
    pub text_body: String,
    pub html_body: Option<String>,
    pub json_body: Option<String>,
    pub not_before: i64,
    pub expires_at: i64,
}

const ALERT_COLS: &str = "id, rule, subject, severity, title, body, facts, links, auto_resolve,
    occurrences, triggered_at, last_active_at, notify, queued_at, notified_at, acked_at, acked_by,
    resolved_at";

const OUTBOX_COLS: &str = "id, channel, kind, alert_ids, subject, text_body, html_body, json_body,
    created_at, next_attempt_at, attempts, expires_at, delivered_at, failed_at, last_error";

fn pairs(json: String) -> Vec<(String, String)> {
    // Written by this module only; a hand-edited row loses its facts rather than the page.
    serde_json::from_str(&json).unwrap_or_default()
}

fn alert_from_row(r: &Row<'_>) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: r.get(0)?,
        rule: r.get(1)?,
        subject: r.get(2)?,
        severity: r.get(3)?,
        title: r.get(4)?,
        body: r.get(5)?,
        facts: pairs(r.get(6)?),
        links: pairs(r.get(7)?),
        auto_resolve: r.get(8)?,
        occurrences: r.get(9)?,
        triggered_at: r.get(10)?,
        last_active_at: r.get(11)?,
        notify: r.get(12)?,
        queued_at: r.get(13)?,
        notified_at: r.get(14)?,
        acked_at: r.get(15)?,
        acked_by: r.get(16)?,
        resolved_at: r.get(17)?,
    })
}

fn outbox_from_row(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    let ids: String = r.get(3)?;
    Ok(OutboxRow {
        id: r.get(0)?,
        channel: r.get(1)?,
        kind: r.get(2)?,
        alert_ids: serde_json::from_str(&ids).unwrap_or_default(),
        subject: r.get(4)?,
        text_body: r.get(5)?,
        html_body: r.get(6)?,
        json_body: r.get(7)?,
        created_at: r.get(8)?,
        next_attempt_at: r.get(9)?,
        attempts: r.get(10)?,
        expires_at: r.get(11)?,
        delivered_at: r.get(12)?,
        failed_at: r.get(13)?,
        last_error: r.get(14)?,
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    // Vectors of strings and integers always serialise.
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// A value of the engine's key/value state.
    pub fn alert_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM alert_state WHERE key = ?1")
            .and_then(|mut st| st.query_row(params![key], |r| r.get(0)).optional())
            .map_err(sql_err(&self.path, "reading alert state"))
    }

    pub fn set_alert_state(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO alert_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut st| st.execute(params![key, value]))
            .map_err(sql_err(&self.path, "writing alert state"))?;
        Ok(())
    }

    /// The open (unresolved) alert of `rule` and `subject`, if any.
    pub fn open_alert(&self, rule: &str, subject: &str) -> Result<Option<AlertRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLS} FROM alerts WHERE rule = ?1 AND subject = ?2 AND resolved_at IS NULL"
            ))
            .and_then(|mut st| st.query_row(params![rule, subject], alert_from_row).optional())
            .map_err(sql_err(&self.path, "reading alerts"))
    }

    /// The most recent alert of `rule` and `subject`, open or not.
    pub fn latest_alert(&self, rule: &str, subject: &str) -> Result<Option<AlertRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLS} FROM alerts WHERE rule = ?1 AND subject = ?2
                 ORDER BY triggered_at DESC, id DESC LIMIT 1"
            ))
            .and_then(|mut st| {
                st.query_row(params![rule, subject], alert_from_row)
                    .optional()
            })
            .map_err(sql_err(&self.path, "reading alerts"))
    }

    /// When a notification for `rule` and `subject` was last queued (the cooldown's clock).
    pub fn last_queued_at(&self, rule: &str, subject: &str) -> Result<Option<i64>, StoreError> {
        self.conn
            .prepare_cached("SELECT MAX(queued_at) FROM alerts WHERE rule = ?1 AND subject = ?2")
            .and_then(|mut st| st.query_row(params![rule, subject], |r| r.get(0)))
            .map_err(sql_err(&self.path, "reading alerts"))
    }

    pub fn alert(&self, id: i64) -> Result<Option<AlertRow>, StoreError> {
        self.conn
            .prepare_cached(&format!("SELECT {ALERT_COLS} FROM alerts WHERE id = ?1"))
            .and_then(|mut st| st.query_row(params![id], alert_from_row).optional())
            .map_err(sql_err(&self.path, "reading alerts"))
    }

    pub fn insert_alert(&self, a: &NewAlert<'_>) -> Result<i64, StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO alerts (rule, subject, severity, title, body, facts, links,
                     auto_resolve, triggered_at, last_active_at, notify)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    a.rule,
                    a.subject,
                    a.severity,
                    a.title,
                    a.body,
                    to_json(&a.facts),
                    to_json(&a.links),
                    a.auto_resolve,
                    a.now,
                    a.notify
                ])
            })
            .map_err(sql_err(&self.path, "recording an alert"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records that an open alert's condition still holds, with its latest wording.
    pub fn touch_alert(
        &self,
        id: i64,
        now: i64,
        title: &str,
        body: &str,
        facts: &[(String, String)],
    ) -> Result<(), StoreError> {
        // Only what the pages show: it may wait for the flush (see `Store::defer_to`).
        const TOUCH: &str =
            "UPDATE alerts SET last_active_at = ?2, title = ?3, body = ?4, facts = ?5
                 WHERE id = ?1";
        if let Some(queue) = &self.defer {
            let (title, body, facts) = (title.to_string(), body.to_string(), to_json(&facts));
            queue.push("alerts", move |sp, path| {
                sp.prepare_cached(TOUCH)
                    .and_then(|mut st| st.execute(params![id, now, title, body, facts]))
                    .map(|_| ())
                    .map_err(sql_err(path, "updating an alert"))
            });
            return Ok(());
        }
        self.conn
            .prepare_cached(TOUCH)
            .and_then(|mut st| st.execute(params![id, now, title, body, to_json(&facts)]))
            .map_err(sql_err(&self.path, "updating an alert"))?;
        Ok(())
    }

    /// Opens a resolved episode again (a flap inside the cooldown): no new notification.
    pub fn reopen_alert(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE alerts SET resolved_at = NULL, last_active_at = ?2,
                     occurrences = occurrences + 1 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, now]))
            .map_err(sql_err(&self.path, "reopening an alert"))?;
        Ok(())
    }

    pub fn resolve_alert(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE alerts SET resolved_at = ?2 WHERE id = ?1 AND resolved_at IS NULL",
            )
            .and_then(|mut st| st.execute(params![id, now]))
            .map_err(sql_err(&self.path, "resolving an alert"))?;
        Ok(())
    }

    /// Acknowledges an alert; one that cannot resolve by itself (an event) is resolved too.
    /// Returns false when there is no such alert or it was acknowledged before.
    pub fn ack_alert(&self, id: i64, now: i64, by: &str) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE alerts SET acked_at = ?2, acked_by = ?3,
                     resolved_at = CASE WHEN auto_resolve = 0 THEN COALESCE(resolved_at, ?2)
                                        ELSE resolved_at END
                 WHERE id = ?1 AND acked_at IS NULL",
            )
            .and_then(|mut st| st.execute(params![id, now, by]))
            .map_err(sql_err(&self.path, "acknowledging an alert"))?;
        Ok(n > 0)
    }

    /// Sets what happens to an alert's notification (see the migration's comment).
    pub fn set_alert_notify(&self, id: i64, notify: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached("UPDATE alerts SET notify = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![id, notify]))
            .map_err(sql_err(&self.path, "updating an alert"))?;
        Ok(())
    }

    /// Alerts whose notification waits (instant send, end of quiet hours, digest), oldest first.
    pub fn alerts_pending_notify(&self) -> Result<Vec<AlertRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLS} FROM alerts WHERE notify = 'pending' ORDER BY id"
            ))
            .and_then(|mut st| st.query_map([], alert_from_row)?.collect())
            .map_err(sql_err(&self.path, "reading alerts"))
    }

    /// The most recent alerts, newest first; open ones always included.
    pub fn recent_alerts(&self, limit: u32) -> Result<Vec<AlertRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLS} FROM alerts
                 ORDER BY (resolved_at IS NULL) DESC, triggered_at DESC, id DESC LIMIT ?1"
            ))
            .and_then(|mut st| st.query_map(params![limit], alert_from_row)?.collect())
            .map_err(sql_err(&self.path, "reading alerts"))
    }

    /// Alerts triggered in `[from, to)`, oldest first (the weekly summary).
    pub fn alerts_between(&self, from: i64, to: i64) -> Result<Vec<AlertRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLS} FROM alerts WHERE triggered_at >= ?1 AND triggered_at < ?2
                 ORDER BY triggered_at, id"
            ))
            .and_then(|mut st| st.query_map(params![from, to], alert_from_row)?.collect())
            .map_err(sql_err(&self.path, "reading alerts"))
    }

    /// Writes `messages` and marks `alert_ids` as queued at `now`, in one transaction.
    pub fn queue_messages(
        &mut self,
        alert_ids: &[i64],
        messages: &[NewMessage],
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let path = self.path.clone();
        let op = "queueing messages in the outbox";
        let tx = self.conn.transaction().map_err(sql_err(&path, op))?;
        let mut ids = Vec::with_capacity(messages.len());
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO outbox (channel, kind, alert_ids, subject, text_body, html_body,
                         json_body, created_at, next_attempt_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(sql_err(&path, op))?;
            for m in messages {
                ins.execute(params![
                    m.channel,
                    m.kind,
                    to_json(&m.alert_ids),
                    m.subject,
                    m.text_body,
                    m.html_body,
                    m.json_body,
                    now,
                    m.not_before.max(now),
                    m.expires_at
                ])
                .map_err(sql_err(&path, op))?;
                ids.push(tx.last_insert_rowid());
            }
            let mut mark = tx
                .prepare_cached("UPDATE alerts SET notify = 'queued', queued_at = ?2 WHERE id = ?1")
                .map_err(sql_err(&path, op))?;
            for id in alert_ids {
                mark.execute(params![id, now]).map_err(sql_err(&path, op))?;
            }
        }
        tx.commit().map_err(sql_err(&path, op))?;
        Ok(ids)
    }

    /// Messages due for an attempt at `now`, oldest first.
    pub fn due_messages(&self, now: i64, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLS} FROM outbox
                 WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at, id LIMIT ?2"
            ))
            .and_then(|mut st| {
                st.query_map(params![now, limit], outbox_from_row)?
                    .collect()
            })
            .map_err(sql_err(&self.path, "reading the outbox"))
    }

    /// Messages of `channel` due for an attempt at `now`, oldest first: each channel's worker
    /// reads only its own, so one stalled receiver cannot hold up the other channel.
    pub fn due_messages_on(
        &self,
        channel: &str,
        now: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLS} FROM outbox
                 WHERE channel = ?3 AND delivered_at IS NULL AND failed_at IS NULL
                     AND next_attempt_at <= ?1
                 ORDER BY next_attempt_at, id LIMIT ?2"
            ))
            .and_then(|mut st| {
                st.query_map(params![now, limit, channel], outbox_from_row)?
                    .collect()
            })
            .map_err(sql_err(&self.path, "reading the outbox"))
    }

    /// Marks a message delivered, and its alerts notified.
    pub fn message_delivered(&mut self, id: i64, now: i64) -> Result<(), StoreError> {
        let path = self.path.clone();
        let op = "recording a delivery";
        let tx = self.conn.transaction().map_err(sql_err(&path, op))?;
        tx.execute(
            "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
             WHERE id = ?1",
            params![id, now],
        )
        .map_err(sql_err(&path, op))?;
        tx.execute(
            "UPDATE alerts SET notified_at = COALESCE(notified_at, ?2)
             WHERE id IN (SELECT value FROM json_each((SELECT alert_ids FROM outbox WHERE id = ?1)))",
            params![id, now],
        )
        .map_err(sql_err(&path, op))?;
        tx.commit().map_err(sql_err(&path, op))
    }

    /// Records a failed attempt: retried at `next`, or finished as failed when `expired`.
    pub fn message_attempt_failed(
        &self,
        id: i64,
        now: i64,
        next: i64,
        expired: bool,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?4, next_attempt_at = ?3,
                     failed_at = CASE WHEN ?5 THEN ?2 ELSE NULL END
                 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id, now, next, error, expired]))
            .map_err(sql_err(&self.path, "recording a failed delivery"))?;
        Ok(())
    }

    /// Undelivered messages first (waiting, retrying, failed), then the most recent deliveries.
    pub fn outbox_recent(&self, limit: u32) -> Result<Vec<OutboxRow>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLS} FROM outbox
                 ORDER BY (delivered_at IS NULL) DESC, id DESC LIMIT ?1"
            ))
            .and_then(|mut st| st.query_map(params![limit], outbox_from_row)?.collect())
            .map_err(sql_err(&self.path, "reading the outbox"))
    }

    /// Marks a failed message for another round of attempts (the dashboard's "retry").
    pub fn retry_message(&self, id: i64, now: i64, expires_at: i64) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET failed_at = NULL, next_attempt_at = ?2, expires_at = ?3
                 WHERE id = ?1 AND delivered_at IS NULL",
            )
            .and_then(|mut st| st.execute(params![id, now, expires_at]))
            .map_err(sql_err(&self.path, "retrying a message"))?;
        Ok(n > 0)
    }

    /// Marks or unmarks a device as one that should always be online (cameras, alarm hubs).
    pub fn set_always_online(&self, device_id: i64, on: bool) -> Result<bool, StoreError> {
        let n = self
            .conn
            .prepare_cached("UPDATE devices SET always_online = ?2 WHERE id = ?1")
            .and_then(|mut st| st.execute(params![device_id, on]))
            .map_err(sql_err(&self.path, "saving a device's always-online flag"))?;
        Ok(n > 0)
    }

    /// Ids of the devices marked as always online.
    pub fn always_online_devices(&self) -> Result<Vec<i64>, StoreError> {
        self.conn
            .prepare_cached("SELECT id FROM devices WHERE always_online = 1 ORDER BY id")
            .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
            .map_err(sql_err(&self.path, "reading always-online devices"))
    }

    /// The link-signing secret, created (32 random bytes, hex) on first use. It lives in the
    /// database so links survive restarts and a restored backup keeps its links working.
    pub fn link_secret(&self) -> Result<String, StoreError> {
        if let Some(s) = self.alert_state("link_secret")? {
            return Ok(s);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            detail: format!("no randomness for the link secret: {e}"),
        })?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        // INSERT OR IGNORE: a second process racing here keeps the first secret.
        self.conn
            .execute(
                "INSERT OR IGNORE INTO alert_state (key, value) VALUES ('link_secret', ?1)",
                params![hex],
            )
            .map_err(sql_err(&self.path, "writing the link secret"))?;
        Ok(self.alert_state("link_secret")?.unwrap_or(hex))
    }

    /// New-device events and the device facts an alert about them shows.
    pub fn max_device_event_id(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM device_events", [], |r| {
                r.get(0)
            })
            .map_err(sql_err(&self.path, "reading device events"))
    }
}

/// The API's alert states: disjoint, unlike the lifecycle [`AlertRow::stage`] (notified is an
/// open alert whose message went out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertFilter {
    /// Neither acknowledged nor resolved.
    Open,
    /// Acknowledged, not yet resolved.
    Acknowledged,
    Resolved,
}

impl AlertFilter {
    fn sql(self) -> &'static str {
        match self {
            AlertFilter::Open => "resolved_at IS NULL AND acked_at IS NULL",
            AlertFilter::Acknowledged => "resolved_at IS NULL AND acked_at IS NOT NULL",
            AlertFilter::Resolved => "resolved_at IS NOT NULL",
        }
    }
}

/// Alert and outbox counts for /metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// (state, severity, alerts), state as in [`AlertFilter`] ("open", "acknowledged",
    /// "resolved").
    pub alerts: Vec<(&'static str, String, u64)>,
    /// Outbox messages neither delivered nor given up on.
    pub outbox_pending: u64,
    /// Outbox messages given up on (expired without a delivery).
    pub outbox_failed: u64,
}

impl Store {
    /// A page of alerts, newest first, with the number matching over all pages.
    pub fn list_alerts(
        &self,
        state: Option<AlertFilter>,
        severity: Option<&str>,
        limit: u32,
        offset: u32,
    ) -> Result<(Vec<AlertRow>, u64), StoreError> {
        let filter = format!(
            "WHERE ({}) AND (?1 IS NULL OR severity = ?1)",
            state.map_or("1", AlertFilter::sql)
        );
        let op = "listing alerts";
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(*) FROM alerts {filter}"))
            .and_then(|mut st| st.query_row(params![severity], |r| r.get(0)))
            .map_err(sql_err(&self.path, op))?;
        let rows = self
            .conn
            .prepare_cached(&format!(
                "SELECT {ALERT_COLS} FROM alerts {filter}
                 ORDER BY triggered_at DESC, id DESC LIMIT ?2 OFFSET ?3"
            ))
            .and_then(|mut st| {
                st.query_map(params![severity, limit, offset], alert_from_row)?
                    .collect()
            })
            .map_err(sql_err(&self.path, op))?;
        Ok((rows, u64::try_from(total).unwrap_or(0)))
    }

    /// Alerts per state and severity, and the outbox's undelivered messages.
    pub fn alert_counts(&self) -> Result<AlertCounts, StoreError> {
        let op = "counting alerts";
        let alerts = self
            .conn
            .prepare_cached(
                "SELECT CASE WHEN resolved_at IS NOT NULL THEN 2
                             WHEN acked_at IS NOT NULL THEN 1 ELSE 0 END,
                        severity, COUNT(*)
                 FROM alerts GROUP BY 1, 2 ORDER BY 1, 2",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    let state = match r.get::<_, i64>(0)? {
                        0 => "open",
                        1 => "acknowledged",
                        _ => "resolved",
                    };
                    Ok((
                        state,
                        r.get(1)?,
                        u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(sql_err(&self.path, op))?;
        let (pending, failed): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT COALESCE(SUM(failed_at IS NULL), 0), COALESCE(SUM(failed_at IS NOT NULL), 0)
                 FROM outbox WHERE delivered_at IS NULL",
            )
            .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(sql_err(&self.path, op))?;
        Ok(AlertCounts {
            alerts,
            outbox_pending: u64::try_from(pending).unwrap_or(0),
            outbox_failed: u64::try_from(failed).unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert<'a>(now: i64, facts: &'a [(String, String)]) -> NewAlert<'a> {
        NewAlert {
            rule: "r",
            subject: "s",
            severity: "warning",
            title: "t",
            body: "b",
            facts,
            links: &[],
            auto_resolve: true,
            now,
            notify: "pending",
        }
    }

    /// With a flusher's queue, refreshing an active alert waits for the flush (no commit of its
    /// own); raising one still commits at once.
    #[test]
    fn an_active_alerts_refresh_waits_for_the_flush_when_deferred() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let mut s = Store::open(&path).unwrap();
        let queue = crate::store::batch::WriteQueue::new();
        s.defer_to(queue.clone());
        let facts = vec![("k".to_string(), "v".to_string())];
        let id = s.insert_alert(&alert(100, &facts)).unwrap();
        let other = Store::open(&path).unwrap();
        assert_eq!(other.alert(id).unwrap().unwrap().last_active_at, 100);
        s.touch_alert(id, 160, "t2", "b2", &facts).unwrap();
        assert_eq!(queue.len(), 1);
        let seen = other.alert(id).unwrap().unwrap();
        assert_eq!((seen.last_active_at, seen.title.as_str()), (100, "t"));
        let mut flusher = Store::open(&path).unwrap();
        assert_eq!(flusher.commit_queued(&queue).unwrap().written, 1);
        let seen = other.alert(id).unwrap().unwrap();
        assert_eq!((seen.last_active_at, seen.title.as_str()), (160, "t2"));
    }

    #[test]
    fn one_open_alert_per_rule_and_subject() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        let facts = vec![("k".to_string(), "v".to_string())];
        let id = s.insert_alert(&alert(100, &facts)).unwrap();
        assert!(s.insert_alert(&alert(101, &facts)).is_err(), "dedup index");
        let open = s.open_alert("r", "s").unwrap().unwrap();
        assert_eq!(
            (open.id, open.facts.clone(), open.stage()),
            (id, facts.clone(), "triggered")
        );
        s.resolve_alert(id, 200).unwrap();
        assert!(s.open_alert("r", "s").unwrap().is_none());
        let id2 = s.insert_alert(&alert(300, &facts)).unwrap();
        assert_ne!(id, id2);
        assert_eq!(s.latest_alert("r", "s").unwrap().unwrap().id, id2);
    }

    #[test]
    fn outbox_lifecycle_marks_alerts_notified() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let id = s.insert_alert(&alert(100, &[])).unwrap();
        let m = NewMessage {
            channel: "email",
            kind: "alert",
            alert_ids: vec![id],
            subject: "x".into(),
            text_body: "y".into(),
            not_before: 0,
            expires_at: 1000,
            ..NewMessage::default()
        };
        let ids = s.queue_messages(&[id], &[m], 100).unwrap();
        assert_eq!(s.alert(id).unwrap().unwrap().queued_at, Some(100));
        assert_eq!(s.due_messages(99, 10).unwrap().len(), 0);
        let due = s.due_messages(100, 10).unwrap();
        assert_eq!(due.len(), 1);
        s.message_attempt_failed(ids[0], 100, 130, false, "refused")
            .unwrap();
        assert!(s.due_messages(129, 10).unwrap().is_empty());
        assert_eq!(s.due_messages(130, 10).unwrap()[0].status(), "retrying");
        s.message_delivered(ids[0], 131).unwrap();
        assert!(s.due_messages(10_000, 10).unwrap().is_empty());
        let a = s.alert(id).unwrap().unwrap();
        assert_eq!((a.notified_at, a.stage()), (Some(131), "notified"));
        assert!(s.ack_alert(id, 140, "admin").unwrap());
        assert!(!s.ack_alert(id, 141, "admin").unwrap(), "only once");
        assert_eq!(s.alert(id).unwrap().unwrap().stage(), "acknowledged");
    }

    #[test]
    fn link_secret_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("a.db")).unwrap();
        let a = s.link_secret().unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(s.link_secret().unwrap(), a);
        let cursor = s.alert_state("device_events_cursor").unwrap();
        assert_eq!(cursor.as_deref(), Some("0"));
    }

    #[test]
    fn list_filters_by_state_and_severity_and_counts_feed_the_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("a.db")).unwrap();
        let subjects = ["a", "b", "c"];
        let ids: Vec<i64> = subjects
            .iter()
            .zip(100..)
            .map(|(subject, now)| {
                s.insert_alert(&NewAlert {
                    subject,
                    ..alert(now, &[])
                })
                .unwrap()
            })
            .collect();
        assert!(s.ack_alert(ids[1], 200, "admin").unwrap());
        s.resolve_alert(ids[2], 210).unwrap();
        let page = |f, sev, limit, offset| {
            let (rows, total) = s.list_alerts(f, sev, limit, offset).unwrap();
            (rows.iter().map(|a| a.id).collect::<Vec<_>>(), total)
        };
        assert_eq!(page(None, None, 10, 0), (vec![ids[2], ids[1], ids[0]], 3));
        assert_eq!(page(None, None, 1, 1), (vec![ids[1]], 3));
        assert_eq!(
            page(Some(AlertFilter::Open), None, 10, 0),
            (vec![ids[0]], 1)
        );
        assert_eq!(
            page(Some(AlertFilter::Acknowledged), Some("warning"), 10, 0),
            (vec![ids[1]], 1)
        );
        assert_eq!(
            page(Some(AlertFilter::Resolved), None, 10, 0),
            (vec![ids[2]], 1)
        );
        assert_eq!(page(None, Some("critical"), 10, 0), (vec![], 0));

        let m = |expires_at| NewMessage {
            channel: "email",
            kind: "alert",
            alert_ids: vec![ids[0]],
            expires_at,
            ..NewMessage::default()
        };
        let out = s
            .queue_messages(&[ids[0]], &[m(1000), m(1000), m(1000)], 100)
            .unwrap();
        s.message_delivered(out[0], 110).unwrap();
        s.message_attempt_failed(out[1], 110, 2000, true, "expired")
            .unwrap();
        let c = s.alert_counts().unwrap();
        let w = |st| (st, "warning".to_string(), 1);
        assert_eq!(c.alerts, vec![w("open"), w("acknowledged"), w("resolved")]);
        assert_eq!((c.outbox_pending, c.outbox_failed), (1, 1));
    }
}
