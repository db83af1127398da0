//! Internet bytes per (device, remote endpoint) per hour (issue 29, `per_device_services`): the
//! `device_remote_hour` table.
//!
//! `hour` is the UTC hour start in seconds since the epoch (the same in every zone with whole-
//! hour offsets); `remote` is [`crate::endpoints`]'s text form: an address (`203.0.113.7`,
//! `2001:db8::1`), a network (`203.0.113.0/24`, `2001:db8:1::/48`) or `other`. Per device and
//! hour the rows sum exactly to the device's internet bytes of that hour (while the setting was
//! on). Rows are added per flush; once an hour has closed, [`Store::maintain_remotes`] keeps
//! its [`KEPT_PER_HOUR`] biggest remotes per device and folds the rest into `other`, and deletes
//! hours older than `keep_services_days`. A device's rows follow it in a merge and go with it
//! when it is deleted.

use super::{Store, StoreError, sql_err};
use crate::endpoints::{ENTRIES, OTHER, RemoteUsage, remote_text};
use crate::model::MacAddr;
use rusqlite::{TransactionBehavior, params};
use std::collections::HashMap;

/// Remotes kept per device in a closed hour (besides `other`): as many as the meter keeps per
/// minute, so a device's hour reads like its busiest minute.
pub const KEPT_PER_HOUR: usize = ENTRIES;

/// Seconds in an hour.
const HOUR: i64 = 3600;

/// One remote of a device over a range: bytes up and down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteBytes {
    /// The stored text (an address, a /24 or /48 network, or `other`).
    pub remote: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// One line of a device's "what it used": the remotes of one service added up (named from the
/// device's DNS answers and server names, `device_names`), or one remote nobody named, or
/// `other` (what the per-device bound did not keep apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceBytes {
    /// The service ("YouTube", a registrable domain), or the remote as stored when unnamed.
    pub service: Option<String>,
    /// The names seen for its remotes (sorted, each once); for an unnamed line its remote.
    pub names: Vec<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

/// What one [`Store::maintain_remotes`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemotesMaintenance {
    pub deleted: u64,
    pub folded: u64,
}

/// Adds (hour, device, remote) bytes to what is there.
const ADD: &str = "INSERT INTO device_remote_hour (hour, device_id, remote, bytes_up, bytes_down)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (hour, device_id, remote) DO UPDATE SET
         bytes_up = bytes_up + excluded.bytes_up, bytes_down = bytes_down + excluded.bytes_down";

/// Adds per-minute remote rows to their hours inside the caller's transaction (the flusher's:
/// one commit per flush interval); a MAC without a device yet gets one, as with usage.
pub fn write_remotes_in(
    tx: &rusqlite::Connection,
    path: &std::path::Path,
    rows: &[RemoteUsage],
) -> Result<(), StoreError> {
    let op = "writing remote endpoints";
    // Minutes of one hour fold into one row before SQLite sees them.
    let mut sums: HashMap<(MacAddr, i64, String), (u64, u64)> = HashMap::new();
    for r in rows {
        let v = sums
            .entry((
                r.mac,
                r.minute - r.minute.rem_euclid(HOUR),
                remote_text(r.remote),
            ))
            .or_default();
        v.0 += r.up;
        v.1 += r.down;
    }
    let mut sums: Vec<_> = sums.into_iter().collect();
    sums.sort_unstable_by(|a, b| (a.0.1, a.0.0, &a.0.2).cmp(&(b.0.1, b.0.0, &b.0.2)));
    {
        let mut add = tx.prepare_cached(ADD).map_err(sql_err(path, op))?;
        let mut ids: HashMap<MacAddr, i64> = HashMap::new();
        for ((mac, hour, remote), (up, down)) in sums {
            let id = match ids.get(&mac) {
                Some(&id) => id,
                None => {
                    // A device whose sighting is not written yet (held back while the
                    // clock is not trusted) is recorded now, as usage rows do.
                    let id = super::devices::ensure_device(tx, mac, hour * 1_000_000_000)
                        .map_err(sql_err(path, op))?;
                    ids.insert(mac, id);
                    id
                }
            };
            add.execute(params![hour, id, remote, up as i64, down as i64])
                .map_err(sql_err(path, op))?;
        }
    }
    Ok(())
}

