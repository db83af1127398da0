//! Undoing a merge: before two devices become one, everything the merge changes is kept in
//! `device_undo` (the disappearing device's rows, and the surviving device's rows the merge
//! rewrites), so the two can be split again with both histories exactly as they were.
//!
//! Usage is split by subtraction: the surviving device keeps whatever arrived after the merge
//! (its own traffic and that of the merged MACs, which counted for it meanwhile), and loses
//! exactly what the merge added. That is exact only while the history levels hold the rows the
//! merge saw: once a rollup or retention pass has moved the history watermarks, an hour or day
//! row may mix minutes from both devices that the snapshot cannot tell apart, so undo is then
//! refused (and the kept rows deleted at the next merge). In the daemon that is the next
//! rollup of a settled quarter of the open hour (the open hour, day and month are rolled as they
//! go, issue 26): the "until the history is next rolled up, within about a quarter of an hour"
//! the device page promises.
use super::presence::add_presence;
use super::{Store, StoreError, sql_err};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Rows of one table, as `SELECT *` gave them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

/// What a merge changed, enough to split the two devices again.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    /// The merged device's rows per table (`devices` included), keyed by table name.
    from: Vec<(String, Rows)>,
    /// The surviving device's own `devices` row, presence and address/name/service keys.
    into: Vec<(String, Rows)>,
    /// The merged device's events, which the merge moved to the survivor.
    events: Vec<i64>,
}

/// Tables keyed by device whose rows a merge moves, with the columns that identify a row
/// besides the device (usage levels also have counters, handled apart).
const USAGE: [(&str, &str); 4] = [
    ("usage_minute", "minute"),
    ("usage_hour", "start"),
    ("usage_day", "start"),
    ("usage_month", "start"),
];
const FACTS: [(&str, &[&str]); 3] = [
    ("device_addresses", &["addr"]),
    ("device_hostnames", &["source", "name"]),
    ("device_services", &["service"]),
];
const MOVED: [&str; 3] = ["device_macs", "device_client_ids", "presence"];
/// Bytes per remote endpoint (issue 29): moved like usage, keyed by (hour, remote).
const REMOTES: &str = "device_remote_hour";

/// A merge that can still be undone, as the device page offers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeUndo {
    pub id: i64,
    /// The device that disappeared in the merge, and the name it had.
    pub from: i64,
    pub from_label: String,
    pub into: i64,
    pub merged_at_ns: i64,
}

/// What an undo did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unmerge {
    /// The devices are two again.
    Split { from: i64, into: i64 },
    /// No such undo (already undone, or replaced at a later merge).
    Gone,
    /// It can no longer be done exactly; the reason, in words for the page.
    Refused(String),
}

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
        // No device table holds blobs; kept as bytes in case one does one day.
        ValueRef::Blob(b) => Value::from(b.to_vec()),
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => n
            .as_i64()
            .map(SqlValue::Integer)
            .or_else(|| n.as_f64().map(SqlValue::Real))
            .unwrap_or(SqlValue::Null),
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Array(a) => SqlValue::Blob(
            a.iter()
                .filter_map(|x| x.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect(),
        ),
        Value::Object(_) => SqlValue::Null,
    }
}

fn select(tx: &Connection, sql: &str, id: i64) -> rusqlite::Result<Rows> {
    let mut st = tx.prepare(sql)?;
    let columns: Vec<String> = st.column_names().iter().map(|c| c.to_string()).collect();
    let n = columns.len();
    let rows = st
        .query_map(params![id], |r| {
            (0..n).map(|i| r.get_ref(i).map(to_json)).collect()
        })?
        .collect::<Result<_, _>>()?;
    Ok(Rows { columns, rows })
}

fn insert(tx: &Connection, table: &str, rows: &Rows) -> rusqlite::Result<()> {
    let cols = rows.columns.join(", ");
    let marks = vec!["?"; rows.columns.len()].join(", ");
    let mut st = tx.prepare(&format!(
        "INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})"
    ))?;
    for r in &rows.rows {
        st.execute(params_from_iter(r.iter().map(to_sql)))?;
    }
    Ok(())
}

