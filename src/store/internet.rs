//! The internet-quality tables (issue 27): probe minutes and the outage log.
//!
//! The probe thread writes finished minutes in batches (as the accounting flush does, to spare
//! the SD card) and each outage as soon as it opens or closes, so the log survives a power cut
//! that ends the outage's story. Minute rows are kept as long as hour rows of usage
//! (`keep_hours_days`): one small row per minute is about 60 kB a day, so no rollup is needed
//! for the 30-day chart and the monthly report.

use super::{Store, StoreError, sql_err};
use crate::internet::passive::{DeviceHour, Histogram, PassiveMinute};
use crate::internet::{Group, MinuteRow, Outage, OutageEvent, State};
use rusqlite::{OptionalExtension, params};

/// A device's passive latency: per hour, and over the hours asked (`total.minute` is the
/// range's start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DevicePassive {
    pub hours: Vec<PassiveMinute>,
    pub total: PassiveMinute,
}

/// Adds a device's new samples to its stored hour (one row per MAC and hour).
fn add_device_hour(tx: &rusqlite::Connection, d: &DeviceHour) -> rusqlite::Result<()> {
    let mac = super::identity::mac_key(d.mac);
    let old: Option<Vec<u8>> = tx
        .prepare_cached("SELECT buckets FROM passive_device_hour WHERE mac = ?1 AND hour = ?2")?
        .query_row(params![mac, d.hour], |r| r.get(0))
        .optional()?;
    let mut h = Histogram::new(d.hour);
    if let Some(old) = old {
        if !h.add_sparse(&old) {
            tracing::warn!(mac = %d.mac, hour = d.hour, "a stored passive latency histogram was unreadable; the hour starts again");
            h = Histogram::new(d.hour);
        }
    }
    if !h.add_sparse(&d.buckets) {
        return Ok(());
    }
    let s = h.summary();
    tx.prepare_cached(
        "INSERT OR REPLACE INTO passive_device_hour (mac, hour, handshakes, median_us, p95_us, buckets) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![mac, d.hour, s.handshakes, s.median_us, s.p95_us, h.to_sparse()])?;
    Ok(())
}

const MINUTE_COLUMNS: &str = "minute, rounds, up, internet_down, lan_down, dns_down, \
    gw_sent, gw_received, gw_median_us, gw_p95_us, res_sent, res_received, res_median_us, res_p95_us, \
    net_sent, net_received, net_median_us, net_p95_us, dns_queries, dns_failures, dns_median_us";

/// One stored outage with its row id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredOutage {
    pub id: i64,
    pub outage: Outage,
    /// The last time it was seen going on (ns).
    pub last_ns: i64,
}