/// One line of the household's "what used the most": a service (or unnamed remote, or
/// `other`) over all devices, and each device's part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HouseholdService {
    pub line: ServiceBytes,
    /// (device id, bytes up, bytes down), most bytes first (then lowest id).
    pub devices: Vec<(i64, u64, u64)>,
}

/// (device, remote, name, service, up, down) as the service queries select them.
type ServiceRow = (i64, String, Option<String>, Option<String>, u64, u64);

fn service_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ServiceRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get::<_, i64>(4)? as u64,
        r.get::<_, i64>(5)? as u64,
    ))
}

/// Folds remote rows into service lines (keyed by the service when named, by the remote as
/// stored when not), each with its devices' parts; ordered as [`Store::device_services`]
/// documents. One fold for the device page and the household, so they cannot disagree.
fn fold_services(rows: Vec<ServiceRow>) -> Vec<HouseholdService> {
    type Line = (ServiceBytes, HashMap<i64, (u64, u64)>);
    let mut lines: HashMap<(bool, String), Line> = HashMap::new();
    for (device, remote, name, service, up, down) in rows {
        let (key, shown) = match (service, name) {
            (Some(svc), Some(name)) => ((true, svc.clone()), (Some(svc), name)),
            _ => ((false, remote.clone()), (None, remote)),
        };
        let (line, devices) = lines.entry(key).or_insert_with(|| {
            (
                ServiceBytes {
                    service: shown.0,
                    names: Vec::new(),
                    bytes_up: 0,
                    bytes_down: 0,
                },
                HashMap::new(),
            )
        });
        if !line.names.contains(&shown.1) {
            line.names.push(shown.1);
        }
        line.bytes_up += up;
        line.bytes_down += down;
        let d = devices.entry(device).or_default();
        d.0 += up;
        d.1 += down;
    }
    let mut out: Vec<HouseholdService> = lines
        .into_values()
        .map(|(mut l, devices)| {
            l.names.sort();
            let mut devices: Vec<(i64, u64, u64)> =
                devices.into_iter().map(|(id, (u, d))| (id, u, d)).collect();
            devices.sort_by_key(|&(id, u, d)| (std::cmp::Reverse(u + d), id));
            HouseholdService { line: l, devices }
        })
        .collect();
    out.sort_by(|a, b| {
        let (a, b) = (&a.line, &b.line);
        let other = |l: &ServiceBytes| l.service.is_none() && l.names == [OTHER];
        (
            other(a),
            std::cmp::Reverse(a.bytes_up + a.bytes_down),
            a.service.is_none(),
            &a.names,
        )
            .cmp(&(
                other(b),
                std::cmp::Reverse(b.bytes_up + b.bytes_down),
                b.service.is_none(),
                &b.names,
            ))
    });
    out
}

