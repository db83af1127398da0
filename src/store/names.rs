//! Per-device names (issue 29, opt-in `per_device_services`): (device, remote IP) → the name
//! the device was given for that address (DNS answer) or sent to it (TLS/QUIC SNI), with its
//! service. Keyed like the per-device endpoint rows, by `device_id` and the remote address in
//! its canonical text form (`IpAddr`'s Display), so pages can join the two.
//!
//! Written once per flush interval in one transaction, which also drops rows older than the
//! retention (SD-card writes, issue 26). A device's rows go with it (ON DELETE CASCADE) and
//! follow it when it is merged into another.

use super::{Store, StoreError, sql_err};
use crate::model::MacAddr;
use rusqlite::params;
use serde::Serialize;

/// One stored name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NameRow {
    pub device_id: i64,
    pub mac: MacAddr,
    pub remote_ip: String,
    pub name: String,
    pub service: String,
    /// "dns", "tls" or "quic".
    pub source: String,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
}

/// Stores one interval's names and deletes rows last seen before `keep_from_ns`, inside the
/// caller's transaction (the flusher's: one commit per flush interval, docs/DURABILITY.md). An
/// SNI already stored is not replaced by a DNS name for the same address.
pub fn write_names_in(
    tx: &rusqlite::Connection,
    path: &std::path::Path,
    rows: &[crate::names::table::Row],
    keep_from_ns: i64,
) -> Result<usize, StoreError> {
    {
        let mut ins = tx
                .prepare_cached(
                    "INSERT INTO device_names
                         (device_id, remote_ip, name, service, source, dns_ttl_secs, first_seen_ns, last_seen_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (device_id, remote_ip) DO UPDATE SET
                         first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
                         last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
                         name = CASE WHEN source <> 'dns' AND excluded.source = 'dns'
                                THEN name ELSE excluded.name END,
                         service = CASE WHEN source <> 'dns' AND excluded.source = 'dns'
                                THEN service ELSE excluded.service END,
                         dns_ttl_secs = CASE WHEN source <> 'dns' AND excluded.source = 'dns'
                                THEN dns_ttl_secs ELSE excluded.dns_ttl_secs END,
                         source = CASE WHEN source <> 'dns' AND excluded.source = 'dns'
                                THEN source ELSE excluded.source END",
                )
                .map_err(sql_err(path, "preparing the names write"))?;
        for ((mac, ip), e) in rows {
            let device = super::devices::ensure_device(tx, *mac, e.first_seen)
                .map_err(sql_err(path, "finding a device for its names"))?;
            ins.execute(params![
                device,
                ip.to_string(),
                e.name,
                crate::names::services::service_of(&e.name),
                e.source.as_str(),
                e.ttl,
                e.first_seen,
                e.last_seen
            ])
            .map_err(sql_err(path, "writing a device name"))?;
        }
    }
    tx.execute(
        "DELETE FROM device_names WHERE last_seen_ns < ?1",
        [keep_from_ns],
    )
    .map_err(sql_err(path, "pruning device names"))?;
    Ok(rows.len())
}

impl Store {
    /// Stores one interval's names and deletes rows last seen before `keep_from_ns`, in one
    /// transaction of its own ([`write_names_in`]).
    pub fn write_names(
        &mut self,
        rows: &[crate::names::table::Row],
        keep_from_ns: i64,
    ) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(sql_err(&path, "starting the names write"))?;
        let n = write_names_in(&tx, &path, rows, keep_from_ns)?;
        tx.commit()
            .map_err(sql_err(&path, "committing the names write"))?;
        Ok(n)
    }

    /// Every stored name, by device then remote address.
    pub fn device_names(&self) -> Result<Vec<NameRow>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT n.device_id, (SELECT min(m.mac) FROM device_macs m WHERE m.device_id = n.device_id),
                        n.remote_ip, n.name, n.service, n.source, n.first_seen_ns, n.last_seen_ns
                 FROM device_names n ORDER BY n.device_id, n.remote_ip",
            )
            .map_err(sql_err(&self.path, "reading device names"))?;
        q.query_map([], |r| {
            Ok(NameRow {
                device_id: r.get(0)?,
                mac: super::identity::mac_from_key(r.get::<_, Option<i64>>(1)?.unwrap_or(0)),
                remote_ip: r.get(2)?,
                name: r.get(3)?,
                service: r.get(4)?,
                source: r.get(5)?,
                first_seen_ns: r.get(6)?,
                last_seen_ns: r.get(7)?,
            })
        })
        .and_then(|r| r.collect())
        .map_err(sql_err(&self.path, "reading device names"))
    }
}

/// Moves device `from`'s names to `into` (a merge), keeping `into`'s name where both have one.
pub(super) fn merge_names(tx: &rusqlite::Connection, from: i64, into: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO device_names
             (device_id, remote_ip, name, service, source, dns_ttl_secs, first_seen_ns, last_seen_ns)
         SELECT ?2, remote_ip, name, service, source, dns_ttl_secs, first_seen_ns, last_seen_ns
         FROM device_names WHERE device_id = ?1",
        params![from, into],
    )?;
    tx.execute(
        "DELETE FROM device_names WHERE device_id = ?1",
        params![from],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Source;
    use crate::names::table::Entry;
    use std::net::IpAddr;

    fn entry(name: &str, source: Source, at: i64) -> Entry {
        Entry {
            name: name.into(),
            source,
            first_seen: at,
            last_seen: at,
            ttl: (source == Source::Dns).then_some(60),
        }
    }

    #[test]
    fn names_are_upserted_sni_wins_old_rows_go_and_deleting_the_device_deletes_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("n.db")).unwrap();
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let ip: IpAddr = "142.250.1.2".parse().unwrap();
        let old: IpAddr = "10.9.9.9".parse().unwrap();
        store
            .write_names(&[((mac, old), entry("old.example", Source::Dns, 1))], 0)
            .unwrap();
        store
            .write_names(
                &[((mac, ip), entry("r1.googlevideo.com", Source::Tls, 100))],
                0,
            )
            .unwrap();
        store
            .write_names(&[((mac, ip), entry("other.example", Source::Dns, 200))], 50)
            .unwrap();
        let rows = store.device_names().unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(
            (
                r.mac,
                r.remote_ip.as_str(),
                r.name.as_str(),
                r.service.as_str(),
                r.source.as_str()
            ),
            (mac, "142.250.1.2", "r1.googlevideo.com", "YouTube", "tls")
        );
        assert_eq!((r.first_seen_ns, r.last_seen_ns), (100, 200));
        store
            .conn
            .execute_batch(
                "DELETE FROM device_macs; DELETE FROM presence; DELETE FROM device_events; DELETE FROM devices;",
            )
            .unwrap();
        assert!(store.device_names().unwrap().is_empty());
    }
}