fn group(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Group> {
    Ok(Group {
        sent: r.get(at)?,
        received: r.get(at + 1)?,
        median_us: r.get(at + 2)?,
        p95_us: r.get(at + 3)?,
    })
}

fn minute_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MinuteRow> {
    Ok(MinuteRow {
        minute: r.get(0)?,
        rounds: r.get(1)?,
        up: r.get(2)?,
        internet_down: r.get(3)?,
        lan_down: r.get(4)?,
        dns_down: r.get(5)?,
        gateway: group(r, 6)?,
        resolvers: group(r, 10)?,
        internet: group(r, 14)?,
        dns_queries: r.get(18)?,
        dns_failures: r.get(19)?,
        dns_median_us: r.get(20)?,
    })
}

fn outage_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredOutage> {
    let kind: String = r.get(1)?;
    Ok(StoredOutage {
        id: r.get(0)?,
        outage: Outage {
            kind: State::parse(&kind).unwrap_or(State::Unknown),
            start_ns: r.get(2)?,
            end_ns: r.get(3)?,
        },
        last_ns: r.get(4)?,
    })
}

/// [`Store::write_internet`] inside a transaction already open: the flusher's, when the probe
/// thread queues its finished minutes for it ([`super::batch`]).
pub fn write_internet_in(
    tx: &rusqlite::Connection,
    path: &std::path::Path,
    minutes: &[MinuteRow],
    events: &[OutageEvent],
    open_seen_ns: Option<i64>,
) -> Result<(), StoreError> {
    let path = path.to_path_buf();
    let mut ins = tx
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO internet_minute ({MINUTE_COLUMNS}) \
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21)"
        ))
        .map_err(sql_err(&path, "preparing the internet minutes"))?;
    for m in minutes {
        let (g, r, n) = (m.gateway, m.resolvers, m.internet);
        ins.execute(params![
            m.minute,
            m.rounds,
            m.up,
            m.internet_down,
            m.lan_down,
            m.dns_down,
            g.sent,
            g.received,
            g.median_us,
            g.p95_us,
            r.sent,
            r.received,
            r.median_us,
            r.p95_us,
            n.sent,
            n.received,
            n.median_us,
            n.p95_us,
            m.dns_queries,
            m.dns_failures,
            m.dns_median_us
        ])
        .map_err(sql_err(&path, "writing an internet minute"))?;
    }
    for e in events {
        match e {
            OutageEvent::Opened(o) => tx.execute(
                "INSERT INTO internet_outage (kind, start_ns, end_ns, last_ns) VALUES (?1, ?2, NULL, ?2)",
                params![o.kind.as_str(), o.start_ns],
            ),
            OutageEvent::Closed(o) => tx.execute(
                "UPDATE internet_outage SET end_ns = ?3, last_ns = ?3 \
                 WHERE end_ns IS NULL AND kind = ?1 AND start_ns = ?2",
                params![o.kind.as_str(), o.start_ns, o.end_ns],
            ),
        }
        .map_err(sql_err(&path, "writing an internet outage"))?;
    }
    if let Some(at) = open_seen_ns {
        tx.execute(
            "UPDATE internet_outage SET last_ns = max(last_ns, ?1) WHERE end_ns IS NULL",
            [at],
        )
        .map_err(sql_err(&path, "updating the open internet outage"))?;
    }
    Ok(())
}

/// [`Store::prune_internet`] on `conn`: in the flusher's transaction when queued.
pub fn prune_internet_in(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    minute: i64,
) -> Result<(), StoreError> {
    conn.execute("DELETE FROM internet_minute WHERE minute < ?1", [minute])
        .and_then(|_| conn.execute("DELETE FROM passive_minute WHERE minute < ?1", [minute]))
        .and_then(|_| conn.execute("DELETE FROM passive_device_hour WHERE hour < ?1", [minute]))
        .and_then(|_| {
            conn.execute(
                "DELETE FROM internet_outage WHERE end_ns IS NOT NULL AND end_ns < ?1",
                [minute.saturating_mul(1_000_000_000)],
            )
        })
        .map(|_| ())
        .map_err(sql_err(path, "pruning internet history"))
}

/// Writes passive-latency minutes; a minute written again (the current minute, at each flush
/// until it is over) is replaced by its fuller summary. Each device's new samples are added to
/// what its hour already holds. Runs inside the caller's transaction (the flusher's, so that a
/// flush interval stays one commit).
pub fn write_passive_in(
    conn: &rusqlite::Connection,
    path: &std::path::Path,
    rows: &[PassiveMinute],
    devices: &[DeviceHour],
) -> Result<(), StoreError> {
    let mut ins = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO passive_minute (minute, handshakes, median_us, p95_us) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(sql_err(path, "preparing the passive latency write"))?;
    for r in rows {
        ins.execute(params![r.minute, r.handshakes, r.median_us, r.p95_us])
            .map_err(sql_err(path, "writing a passive latency minute"))?;
    }
    for d in devices {
        add_device_hour(conn, d).map_err(sql_err(path, "writing a device's passive latency"))?;
    }
    Ok(())
}