impl Store {
    /// [`write_remotes_in`] in a transaction of its own.
    pub fn write_remotes(&mut self, rows: &[RemoteUsage]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, "writing remote endpoints"))?;
        write_remotes_in(&tx, &path, rows)?;
        tx.commit()
            .map_err(sql_err(&path, "writing remote endpoints"))
    }

    /// A device's bytes per remote over the hours starting in `[from, to)` (UTC seconds), most
    /// bytes first, `other` last.
    pub fn device_remotes(
        &self,
        device_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<RemoteBytes>, StoreError> {
        let op = "reading remote endpoints";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT remote, sum(bytes_up), sum(bytes_down) FROM device_remote_hour
                 WHERE hour >= ?2 AND hour < ?3 AND device_id = ?1
                 GROUP BY remote
                 ORDER BY remote = 'other', sum(bytes_up) + sum(bytes_down) DESC, remote",
            )
            .map_err(sql_err(&self.path, op))?;
        st.query_map(params![device_id, from, to], |r| {
            Ok(RemoteBytes {
                remote: r.get(0)?,
                bytes_up: r.get::<_, i64>(1)? as u64,
                bytes_down: r.get::<_, i64>(2)? as u64,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql_err(&self.path, op))
    }

    /// A device's internet bytes over the hours starting in `[from, to)` (UTC seconds) by
    /// service: each remote joined with the name the device learned for it (issue 29), lines
    /// of one service added up, most bytes first, unnamed remotes after the named ones of the
    /// same size and `other` last. The lines sum to the device's rows in the range exactly.
    pub fn device_services(
        &self,
        device_id: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<ServiceBytes>, StoreError> {
        Ok(self
            .services_of(Some(device_id), from, to)?
            .into_iter()
            .map(|s| s.line)
            .collect())
    }

    /// The household's internet bytes over the hours starting in `[from, to)` by service, in
    /// one read of those hours' rows (the primary key starts with the hour): each device's
    /// remotes named as [`Store::device_services`] names them, so a device's share of a line
    /// is exactly its own line of that service. Per line the devices that used it, most
    /// bytes first.
    pub fn household_services(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<HouseholdService>, StoreError> {
        self.services_of(None, from, to)
    }

    /// The one reading behind [`Store::device_services`] (one device) and
    /// [`Store::household_services`] (every device), so the two cannot name or add differently.
    fn services_of(
        &self,
        device: Option<i64>,
        from: i64,
        to: i64,
    ) -> Result<Vec<HouseholdService>, StoreError> {
        let op = "reading services";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT r.device_id, r.remote, n.name, n.service, sum(r.bytes_up), sum(r.bytes_down)
                 FROM device_remote_hour r
                 LEFT JOIN device_names n ON n.device_id = r.device_id AND n.remote_ip = r.remote
                 WHERE r.hour >= ?2 AND r.hour < ?3 AND (?1 IS NULL OR r.device_id = ?1)
                 GROUP BY r.device_id, r.remote",
            )
            .map_err(sql_err(&self.path, op))?;
        let mut rows = st
            .query_map(params![device, from, to], service_row)
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql_err(&self.path, op))?;
        self.name_networks(&mut rows, device)?;
        Ok(fold_services(rows))
    }

    /// Names the unnamed network rows (a /24 or /48 the per-minute bound aggregated, see
    /// [`crate::endpoints`]) by containment: the SQL join matches single addresses only, and
    /// IPv6 text compression rules out matching prefixes as text. A network whose named
    /// addresses all belong to one service is that service (a CDN's /24 is one provider);
    /// one whose addresses name several services stays unnamed rather than guess. Reads the
    /// names only when such a row exists (rare: only a device with more than
    /// [`crate::endpoints::ENTRIES`] remotes in a minute).
    fn name_networks(
        &self,
        rows: &mut [ServiceRow],
        device: Option<i64>,
    ) -> Result<(), StoreError> {
        use crate::endpoints::Remote;
        let unnamed = |r: &ServiceRow| r.2.is_none() && r.1.contains('/');
        if !rows.iter().any(unnamed) {
            return Ok(());
        }
        let op = "reading names for aggregated networks";
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT device_id, remote_ip, name, service FROM device_names
                 WHERE ?1 IS NULL OR device_id = ?1",
            )
            .map_err(sql_err(&self.path, op))?;
        let names = st
            .query_map(params![device], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(sql_err(&self.path, op))?;
        let names: Vec<(i64, std::net::IpAddr, String, String)> = names
            .into_iter()
            .filter_map(|(d, ip, n, s)| Some((d, ip.parse().ok()?, n, s)))
            .collect();
        for row in rows.iter_mut().filter(|r| unnamed(r)) {
            let Ok(net) = row.1.parse::<Remote>() else {
                continue;
            };
            let mut inside = names
                .iter()
                .filter(|(d, ip, _, _)| *d == row.0 && net.contains(*ip));
            let Some(first) = inside.next() else {
                continue;
            };
            let mut shown = first;
            let mut one_service = true;
            for n in inside {
                one_service &= n.3 == first.3;
                // The most familiar name shown: the shortest, then the first in order.
                if (n.2.len(), &n.2) < (shown.2.len(), &shown.2) {
                    shown = n;
                }
            }
            if one_service {
                row.2 = Some(shown.2.clone());
                row.3 = Some(first.3.clone());
            }
        }
        Ok(())
    }

    /// Deletes hours older than `keep_secs` before `now` and bounds the closed hours of the
    /// last day to [`KEPT_PER_HOUR`] remotes per device (the rest folded into `other`, sums
    /// unchanged). Cheap when there is nothing to do: it reads one day of rows at most.
    pub fn maintain_remotes(
        &mut self,
        keep_secs: i64,
        now: i64,
    ) -> Result<RemotesMaintenance, StoreError> {
        let path = self.path.clone();
        let op = "maintaining remote endpoints";
        let current = now - now.rem_euclid(HOUR);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err(&path, op))?;
        let deleted = tx
            .execute(
                "DELETE FROM device_remote_hour WHERE hour < ?1",
                [now.saturating_sub(keep_secs)],
            )
            .map_err(sql_err(&path, op))? as u64;
        // Ranked in a temporary table so the fold and the delete agree on the same rows.
        let ranked = format!(
            "CREATE TEMP TABLE IF NOT EXISTS remote_fold (hour INTEGER, device_id INTEGER, remote TEXT);
             DELETE FROM temp.remote_fold;
             INSERT INTO temp.remote_fold
                 SELECT hour, device_id, remote FROM (
                     SELECT hour, device_id, remote, row_number() OVER (
                         PARTITION BY hour, device_id
                         ORDER BY bytes_up + bytes_down DESC, remote) AS rank
                     FROM device_remote_hour
                     WHERE hour >= {from} AND hour < {current} AND remote <> '{OTHER}')
                 WHERE rank > {KEPT_PER_HOUR};",
            from = current - 24 * HOUR,
        );
        tx.execute_batch(&ranked).map_err(sql_err(&path, op))?;
        tx.execute(
            &format!(
                "INSERT INTO device_remote_hour (hour, device_id, remote, bytes_up, bytes_down)
                     SELECT r.hour, r.device_id, '{OTHER}', sum(r.bytes_up), sum(r.bytes_down)
                     FROM device_remote_hour r JOIN temp.remote_fold f
                         ON f.hour = r.hour AND f.device_id = r.device_id AND f.remote = r.remote
                     GROUP BY r.hour, r.device_id
                     ON CONFLICT (hour, device_id, remote) DO UPDATE SET
                         bytes_up = bytes_up + excluded.bytes_up,
                         bytes_down = bytes_down + excluded.bytes_down"
            ),
            [],
        )
        .map_err(sql_err(&path, op))?;
        let folded = tx
            .execute(
                "DELETE FROM device_remote_hour WHERE (hour, device_id, remote) IN
                     (SELECT hour, device_id, remote FROM temp.remote_fold)",
                [],
            )
            .map_err(sql_err(&path, op))? as u64;
        tx.execute_batch("DELETE FROM temp.remote_fold;")
            .map_err(sql_err(&path, op))?;
        tx.commit().map_err(sql_err(&path, op))?;
        Ok(RemotesMaintenance { deleted, folded })
    }
}

/// Moves device `from`'s rows to `into` (a merge), adding where both have a row.
pub(super) fn merge_remotes(
    tx: &rusqlite::Connection,
    from: i64,
    into: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO device_remote_hour (hour, device_id, remote, bytes_up, bytes_down)
         SELECT hour, ?2, remote, bytes_up, bytes_down FROM device_remote_hour WHERE device_id = ?1
         ON CONFLICT (hour, device_id, remote) DO UPDATE SET
             bytes_up = bytes_up + excluded.bytes_up, bytes_down = bytes_down + excluded.bytes_down",
        params![from, into],
    )?;
    tx.execute(
        "DELETE FROM device_remote_hour WHERE device_id = ?1",
        params![from],
    )?;
    Ok(())
}