fn history_key(tx: &Connection) -> rusqlite::Result<String> {
    Ok(format!("{:?}", super::rollup::read_state(tx)?))
}

fn get<'a>(all: &'a [(String, Rows)], table: &str) -> Option<&'a Rows> {
    all.iter().find(|(t, _)| t == table).map(|(_, r)| r)
}

fn col(rows: &Rows, name: &str) -> Option<usize> {
    rows.columns.iter().position(|c| c == name)
}

/// Keeps what the merge of `from` into `into` is about to change. Called in the merge's
/// transaction, before anything moves. Undo records taken before the history last moved can
/// no longer be applied, so they are dropped here.
pub(super) fn record_merge(
    tx: &Connection,
    from: i64,
    into: i64,
    label: &str,
    now_ns: i64,
) -> rusqlite::Result<i64> {
    let history = history_key(tx)?;
    tx.execute(
        "DELETE FROM device_undo WHERE history != ?1",
        params![history],
    )?;
    let mut taken = Vec::new();
    taken.push((
        "devices".to_string(),
        select(tx, "SELECT * FROM devices WHERE id = ?1", from)?,
    ));
    for table in USAGE
        .iter()
        .map(|(t, _)| *t)
        .chain(FACTS.iter().map(|(t, _)| *t))
        .chain(MOVED)
        .chain([REMOTES])
    {
        taken.push((
            table.to_string(),
            select(
                tx,
                &format!("SELECT * FROM {table} WHERE device_id = ?1"),
                from,
            )?,
        ));
    }
    let mut kept = vec![(
        "devices".to_string(),
        select(tx, "SELECT * FROM devices WHERE id = ?1", into)?,
    )];
    for table in FACTS.iter().map(|(t, _)| *t).chain(["presence"]) {
        kept.push((
            table.to_string(),
            select(
                tx,
                &format!("SELECT * FROM {table} WHERE device_id = ?1"),
                into,
            )?,
        ));
    }
    let events: Vec<i64> = tx
        .prepare("SELECT id FROM device_events WHERE device_id = ?1")?
        .query_map(params![from], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let snapshot = Snapshot {
        from: taken,
        into: kept,
        events,
    };
    let text = serde_json::to_string(&snapshot)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.query_row(
        "INSERT INTO device_undo (device_id, into_id, label, created_at_ns, history, snapshot)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        params![from, into, label, now_ns, history, text],
        |r| r.get(0),
    )
}

/// Splits a merged device off again (see the module doc for what is exact).
fn split(
    tx: &Connection,
    from: i64,
    into: i64,
    merged_at: i64,
    snap: &Snapshot,
    window_ns: i64,
) -> Result<(), String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let exists = |id: i64| -> Result<bool, String> {
        tx.query_row(
            "SELECT count(*) FROM devices WHERE id = ?1",
            params![id],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(sql)
    };
    if !exists(into)? {
        return Err("the device it was merged into is gone (merged again?)".into());
    }
    if exists(from)? {
        return Err("a newer device has taken its number".into());
    }
    // Usage: the survivor loses exactly what the merge added to each row.
    for (table, key) in USAGE {
        let Some(rows) = get(&snap.from, table) else {
            continue;
        };
        let k = col(rows, key).ok_or("snapshot without its key column")?;
        let counters: Vec<(usize, &String)> = rows
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| *c != key && *c != "device_id")
            .collect();
        let set = counters
            .iter()
            .enumerate()
            .map(|(n, (_, c))| format!("{c} = {c} - ?{}", n + 3))
            .collect::<Vec<_>>()
            .join(", ");
        let zero = counters
            .iter()
            .map(|(_, c)| format!("{c} = 0"))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mut sub = tx
            .prepare(&format!(
                "UPDATE {table} SET {set} WHERE {key} = ?1 AND device_id = ?2"
            ))
            .map_err(sql)?;
        let mut drop_empty = tx
            .prepare(&format!(
                "DELETE FROM {table} WHERE {key} = ?1 AND device_id = ?2 AND {zero}"
            ))
            .map_err(sql)?;
        for r in &rows.rows {
            let mut p = vec![to_sql(&r[k]), SqlValue::Integer(into)];
            p.extend(counters.iter().map(|(i, _)| to_sql(&r[*i])));
            if sub.execute(params_from_iter(p)).map_err(sql)? != 1 {
                return Err(format!("a {table} row of the merged history is missing"));
            }
            drop_empty
                .execute(params![to_sql(&r[k]), into])
                .map_err(sql)?;
        }
    }
    if let Some(rows) = get(&snap.from, REMOTES) {
        let ix = ["hour", "remote", "bytes_up", "bytes_down"].map(|c| col(rows, c));
        let [Some(h), Some(r), Some(u), Some(d)] = ix else {
            return Err("snapshot without the remote endpoints' columns".into());
        };
        let moved: Vec<(i64, String, i64, i64)> = rows
            .rows
            .iter()
            .map(|row| {
                (
                    row[h].as_i64().unwrap_or_default(),
                    row[r].as_str().unwrap_or_default().to_string(),
                    row[u].as_i64().unwrap_or_default(),
                    row[d].as_i64().unwrap_or_default(),
                )
            })
            .collect();
        super::remotes::unmerge_remotes(tx, into, &moved).map_err(sql)?;
    }
    // The MACs leave the survivor before the device row comes back (its insert trigger maps
    // the main MAC, which must be free).
    if let Some(macs) = get(&snap.from, "device_macs") {
        let m = col(macs, "mac").ok_or("snapshot without MACs")?;
        for r in &macs.rows {
            tx.execute(
                "DELETE FROM device_macs WHERE mac = ?1",
                params![to_sql(&r[m])],
            )
            .map_err(sql)?;
        }
    }
    let before: i64 = tx
        .query_row("SELECT coalesce(max(id), 0) FROM device_events", [], |r| {
            r.get(0)
        })
        .map_err(sql)?;
    let device = get(&snap.from, "devices").ok_or("snapshot without the device")?;
    insert(tx, "devices", device).map_err(sql)?;
    // The trigger's derived flag and its new_device event are not news: put back the stored
    // flag and drop the event in the same transaction (the alert engine never sees it).
    if let (Some(i), Some(row)) = (col(device, "randomized"), device.rows.first()) {
        tx.execute(
            "UPDATE devices SET randomized = ?2 WHERE id = ?1",
            params![from, to_sql(&row[i])],
        )
        .map_err(sql)?;
    }
    tx.execute(
        "DELETE FROM device_events WHERE id > ?1 AND device_id = ?2 AND kind = 'new_device'",
        params![before, from],
    )
    .map_err(sql)?;
    for (table, rows) in &snap.from {
        if table != "devices" && table != "presence" {
            insert(tx, table, rows).map_err(sql)?;
        }
    }
    // Names, addresses and services the survivor only had through the merge go back.
    for (table, keys) in FACTS {
        let (Some(moved), Some(own)) = (get(&snap.from, table), get(&snap.into, table)) else {
            continue;
        };
        let idx =
            |rows: &Rows| -> Vec<Option<usize>> { keys.iter().map(|k| col(rows, k)).collect() };
        let (mi, oi) = (idx(moved), idx(own));
        let key_of = |r: &Vec<Value>, ix: &[Option<usize>]| -> Vec<Value> {
            ix.iter()
                .map(|i| i.map_or(Value::Null, |i| r[i].clone()))
                .collect()
        };
        let owned: Vec<Vec<Value>> = own.rows.iter().map(|r| key_of(r, &oi)).collect();
        let cond = keys
            .iter()
            .enumerate()
            .map(|(n, k)| format!("{k} = ?{}", n + 2))
            .collect::<Vec<_>>()
            .join(" AND ");
        for r in &moved.rows {
            let key = key_of(r, &mi);
            if owned.contains(&key) {
                continue;
            }
            let mut p = vec![SqlValue::Integer(into)];
            p.extend(key.iter().map(to_sql));
            tx.execute(
                &format!("DELETE FROM {table} WHERE device_id = ?1 AND {cond}"),
                params_from_iter(p),
            )
            .map_err(sql)?;
        }
        // Rows both had were widened to both's first and last seen: put back the survivor's.
        insert(tx, table, own).map_err(sql)?;
    }
    // Presence: each device's spans from before the merge, the survivor's later ones kept.
    let later: Vec<(i64, i64)> = tx
        .prepare("SELECT online_from_ns, last_seen_ns FROM presence WHERE device_id = ?1 AND last_seen_ns > ?2")
        .and_then(|mut st| {
            st.query_map(params![into, merged_at], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(sql)?;
    tx.execute("DELETE FROM presence WHERE device_id = ?1", params![into])
        .map_err(sql)?;
    for (side, id) in [(&snap.into, into), (&snap.from, from)] {
        if let Some(p) = get(side, "presence") {
            let (Some(f), Some(l)) = (col(p, "online_from_ns"), col(p, "last_seen_ns")) else {
                continue;
            };
            for r in &p.rows {
                let (Some(a), Some(b)) = (r[f].as_i64(), r[l].as_i64()) else {
                    continue;
                };
                add_presence(tx, id, a, b, window_ns).map_err(sql)?;
            }
        }
    }
    for (a, b) in later {
        add_presence(tx, into, a.max(merged_at), b, window_ns).map_err(sql)?;
    }
    // The survivor's own fields as they were (the merge filled gaps from the other device);
    // last seen moves on if it was seen since.
    let own = get(&snap.into, "devices").ok_or("snapshot without the survivor")?;
    if let Some(row) = own.rows.first() {
        let mut n = 1;
        let mut sets = Vec::new();
        let mut p = vec![SqlValue::Integer(into)];
        for (c, v) in own.columns.iter().zip(row) {
            if matches!(c.as_str(), "id" | "mac") {
                continue;
            }
            n += 1;
            if c == "last_seen_ns" {
                sets.push(format!(
                    "{c} = max(?{n}, CASE WHEN {c} > {merged_at} THEN {c} ELSE 0 END)"
                ));
            } else {
                sets.push(format!("{c} = ?{n}"));
            }
            p.push(to_sql(v));
        }
        tx.execute(
            &format!("UPDATE devices SET {} WHERE id = ?1", sets.join(", ")),
            params_from_iter(p),
        )
        .map_err(sql)?;
    }
    let mut back = tx
        .prepare("UPDATE device_events SET device_id = ?2 WHERE id = ?1")
        .map_err(sql)?;
    for e in &snap.events {
        back.execute(params![e, from]).map_err(sql)?;
    }
    tx.execute(
        "INSERT INTO device_events (device_id, mac, kind, at_ns, detail)
         SELECT ?2, mac, 'unmerged', ?3, 'device ' || ?2 || ' split off ' || ?1 || ' again'
         FROM devices WHERE id = ?2",
        params![into, from, merged_at.max(0)],
    )
    .map_err(sql)?;
    Ok(())
}

impl Store {
    /// Merges that can still be undone into `into` (newest first).
    pub fn merge_undos(&self, into: i64) -> Result<Vec<MergeUndo>, StoreError> {
        let path = self.path.as_path();
        let op = "reading the merges that can be undone";
        let history = history_key(&self.conn).map_err(sql_err(path, op))?;
        self.conn
            .prepare(
                "SELECT id, device_id, coalesce(label, ''), into_id, created_at_ns FROM device_undo
                 WHERE into_id = ?1 AND history = ?2 ORDER BY id DESC",
            )
            .and_then(|mut st| {
                st.query_map(params![into, history], |r| {
                    Ok(MergeUndo {
                        id: r.get(0)?,
                        from: r.get(1)?,
                        from_label: r.get(2)?,
                        into: r.get(3)?,
                        merged_at_ns: r.get(4)?,
                    })
                })?
                .collect()
            })
            .map_err(sql_err(path, op))
    }

    /// Undoes the merge kept as `undo`: the merged device comes back with its MACs, history,
    /// names and fields, and the survivor is as it was plus what it saw since.
    pub fn undo_merge(&mut self, undo: i64, window_ns: i64) -> Result<Unmerge, StoreError> {
        let path = self.path.clone();
        let op = "undoing a merge";
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, op))?;
        let row: Option<(i64, i64, i64, String, String)> = tx
            .query_row(
                "SELECT device_id, into_id, created_at_ns, history, snapshot FROM device_undo
                 WHERE id = ?1",
                params![undo],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(sql_err(&path, op))?;
        let Some((from, into, at, history, text)) = row else {
            return Ok(Unmerge::Gone);
        };
        if history_key(&tx).map_err(sql_err(&path, op))? != history {
            return Ok(Unmerge::Refused(
                "the history has been rolled up since the merge, so the two devices' hours and days can no longer be told apart".into(),
            ));
        }
        let snap: Snapshot = match serde_json::from_str(&text) {
            Ok(s) => s,
            Err(e) => {
                return Ok(Unmerge::Refused(format!(
                    "the kept copy is unreadable ({e})"
                )));
            }
        };
        // A failed split rolls back as a whole (the transaction is dropped uncommitted).
        if let Err(why) = split(&tx, from, into, at, &snap, window_ns) {
            return Ok(Unmerge::Refused(why));
        }
        tx.execute("DELETE FROM device_undo WHERE id = ?1", params![undo])
            .map_err(sql_err(&path, op))?;
        tx.commit().map_err(sql_err(&path, op))?;
        Ok(Unmerge::Split { from, into })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counts, MacAddr, MinuteUsage, Sighting};
    use crate::store::discovery::{MacFacts, Profile, UserFields};

    const S: i64 = 1_000_000_000;
    const WINDOW: i64 = 300 * S;

    fn no_guess(_: &Profile) -> Option<&'static str> {
        None
    }

    /// Every row of every table a merge touches, in a fixed order.
    fn everything(st: &Store) -> Vec<(String, Vec<Vec<String>>)> {
        let mut out = Vec::new();
        for t in [
            "devices",
            "usage_minute",
            "usage_hour",
            "usage_day",
            "usage_month",
            "device_macs",
            "device_addresses",
            "device_hostnames",
            "device_services",
            "device_client_ids",
            "presence",
            "device_remote_hour",
        ] {
            let mut st = st.conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
            let n = st.column_count();
            let mut rows: Vec<Vec<String>> = st
                .query_map([], |r| {
                    (0..n)
                        .map(|i| r.get_ref(i).map(|v| format!("{v:?}")))
                        .collect()
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            out.push((t.to_string(), rows));
        }
        out
    }

    fn usage(m: MacAddr, minute: i64, bytes: u64) -> MinuteUsage {
        MinuteUsage {
            mac: m,
            minute,
            counts: Counts {
                bytes_sent: bytes,
                frames_sent: 1,
                internet_upload_bytes: bytes / 2,
                ..Default::default()
            },
        }
    }

    fn sighting(m: MacAddr, at: i64) -> Sighting {
        Sighting {
            mac: m,
            first_seen: at * S,
            last_seen: at * S,
            is_gateway: false,
        }
    }

    #[test]
    fn a_merge_undone_gives_back_both_devices_row_for_row() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Store::open(&dir.path().join("u.db")).unwrap();
        let a: MacAddr = "dc:a6:32:00:00:01".parse().unwrap();
        let b: MacAddr = "da:00:00:00:00:02".parse().unwrap();
        // Both devices used the same minutes (rows that add up) and minutes of their own.
        st.write_flush(
            &[usage(a, 60, 100), usage(b, 60, 7), usage(b, 600, 50)],
            &[sighting(a, 3600), sighting(b, 36_000)],
        )
        .unwrap();
        // Both talked to one remote in the same hour; b also has an "other" row.
        let remote = |mac, minute, r: Option<&str>, up, down| crate::endpoints::RemoteUsage {
            mac,
            minute,
            remote: r.map(|r| r.parse().unwrap()),
            up,
            down,
        };
        st.write_remotes(&[
            remote(a, 60, Some("203.0.113.7"), 10, 20),
            remote(b, 120, Some("203.0.113.7"), 1, 2),
            remote(b, 600, None, 5, 0),
        ])
        .unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        st.roll_up(&tz, 86_400).unwrap();
        let fa = MacFacts {
            mac: a,
            spans: vec![(3600 * S, 3700 * S)],
            hostnames: vec![("dhcp", "printer".into(), 3600 * S, 3600 * S)],
            addresses: vec![("192.168.1.5".parse().unwrap(), S, 2 * S)],
            ..Default::default()
        };
        let fb = MacFacts {
            mac: b,
            spans: vec![(3650 * S, 3900 * S), (36_000 * S, 36_100 * S)],
            hostnames: vec![("dhcp", "annas-iphone".into(), 36_000 * S, 36_000 * S)],
            addresses: vec![("192.168.1.5".parse().unwrap(), 3 * S, 4 * S)],
            client_ids: vec!["dhcp:01da0000000002".into()],
            services: vec!["_companion-link._tcp".into()],
            ..Default::default()
        };
        st.write_discovery(&[fa, fb], WINDOW, no_guess).unwrap();
        let ids: Vec<i64> = st.list_devices().unwrap().iter().map(|d| d.id).collect();
        st.set_user_fields(
            ids[1],
            &UserFields {
                name: Some("Anna's iPhone".into()),
                owner: Some("Anna".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let before = everything(&st);
        let events_before = st.device_events_after(0).unwrap();

        let undo = st
            .merge_devices(ids[1], ids[0], WINDOW, "Anna's iPhone", 40_000 * S)
            .unwrap()
            .unwrap();
        assert_eq!(st.list_devices().unwrap().len(), 1);
        assert_eq!(
            st.list_devices().unwrap()[0].user.owner.as_deref(),
            Some("Anna")
        );
        let offered = st.merge_undos(ids[0]).unwrap();
        assert_eq!(offered.len(), 1);
        assert_eq!(offered[0].from_label, "Anna's iPhone");
        let merged = st.device_remotes(ids[0], 0, 3600).unwrap();
        assert_eq!(
            merged
                .iter()
                .map(|r| (r.remote.as_str(), r.bytes_up, r.bytes_down))
                .collect::<Vec<_>>(),
            [("203.0.113.7", 11, 22), ("other", 5, 0)]
        );

        assert_eq!(
            st.undo_merge(undo, WINDOW).unwrap(),
            Unmerge::Split {
                from: ids[1],
                into: ids[0]
            }
        );
        assert_eq!(everything(&st), before);
        // Its events are its own again; nothing new is announced.
        let events = st.device_events_after(0).unwrap();
        for e in &events_before {
            assert!(
                events
                    .iter()
                    .any(|x| x.id == e.id && x.device_id == e.device_id)
            );
        }
        assert!(
            !events[events_before.len()..]
                .iter()
                .any(|e| e.kind == "new_device")
        );
        assert!(st.merge_undos(ids[0]).unwrap().is_empty());
        assert_eq!(st.undo_merge(undo, WINDOW).unwrap(), Unmerge::Gone);
    }

    #[test]
    fn after_a_rollup_the_undo_is_refused_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Store::open(&dir.path().join("u.db")).unwrap();
        let a: MacAddr = "dc:a6:32:00:00:01".parse().unwrap();
        let b: MacAddr = "dc:a6:32:00:00:02".parse().unwrap();
        st.write_flush(
            &[usage(a, 60, 100), usage(b, 60, 7)],
            &[sighting(a, 60), sighting(b, 60)],
        )
        .unwrap();
        let ids: Vec<i64> = st.list_devices().unwrap().iter().map(|d| d.id).collect();
        let undo = st
            .merge_devices(ids[1], ids[0], WINDOW, "b", 100 * S)
            .unwrap()
            .unwrap();
        let merged = everything(&st);
        st.roll_up(&jiff::tz::TimeZone::UTC, 86_400).unwrap();
        let rolled = everything(&st);
        assert_ne!(merged, rolled);
        assert!(st.merge_undos(ids[0]).unwrap().is_empty());
        assert!(matches!(
            st.undo_merge(undo, WINDOW).unwrap(),
            Unmerge::Refused(why) if why.contains("rolled up")
        ));
        assert_eq!(everything(&st), rolled);
    }
}