impl Store {
    /// Writes finished minutes, outage events, and how far the open outage (if any) was seen
    /// going on, in one transaction. A minute written twice (a retried batch) is replaced.
    pub fn write_internet(
        &mut self,
        minutes: &[MinuteRow],
        events: &[OutageEvent],
        open_seen_ns: Option<i64>,
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(sql_err(&path, "starting the internet write"))?;
        write_internet_in(&tx, &path, minutes, events, open_seen_ns)?;
        tx.commit()
            .map_err(sql_err(&path, "committing the internet write"))
    }

    /// At start: the outage a previous run left open is resumed if it was seen going on within
    /// `resume_within_ns` of `now_ns` (a restart during an outage); older ones are closed where
    /// they were last seen (lanmeter was not running to see the end).
    pub fn internet_outage_on_start(
        &mut self,
        now_ns: i64,
        resume_within_ns: i64,
    ) -> Result<Option<Outage>, StoreError> {
        let path = self.path.clone();
        let open: Vec<StoredOutage> = {
            let mut q = self
                .conn
                .prepare("SELECT id, kind, start_ns, end_ns, last_ns FROM internet_outage WHERE end_ns IS NULL ORDER BY start_ns")
                .map_err(sql_err(&path, "reading open internet outages"))?;
            q.query_map([], outage_row)
                .and_then(|r| r.collect())
                .map_err(sql_err(&path, "reading open internet outages"))?
        };
        let mut resumed = None;
        for (i, o) in open.iter().enumerate() {
            if i + 1 == open.len() && now_ns - o.last_ns <= resume_within_ns {
                resumed = Some(o.outage);
                continue;
            }
            self.conn
                .execute(
                    "UPDATE internet_outage SET end_ns = last_ns WHERE id = ?1",
                    [o.id],
                )
                .map_err(sql_err(&path, "closing an old internet outage"))?;
        }
        Ok(resumed)
    }

    /// Deletes probe minutes before `minute` (Unix seconds) and outages that ended before it.
    pub fn prune_internet(&mut self, minute: i64) -> Result<(), StoreError> {
        prune_internet_in(&self.conn, &self.path, minute)
    }