/// Undoing a merge: the survivor loses exactly the bytes the merge added (`rows`: the merged
/// device's (hour, remote, up, down) as the merge saw them). Where maintenance has since folded
/// a remote into `other`, the bytes come off the survivor's `other` of that hour instead; a
/// row left at zero is deleted.
pub(super) fn unmerge_remotes(
    tx: &rusqlite::Connection,
    into: i64,
    rows: &[(i64, String, i64, i64)],
) -> rusqlite::Result<()> {
    let mut sub = tx.prepare(
        "UPDATE device_remote_hour SET bytes_up = max(0, bytes_up - ?4),
             bytes_down = max(0, bytes_down - ?5)
         WHERE hour = ?1 AND device_id = ?2 AND remote = ?3",
    )?;
    for (hour, remote, up, down) in rows {
        if sub.execute(params![hour, into, remote, up, down])? == 0 {
            sub.execute(params![hour, into, OTHER, up, down])?;
        }
    }
    tx.execute(
        "DELETE FROM device_remote_hour WHERE device_id = ?1 AND bytes_up = 0 AND bytes_down = 0",
        params![into],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoints::Remote;

    #[test]
    fn a_closed_hour_keeps_its_biggest_remotes_and_old_hours_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = Store::open(&dir.path().join("r.db")).unwrap();
        let mac: MacAddr = "dc:a6:32:00:00:01".parse().unwrap();
        let row = |minute, i: u32, up| RemoteUsage {
            mac,
            minute,
            remote: Some(Remote::V4(0x0800_0000 + i)),
            up,
            down: 1,
        };
        // Hour 0 (old) and hour 7200: 40 remotes, remote i with i+1 bytes up, plus "other".
        let mut rows: Vec<RemoteUsage> = (0..40)
            .map(|i| row(7200 + 60, i, u64::from(i) + 1))
            .collect();
        rows.push(RemoteUsage {
            remote: None,
            ..row(7200, 0, 5)
        });
        rows.push(row(0, 0, 9));
        st.write_remotes(&rows).unwrap();
        let id: i64 = st
            .conn
            .query_row("SELECT device_id FROM device_macs", [], |r| r.get(0))
            .unwrap();
        let before = st.device_remotes(id, 7200, 10_800).unwrap();
        let sum = |v: &[RemoteBytes]| {
            v.iter()
                .fold((0, 0), |(u, d), r| (u + r.bytes_up, d + r.bytes_down))
        };
        // Now is in hour 10800: hour 7200 is closed; keeping 2 hours deletes hour 0.
        let r = st.maintain_remotes(2 * 3600, 10_800 + 60).unwrap();
        assert_eq!(
            r,
            RemotesMaintenance {
                deleted: 1,
                folded: 8
            }
        );
        let after = st.device_remotes(id, 7200, 10_800).unwrap();
        assert_eq!(after.len(), KEPT_PER_HOUR + 1);
        assert_eq!(sum(&after), sum(&before));
        assert_eq!(after[0].remote, "8.0.0.39");
        let other = after.last().unwrap();
        assert_eq!(other.remote, OTHER);
        assert_eq!(other.bytes_up, 5 + (1..=8).sum::<u64>());
        assert!(st.device_remotes(id, 0, 3600).unwrap().is_empty());
        // Nothing more to do the second time.
        let again = st.maintain_remotes(2 * 3600, 10_800 + 60).unwrap();
        assert_eq!(again, RemotesMaintenance::default());
    }

    /// Two remotes named as one service add up, an unnamed remote keeps its address, `other`
    /// comes last, and the lines sum to the device's rows.
    #[test]
    fn services_join_names_and_add_up_to_the_remote_rows() {
        use crate::names::Source;
        use crate::names::table::Entry;
        let dir = tempfile::tempdir().unwrap();
        let mut st = Store::open(&dir.path().join("s.db")).unwrap();
        let mac: MacAddr = "dc:a6:32:00:00:01".parse().unwrap();
        let row = |remote: Option<u32>, up, down| RemoteUsage {
            mac,
            minute: 7200,
            remote: remote.map(Remote::V4),
            up,
            down,
        };
        st.write_remotes(&[
            row(Some(0x0a00_0001), 10, 1000),
            row(Some(0x0a00_0002), 20, 2000),
            row(Some(0x0a00_0003), 5, 5000),
            row(None, 1, 9000),
        ])
        .unwrap();
        let named = |ip: &str, name: &str| {
            (
                (mac, ip.parse().unwrap()),
                Entry {
                    name: name.into(),
                    source: Source::Dns,
                    first_seen: 7200 * 1_000_000_000,
                    last_seen: 7200 * 1_000_000_000,
                    ttl: Some(60),
                },
            )
        };
        st.write_names(
            &[
                named("10.0.0.1", "r1.googlevideo.com"),
                named("10.0.0.2", "r2.googlevideo.com"),
            ],
            0,
        )
        .unwrap();
        let id: i64 = st
            .conn
            .query_row("SELECT device_id FROM device_macs", [], |r| r.get(0))
            .unwrap();
        let lines = st.device_services(id, 7200, 10_800).unwrap();
        let shown: Vec<(Option<&str>, Vec<&str>, u64, u64)> = lines
            .iter()
            .map(|l| {
                (
                    l.service.as_deref(),
                    l.names.iter().map(String::as_str).collect(),
                    l.bytes_up,
                    l.bytes_down,
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (None, vec!["10.0.0.3"], 5, 5000),
                (
                    Some("YouTube"),
                    vec!["r1.googlevideo.com", "r2.googlevideo.com"],
                    30,
                    3000
                ),
                (None, vec![OTHER], 1, 9000),
            ]
        );
        let total = |v: &[ServiceBytes]| v.iter().map(|l| l.bytes_up + l.bytes_down).sum::<u64>();
        let rows = st.device_remotes(id, 7200, 10_800).unwrap();
        assert_eq!(
            total(&lines),
            rows.iter().map(|r| r.bytes_up + r.bytes_down).sum::<u64>()
        );
    }

    /// A /24 or /48 the per-minute bound aggregated is named by the addresses inside it: by
    /// containment, also for IPv6 whose text form hides the prefix; a network whose names
    /// disagree on the service stays unnamed.
    #[test]
    fn aggregated_networks_are_named_by_the_addresses_inside() {
        use crate::names::Source;
        use crate::names::table::Entry;
        let dir = tempfile::tempdir().unwrap();
        let mut st = Store::open(&dir.path().join("n.db")).unwrap();
        let a: MacAddr = "dc:a6:32:00:00:01".parse().unwrap();
        let row = |remote, up, down| RemoteUsage {
            mac: a,
            minute: 7200,
            remote: Some(remote),
            up,
            down,
        };
        let v6: u128 = "2a00:1450:4001::"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .into();
        st.write_remotes(&[
            // 203.0.113.0/24: two addresses of one service.
            row(Remote::V4Net(0xcb00_7100), 10, 1000),
            // 198.51.100.0/24: addresses of two services.
            row(Remote::V4Net(0xc633_6400), 20, 2000),
            row(Remote::V6Net(v6), 30, 3000),
        ])
        .unwrap();
        let named = |ip: &str, name: &str| {
            (
                (a, ip.parse().unwrap()),
                Entry {
                    name: name.into(),
                    source: Source::Dns,
                    first_seen: 7200 * 1_000_000_000,
                    last_seen: 7200 * 1_000_000_000,
                    ttl: None,
                },
            )
        };
        st.write_names(
            &[
                named("203.0.113.7", "rr3---sn-4g5e6nzz.googlevideo.com"),
                named("203.0.113.9", "r1.googlevideo.com"),
                named("198.51.100.1", "cache1.steamcontent.com"),
                named("198.51.100.2", "r1.googlevideo.com"),
                named("2a00:1450:4001:81c::200e", "r2.googlevideo.com"),
                // Outside every stored network.
                named("203.0.114.1", "ipv4-c001.1.nflxvideo.net"),
            ],
            0,
        )
        .unwrap();
        let id = st.list_devices().unwrap()[0].id;
        let lines = st.device_services(id, 7200, 10_800).unwrap();
        let shown: Vec<(Option<&str>, Vec<&str>, u64)> = lines
            .iter()
            .map(|l| {
                (
                    l.service.as_deref(),
                    l.names.iter().map(String::as_str).collect(),
                    l.bytes_up + l.bytes_down,
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (
                    Some("YouTube"),
                    vec!["r1.googlevideo.com", "r2.googlevideo.com"],
                    1010 + 3030
                ),
                (None, vec!["198.51.100.0/24"], 2020),
            ]
        );
        // The household reads the same way.
        let all = st.household_services(7200, 10_800).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].line, lines[0]);
    }

    /// The household's lines over two devices: one read, each device's part of a line is
    /// exactly that device's own line, and the parts add up to the line.
    #[test]
    fn household_lines_are_the_devices_lines_added_up() {
        use crate::names::Source;
        use crate::names::table::Entry;
        let dir = tempfile::tempdir().unwrap();
        let mut st = Store::open(&dir.path().join("h.db")).unwrap();
        let a: MacAddr = "dc:a6:32:00:00:01".parse().unwrap();
        let b: MacAddr = "dc:a6:32:00:00:02".parse().unwrap();
        let row = |mac, minute, ip: Option<u32>, up, down| RemoteUsage {
            mac,
            minute,
            remote: ip.map(Remote::V4),
            up,
            down,
        };
        st.write_remotes(&[
            row(a, 7200, Some(0x0a00_0001), 10, 1000),
            row(b, 7200, Some(0x0a00_0001), 20, 5000),
            row(b, 10_800, Some(0x0a00_0002), 1, 100),
            row(a, 10_800, Some(0x0a00_0003), 2, 200),
            row(a, 10_800, None, 3, 300),
            // Outside the range.
            row(b, 14_400, Some(0x0a00_0001), 9, 9000),
        ])
        .unwrap();
        let named = |mac, ip: &str| {
            (
                (mac, ip.parse().unwrap()),
                Entry {
                    name: "r1.googlevideo.com".into(),
                    source: Source::Tls,
                    first_seen: 7200 * 1_000_000_000,
                    last_seen: 7200 * 1_000_000_000,
                    ttl: None,
                },
            )
        };
        st.write_names(&[named(a, "10.0.0.1"), named(b, "10.0.0.2")], 0)
            .unwrap();
        let ids: Vec<i64> = st.list_devices().unwrap().iter().map(|d| d.id).collect();
        let all = st.household_services(7200, 14_400).unwrap();
        // b's bytes to 10.0.0.1 have no name from b: unknown, though a named it.
        let shown: Vec<(Option<&str>, &[String], u64)> = all
            .iter()
            .map(|s| {
                (
                    s.line.service.as_deref(),
                    s.line.names.as_slice(),
                    s.line.bytes_up + s.line.bytes_down,
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                (None, &["10.0.0.1".to_string()][..], 5020),
                (
                    Some("YouTube"),
                    &["r1.googlevideo.com".to_string()][..],
                    1111
                ),
                (None, &["10.0.0.3".to_string()][..], 202),
                (None, &[OTHER.to_string()][..], 303),
            ]
        );
        for s in &all {
            let parts: (u64, u64) = s
                .devices
                .iter()
                .fold((0, 0), |(u, d), p| (u + p.1, d + p.2));
            assert_eq!(parts, (s.line.bytes_up, s.line.bytes_down));
            for &(id, up, down) in &s.devices {
                let own = st.device_services(id, 7200, 14_400).unwrap();
                let mine = own
                    .iter()
                    .find(|l| l.service == s.line.service && l.names == s.line.names);
                let mine = mine.unwrap_or_else(|| panic!("{id}: {:?}", s.line));
                assert_eq!((mine.bytes_up, mine.bytes_down), (up, down));
            }
        }
        assert_eq!(ids.len(), 2);
    }
}