    /// Probe minutes with `from <= minute < to` (Unix seconds), oldest first.
    pub fn internet_minutes(&self, from: i64, to: i64) -> Result<Vec<MinuteRow>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(&format!(
                "SELECT {MINUTE_COLUMNS} FROM internet_minute WHERE minute >= ?1 AND minute < ?2 ORDER BY minute"
            ))
            .map_err(sql_err(&self.path, "reading internet minutes"))?;
        q.query_map([from, to], minute_row)
            .and_then(|r| r.collect())
            .map_err(sql_err(&self.path, "reading internet minutes"))
    }

    /// Writes passive-latency minutes in a transaction of their own ([`write_passive_in`]).
    pub fn write_passive(
        &mut self,
        rows: &[PassiveMinute],
        devices: &[DeviceHour],
    ) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(sql_err(&path, "starting the passive latency write"))?;
        write_passive_in(&tx, &path, rows, devices)?;
        tx.commit()
            .map_err(sql_err(&path, "committing the passive latency write"))
    }

    /// Passive-latency minutes with `from <= minute < to` (Unix seconds), oldest first.
    pub fn passive_minutes(&self, from: i64, to: i64) -> Result<Vec<PassiveMinute>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT minute, handshakes, median_us, p95_us FROM passive_minute \
                 WHERE minute >= ?1 AND minute < ?2 ORDER BY minute",
            )
            .map_err(sql_err(&self.path, "reading passive latency"))?;
        q.query_map([from, to], |r| {
            Ok(PassiveMinute {
                minute: r.get(0)?,
                handshakes: r.get(1)?,
                median_us: r.get(2)?,
                p95_us: r.get(3)?,
            })
        })
        .and_then(|r| r.collect())
        .map_err(sql_err(&self.path, "reading passive latency"))
    }

    /// A device's passive latency (every MAC it owns) per hour with `from <= hour < to` (Unix
    /// seconds, oldest first), and all those hours together.
    pub fn passive_device(
        &self,
        device_id: i64,
        from: i64,
        to: i64,
    ) -> Result<DevicePassive, StoreError> {
        let path = &self.path;
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT hour, buckets FROM passive_device_hour \
                 WHERE mac IN (SELECT mac FROM device_macs WHERE device_id = ?1) \
                 AND hour >= ?2 AND hour < ?3 ORDER BY hour",
            )
            .map_err(sql_err(path, "reading a device's passive latency"))?;
        let rows = q
            .query_map(params![device_id, from, to], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(sql_err(path, "reading a device's passive latency"))?;
        let mut all = Histogram::new(from);
        let mut hours = Vec::new();
        let mut hour = Histogram::new(i64::MIN);
        for (start, buckets) in rows {
            // Several MACs of one device have one row each for the same hour.
            if start != hour.minute {
                if hour.count() > 0 {
                    hours.push(hour.summary());
                }
                hour = Histogram::new(start);
            }
            let mut h = Histogram::new(start);
            if h.add_sparse(&buckets) {
                hour.merge(&h);
                all.merge(&h);
            }
        }
        if hour.count() > 0 {
            hours.push(hour.summary());
        }
        Ok(DevicePassive {
            hours,
            total: all.summary(),
        })
    }

    /// The newest probe minute.
    pub fn internet_last_minute(&self) -> Result<Option<MinuteRow>, StoreError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {MINUTE_COLUMNS} FROM internet_minute ORDER BY minute DESC LIMIT 1"
                ),
                [],
                minute_row,
            )
            .optional()
            .map_err(sql_err(&self.path, "reading the last internet minute"))
    }

    /// Outages that overlap `[from_ns, to_ns)`, newest first (open ones included).
    pub fn internet_outages(
        &self,
        from_ns: i64,
        to_ns: i64,
    ) -> Result<Vec<StoredOutage>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT id, kind, start_ns, end_ns, last_ns FROM internet_outage \
                 WHERE start_ns < ?2 AND coalesce(end_ns, last_ns) >= ?1 ORDER BY start_ns DESC",
            )
            .map_err(sql_err(&self.path, "reading internet outages"))?;
        q.query_map([from_ns, to_ns], outage_row)
            .and_then(|r| r.collect())
            .map_err(sql_err(&self.path, "reading internet outages"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(m: i64, median: u32) -> MinuteRow {
        MinuteRow {
            minute: m,
            rounds: 6,
            up: 6,
            internet: Group {
                sent: 36,
                received: 35,
                median_us: Some(median),
                p95_us: Some(median * 2),
            },
            dns_queries: 6,
            dns_median_us: Some(900),
            ..MinuteRow::default()
        }
    }

    #[test]
    fn minutes_and_outages_round_trip_and_an_old_open_outage_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("i.db")).unwrap();
        let o = Outage {
            kind: State::InternetDown,
            start_ns: 60_000_000_000,
            end_ns: None,
        };
        s.write_internet(
            &[minute(60, 20_000), minute(120, 30_000)],
            &[OutageEvent::Opened(o)],
            None,
        )
        .unwrap();
        // Retried batch: replaced, not doubled.
        s.write_internet(&[minute(120, 31_000)], &[], Some(90_000_000_000))
            .unwrap();
        let rows = s.internet_minutes(0, 1_000).unwrap();
        assert_eq!(rows, [minute(60, 20_000), minute(120, 31_000)]);
        assert_eq!(s.internet_last_minute().unwrap(), Some(minute(120, 31_000)));
        let open = s.internet_outages(0, i64::MAX).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!((open[0].outage, open[0].last_ns), (o, 90_000_000_000));
        // A restart soon after: resumed. Much later: closed where last seen.
        assert_eq!(
            s.internet_outage_on_start(100_000_000_000, 60_000_000_000)
                .unwrap(),
            Some(o)
        );
        assert_eq!(
            s.internet_outage_on_start(900_000_000_000, 60_000_000_000)
                .unwrap(),
            None
        );
        let closed = s.internet_outages(0, i64::MAX).unwrap();
        assert_eq!(closed[0].outage.end_ns, Some(90_000_000_000));
        // Closing through an event.
        let o2 = Outage {
            kind: State::DnsDown,
            start_ns: 200_000_000_000,
            end_ns: None,
        };
        s.write_internet(
            &[],
            &[
                OutageEvent::Opened(o2),
                OutageEvent::Closed(Outage {
                    end_ns: Some(230_000_000_000),
                    ..o2
                }),
            ],
            None,
        )
        .unwrap();
        let all = s.internet_outages(0, i64::MAX).unwrap();
        assert_eq!(all[0].outage.end_ns, Some(230_000_000_000));
        s.prune_internet(100).unwrap();
        assert_eq!(s.internet_minutes(0, 1_000).unwrap(), [minute(120, 31_000)]);
        assert_eq!(s.internet_outages(0, i64::MAX).unwrap().len(), 1);
    }

    #[test]
    fn device_hours_add_up_follow_a_merge_and_are_pruned() {
        use crate::model::{MacAddr, Sighting};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("p.db")).unwrap();
        let (a, b): (MacAddr, MacAddr) = (
            "dc:a6:32:00:00:01".parse().unwrap(),
            "da:00:00:00:00:02".parse().unwrap(),
        );
        let seen = |mac| Sighting {
            mac,
            first_seen: 1_000_000_000,
            last_seen: 1_000_000_000,
            is_gateway: false,
        };
        s.write_flush(&[], &[seen(a), seen(b)]).unwrap();
        let ids: Vec<i64> = s.list_devices().unwrap().iter().map(|d| d.id).collect();
        let hour = |mac, start, ms: &[u64]| {
            let mut h = Histogram::new(start);
            for m in ms {
                h.add(m * 1000);
            }
            DeviceHour {
                mac,
                hour: start,
                handshakes: h.count(),
                buckets: h.to_sparse(),
            }
        };
        // Two flushes into A's first hour add up (10, 20 then 30 ms), then a second hour.
        s.write_passive(&[], &[hour(a, 3600, &[10, 20])]).unwrap();
        s.write_passive(&[], &[hour(a, 3600, &[30]), hour(a, 7200, &[40])])
            .unwrap();
        s.write_passive(&[], &[hour(b, 3600, &[100])]).unwrap();
        let p = s.passive_device(ids[0], 0, 10_000).unwrap();
        assert_eq!(p.hours.len(), 2);
        assert_eq!(p.hours[0].handshakes, 3);
        let med = p.hours[0].median_us.unwrap();
        assert!((19_500..=20_500).contains(&med), "{med}");
        assert_eq!(p.total.handshakes, 4);
        // B merged into A: A's first hour now holds both MACs' handshakes, merged exactly.
        s.merge_devices(ids[1], ids[0], 0, "b", 0).unwrap();
        let p = s.passive_device(ids[0], 0, 10_000).unwrap();
        assert_eq!(p.hours[0].handshakes, 4);
        assert_eq!(p.total.handshakes, 5);
        let p95 = p.total.p95_us.unwrap();
        assert!((97_000..=103_000).contains(&p95), "{p95}");
        assert_eq!(
            s.passive_device(ids[0], 7200, 7201)
                .unwrap()
                .total
                .handshakes,
            1
        );
        s.prune_internet(7200).unwrap();
        assert_eq!(
            s.passive_device(ids[0], 0, 10_000)
                .unwrap()
                .total
                .handshakes,
            1
        );
        // Deleting the device's history removes its MACs' latency too.
        let tx = s.conn.transaction().unwrap();
        crate::store::rollup::remove_device_history(&tx, ids[0]).unwrap();
        tx.commit().unwrap();
        assert_eq!(
            s.passive_device(ids[0], 0, 10_000)
                .unwrap()
                .total
                .handshakes,
            0
        );
    }
}
