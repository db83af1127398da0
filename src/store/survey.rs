//! The Wi-Fi survey tables: access points with their signal per minute, what was heard on each
//! frequency per minute, and clients heard probing with the network names they asked for.
//!
//! It owns writing one collection interval ([`Store::write_survey`], one transaction) and
//! reading a time range back as a [`Survey`] ([`survey`]), the query the survey pages render.
//! SSIDs are stored as their exact bytes (BLOB): never decoded, never trimmed, so a hostile name
//! is kept losslessly and only ever shown through its safe display form. It never touches the
//! accounting tables.

use super::identity::{mac_from_key, mac_key};
use super::{Store, StoreError, sql_err};
use crate::capture::ieee80211::{Band, Channel, Security, Ssid};
use crate::model::TimestampNs;
use crate::survey::{Ap, ChannelCell, Client, Collector, SignalStats, Survey};
use rusqlite::{OptionalExtension, params};
use std::collections::{BTreeMap, HashMap};

/// Newer facts win: the name, channel and security of the frame heard last. A hidden network
/// keeps a name a probe response revealed; `hidden` is sticky once a hidden beacon was heard.
const UPSERT_AP: &str = "
INSERT INTO wifi_ap (bssid, ssid, named, hidden, band, channel, width_mhz, center_mhz, security,
                     first_seen_ns, last_seen_ns, beacons, probe_responses)
VALUES (?1, ?2, ?13, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
ON CONFLICT (bssid) DO UPDATE SET
    ssid = CASE WHEN excluded.ssid IS NULL THEN ssid
                WHEN ssid IS NULL THEN excluded.ssid
                WHEN named AND NOT excluded.named THEN ssid
                WHEN excluded.named AND NOT named THEN excluded.ssid
                WHEN excluded.last_seen_ns >= last_seen_ns THEN excluded.ssid
                ELSE ssid END,
    named = named OR excluded.named,
    hidden = hidden OR excluded.hidden,
    band = CASE WHEN excluded.last_seen_ns >= last_seen_ns AND excluded.band IS NOT NULL
                THEN excluded.band ELSE band END,
    channel = CASE WHEN excluded.last_seen_ns >= last_seen_ns AND excluded.band IS NOT NULL
                THEN excluded.channel ELSE channel END,
    width_mhz = CASE WHEN excluded.last_seen_ns >= last_seen_ns AND excluded.band IS NOT NULL
                THEN excluded.width_mhz ELSE width_mhz END,
    center_mhz = CASE WHEN excluded.last_seen_ns >= last_seen_ns AND excluded.band IS NOT NULL
                THEN excluded.center_mhz ELSE center_mhz END,
    security = CASE WHEN excluded.last_seen_ns >= last_seen_ns THEN excluded.security
                ELSE security END,
    first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
    last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
    beacons = beacons + excluded.beacons,
    probe_responses = probe_responses + excluded.probe_responses
RETURNING id";

const ADD_AP_MINUTE: &str = "
INSERT INTO wifi_ap_minute (minute, ap_id, frames, samples, sum_dbm, min_dbm, max_dbm)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (minute, ap_id) DO UPDATE SET
    frames = frames + excluded.frames,
    samples = samples + excluded.samples,
    sum_dbm = sum_dbm + excluded.sum_dbm,
    min_dbm = CASE WHEN min_dbm IS NULL THEN excluded.min_dbm
                   WHEN excluded.min_dbm IS NULL THEN min_dbm
                   ELSE min(min_dbm, excluded.min_dbm) END,
    max_dbm = CASE WHEN max_dbm IS NULL THEN excluded.max_dbm
                   WHEN excluded.max_dbm IS NULL THEN max_dbm
                   ELSE max(max_dbm, excluded.max_dbm) END";

const ADD_CHANNEL_MINUTE: &str = "
INSERT INTO wifi_channel_minute (minute, freq_mhz, frames, airtime_us, timed_frames,
                                 strongest_dbm, first_ns, last_ns)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (minute, freq_mhz) DO UPDATE SET
    frames = frames + excluded.frames,
    airtime_us = airtime_us + excluded.airtime_us,
    timed_frames = timed_frames + excluded.timed_frames,
    strongest_dbm = CASE WHEN strongest_dbm IS NULL THEN excluded.strongest_dbm
                         WHEN excluded.strongest_dbm IS NULL THEN strongest_dbm
                         ELSE max(strongest_dbm, excluded.strongest_dbm) END,
    first_ns = min(first_ns, excluded.first_ns),
    last_ns = max(last_ns, excluded.last_ns)";

const UPSERT_CLIENT: &str = "
INSERT INTO wifi_client (mac, first_seen_ns, last_seen_ns, probes, strongest_dbm)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (mac) DO UPDATE SET
    first_seen_ns = min(first_seen_ns, excluded.first_seen_ns),
    last_seen_ns = max(last_seen_ns, excluded.last_seen_ns),
    probes = probes + excluded.probes,
    strongest_dbm = CASE WHEN strongest_dbm IS NULL THEN excluded.strongest_dbm
                         WHEN excluded.strongest_dbm IS NULL THEN strongest_dbm
                         ELSE max(strongest_dbm, excluded.strongest_dbm) END
RETURNING id";

impl Store {
    /// Writes one collection interval in one transaction. On failure nothing is written and
    /// the caller may retry with the same collector.
    pub fn write_survey(&mut self, c: &Collector) -> Result<(), StoreError> {
        let path = self.path.as_path();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(sql_err(path, "starting the survey write"))?;
        {
            let err = || sql_err(path, "writing access points");
            let mut upsert = tx.prepare_cached(UPSERT_AP).map_err(err())?;
            let mut minute = tx.prepare_cached(ADD_AP_MINUTE).map_err(err())?;
            for ap in c.aps.values() {
                let ch = ap.channel;
                let id: i64 = upsert
                    .query_row(
                        params![
                            mac_key(ap.bssid),
                            ap.ssid.as_ref().map(|s| s.as_bytes()),
                            ap.hidden,
                            ch.map(|c| c.band.key()),
                            ch.map(|c| c.number),
                            ch.map(|c| c.width_mhz),
                            ch.map(|c| c.center_mhz),
                            ap.security.as_str(),
                            ap.first_seen,
                            ap.last_seen,
                            ap.beacons as i64,
                            ap.probe_responses as i64,
                            ap.ssid.is_some_and(|s| !s.is_hidden()),
                        ],
                        |r| r.get(0),
                    )
                    .map_err(err())?;
                for (m, s) in &ap.minutes {
                    let any = s.samples > 0;
                    minute
                        .execute(params![
                            m,
                            id,
                            s.frames as i64,
                            s.samples as i64,
                            s.sum_dbm,
                            any.then_some(s.min_dbm),
                            any.then_some(s.max_dbm),
                        ])
                        .map_err(err())?;
                }
            }
            let mut chan = tx
                .prepare_cached(ADD_CHANNEL_MINUTE)
                .map_err(sql_err(path, "writing channel occupancy"))?;
            for (&(m, freq), cell) in &c.channels {
                chan.execute(params![
                    m,
                    freq,
                    cell.frames as i64,
                    cell.airtime_us as i64,
                    cell.timed_frames as i64,
                    cell.strongest_dbm,
                    cell.first_ns,
                    cell.last_ns,
                ])
                .map_err(sql_err(path, "writing channel occupancy"))?;
            }
            let err = || sql_err(path, "writing probing clients");
            let mut client = tx.prepare_cached(UPSERT_CLIENT).map_err(err())?;
            let mut ssid = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO wifi_client_ssid (client_id, ssid) VALUES (?1, ?2)",
                )
                .map_err(err())?;
            for cl in c.clients.values() {
                let id: i64 = client
                    .query_row(
                        params![
                            mac_key(cl.mac),
                            cl.first_seen,
                            cl.last_seen,
                            cl.probes as i64,
                            cl.strongest_dbm
                        ],
                        |r| r.get(0),
                    )
                    .map_err(err())?;
                for s in &cl.ssids {
                    ssid.execute(params![id, s.as_bytes()]).map_err(err())?;
                }
            }
        }
        tx.commit()
            .map_err(sql_err(path, "committing the survey write"))
    }
}

fn ssid_of(b: Option<Vec<u8>>) -> Option<Ssid> {
    b.and_then(|b| Ssid::new(&b))
}

/// The survey of `[from, to)` (nanoseconds since the epoch; `None` = unbounded): access points
/// and clients heard in the range, signal and channel statistics summed over its minutes.
pub fn survey(
    store: &Store,
    from: Option<TimestampNs>,
    to: Option<TimestampNs>,
) -> Result<Survey, StoreError> {
    let path = store.path.as_path();
    let from = from.unwrap_or(i64::MIN);
    let to = to.unwrap_or(i64::MAX);
    // Minute keys are seconds; a minute belongs to the range if it starts inside it.
    let (m_from, m_to) = (from.div_euclid(1_000_000_000), to.div_euclid(1_000_000_000));
    let err = || sql_err(path, "reading the survey");
    let conn = &store.conn;

    let mut minutes: HashMap<i64, BTreeMap<i64, SignalStats>> = HashMap::new();
    {
        let mut st = conn
            .prepare_cached(
                "SELECT ap_id, minute, frames, samples, sum_dbm, min_dbm, max_dbm
                 FROM wifi_ap_minute WHERE minute >= ?1 AND minute < ?2",
            )
            .map_err(err())?;
        let rows = st
            .query_map(params![m_from, m_to], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    SignalStats {
                        frames: r.get::<_, i64>(2)? as u64,
                        samples: r.get::<_, i64>(3)? as u64,
                        sum_dbm: r.get(4)?,
                        min_dbm: r.get::<_, Option<i8>>(5)?.unwrap_or(0),
                        max_dbm: r.get::<_, Option<i8>>(6)?.unwrap_or(0),
                    },
                ))
            })
            .map_err(err())?;
        for row in rows {
            let (id, m, s) = row.map_err(err())?;
            minutes.entry(id).or_default().insert(m, s);
        }
    }

    let mut aps = Vec::new();
    {
        let mut st = conn
            .prepare_cached(
                "SELECT id, bssid, ssid, hidden, band, channel, width_mhz, center_mhz, security,
                        first_seen_ns, last_seen_ns, beacons, probe_responses
                 FROM wifi_ap WHERE last_seen_ns >= ?1 AND first_seen_ns < ?2",
            )
            .map_err(err())?;
        let rows = st
            .query_map(params![from, to], |r| {
                let band: Option<String> = r.get(4)?;
                let channel = match (
                    band.as_deref().and_then(Band::from_key),
                    r.get::<_, Option<u8>>(5)?,
                ) {
                    (Some(band), Some(number)) => Some(Channel {
                        band,
                        number,
                        width_mhz: r.get::<_, Option<u16>>(6)?.unwrap_or(20),
                        center_mhz: r.get::<_, Option<u16>>(7)?.unwrap_or(0),
                    }),
                    _ => None,
                };
                let security: String = r.get(8)?;
                Ok((
                    r.get::<_, i64>(0)?,
                    Ap {
                        bssid: mac_from_key(r.get(1)?),
                        ssid: ssid_of(r.get(2)?),
                        hidden: r.get(3)?,
                        channel,
                        security: Security::from_str_opt(&security).unwrap_or(Security::Unknown),
                        first_seen: r.get(9)?,
                        last_seen: r.get(10)?,
                        beacons: r.get::<_, i64>(11)? as u64,
                        probe_responses: r.get::<_, i64>(12)? as u64,
                        minutes: BTreeMap::new(),
                    },
                ))
            })
            .map_err(err())?;
        for row in rows {
            let (id, mut ap) = row.map_err(err())?;
            ap.minutes = minutes.remove(&id).unwrap_or_default();
            aps.push(ap);
        }
    }

    let mut heard = Vec::new();
    {
        let mut st = conn
            .prepare_cached(
                "SELECT freq_mhz, sum(frames), sum(airtime_us), sum(timed_frames),
                        max(strongest_dbm), min(first_ns), max(last_ns), sum(last_ns - first_ns)
                 FROM wifi_channel_minute WHERE minute >= ?1 AND minute < ?2
                 GROUP BY freq_mhz ORDER BY freq_mhz",
            )
            .map_err(err())?;
        let rows = st
            .query_map(params![m_from, m_to], |r| {
                Ok((
                    r.get::<_, u16>(0)?,
                    ChannelCell {
                        frames: r.get::<_, i64>(1)? as u64,
                        airtime_us: r.get::<_, i64>(2)? as u64,
                        timed_frames: r.get::<_, i64>(3)? as u64,
                        strongest_dbm: r.get(4)?,
                        first_ns: r.get(5)?,
                        last_ns: r.get(6)?,
                    },
                    (r.get::<_, i64>(7)?.max(0) as u64) / 1000,
                ))
            })
            .map_err(err())?;
        for row in rows {
            heard.push(row.map_err(err())?);
        }
    }

    let mut clients = Vec::new();
    {
        let mut ssids: HashMap<i64, Vec<Ssid>> = HashMap::new();
        let mut st = conn
            .prepare_cached("SELECT client_id, ssid FROM wifi_client_ssid ORDER BY rowid")
            .map_err(err())?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .map_err(err())?;
        for row in rows {
            let (id, b) = row.map_err(err())?;
            if let Some(s) = Ssid::new(&b) {
                ssids.entry(id).or_default().push(s);
            }
        }
        let mut st = conn
            .prepare_cached(
                "SELECT id, mac, first_seen_ns, last_seen_ns, probes, strongest_dbm
                 FROM wifi_client WHERE last_seen_ns >= ?1 AND first_seen_ns < ?2",
            )
            .map_err(err())?;
        let rows = st
            .query_map(params![from, to], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Client {
                        mac: mac_from_key(r.get(1)?),
                        first_seen: r.get(2)?,
                        last_seen: r.get(3)?,
                        probes: r.get::<_, i64>(4)? as u64,
                        strongest_dbm: r.get(5)?,
                        ssids: Vec::new(),
                    },
                ))
            })
            .map_err(err())?;
        for row in rows {
            let (id, mut c) = row.map_err(err())?;
            c.ssids = ssids.remove(&id).unwrap_or_default();
            clients.push(c);
        }
    }
    Ok(Survey::assemble(aps, heard, clients))
}

/// The signal of one access point per minute over `[from, to)`: the "our AP" history chart.
pub fn ap_signal_history(
    store: &Store,
    bssid: crate::model::MacAddr,
    from: TimestampNs,
    to: TimestampNs,
) -> Result<Vec<(i64, SignalStats)>, StoreError> {
    let path = store.path.as_path();
    let err = || sql_err(path, "reading an access point's signal history");
    let id: Option<i64> = store
        .conn
        .prepare_cached("SELECT id FROM wifi_ap WHERE bssid = ?1")
        .map_err(err())?
        .query_row(params![mac_key(bssid)], |r| r.get(0))
        .optional()
        .map_err(err())?;
    let Some(id) = id else {
        return Ok(Vec::new());
    };
    let mut st = store
        .conn
        .prepare_cached(
            "SELECT minute, frames, samples, sum_dbm, min_dbm, max_dbm FROM wifi_ap_minute
             WHERE ap_id = ?1 AND minute >= ?2 AND minute < ?3 ORDER BY minute",
        )
        .map_err(err())?;
    let rows = st
        .query_map(
            params![
                id,
                from.div_euclid(1_000_000_000),
                to.div_euclid(1_000_000_000)
            ],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    SignalStats {
                        frames: r.get::<_, i64>(1)? as u64,
                        samples: r.get::<_, i64>(2)? as u64,
                        sum_dbm: r.get(3)?,
                        min_dbm: r.get::<_, Option<i8>>(4)?.unwrap_or(0),
                        max_dbm: r.get::<_, Option<i8>>(5)?.unwrap_or(0),
                    },
                ))
            },
        )
        .map_err(err())?;
    rows.collect::<Result<_, _>>().map_err(err())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::ieee80211::{Kind, WifiFrame};
    use crate::model::MacAddr;

    fn beacon(n: u8, ssid: &[u8], ts_s: i64, dbm: i8) -> WifiFrame {
        WifiFrame {
            ts: ts_s * 1_000_000_000,
            heard_mhz: Some(2412),
            signal_dbm: Some(dbm),
            airtime_us: Some(250),
            kind: Kind::Beacon,
            bssid: MacAddr([0, 0x11, 0x22, 0, 0, n]),
            ssid: Ssid::new(ssid),
            channel: Channel::new20(Band::G2_4, 1),
            security: Security::Wpa3Sae,
            ..WifiFrame::EMPTY
        }
    }

    /// Hostile names: markup, control characters, invalid UTF-8, and 32 arbitrary bytes.
    fn hostile() -> Vec<Vec<u8>> {
        vec![
            b"<script>alert(1)</script>".to_vec(),
            b"\"><img src=x onerror=alert(1)>".to_vec(),
            b"line\nbreak\r\x1b[2J\x00nul".to_vec(),
            (0..32u8)
                .map(|i| i.wrapping_mul(73).wrapping_add(0x80))
                .collect(),
            vec![0xff; 32],
            "x\u{202e}txt.exe".as_bytes().to_vec(),
        ]
    }

    #[test]
    fn stored_survey_equals_the_collected_one_and_hostile_names_stay_exact() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut c = Collector::new();
        for (i, name) in hostile().iter().enumerate() {
            c.add(&beacon(i as u8, name, 10 + i as i64, -40 - i as i8));
            c.add(&beacon(i as u8, name, 70 + i as i64, -50 - i as i8));
        }
        let mut p = WifiFrame {
            kind: Kind::ProbeRequest,
            transmitter: Some(MacAddr([0xda, 1, 2, 3, 4, 5])),
            ..beacon(99, &hostile()[2], 12, -70)
        };
        c.add(&p);
        p.ssid = Ssid::new(&hostile()[3]);
        c.add(&p);
        store.write_survey(&c).unwrap();
        let from_db = survey(&store, None, None).unwrap();
        assert_eq!(from_db, c.survey());
        for (ap, name) in from_db.aps.iter().zip(hostile()) {
            assert_eq!(ap.ssid.unwrap().as_bytes(), &name[..]);
        }
        assert_eq!(from_db.clients[0].ssids.len(), 2);
        assert_eq!(from_db.clients[0].ssids[1].as_bytes(), &hostile()[3][..]);
        // The display form of every stored name is inert text: no control or reordering
        // characters, and the JSON is valid and carries the exact bytes in hex.
        let json = from_db.to_json(None);
        for ap in json["access_points"].as_array().unwrap() {
            let text = ap["ssid"]["text"].as_str().unwrap();
            assert!(
                !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{text:?}"
            );
        }
        let hexes: Vec<&str> = json["access_points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["ssid"]["hex"].as_str().unwrap())
            .collect();
        assert!(
            hexes.contains(&"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff")
        );
    }

    #[test]
    fn intervals_merge_and_ranges_select_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("s.db")).unwrap();
        let mut whole = Collector::new();
        for (t, dbm) in [(5, -40), (65, -60), (125, -50)] {
            let mut one = Collector::new();
            let mut f = beacon(1, if t == 65 { b"" } else { b"home" }, t, dbm);
            if t == 125 {
                f.channel = Channel::new20(Band::G2_4, 6);
            }
            one.add(&f);
            whole.add(&f);
            store.write_survey(&one).unwrap();
        }
        let all = survey(&store, None, None).unwrap();
        assert_eq!(all, whole.survey());
        let ap = &all.aps[0];
        assert!(ap.hidden && ap.ssid.unwrap().as_bytes() == b"home");
        assert_eq!(ap.channel.unwrap().number, 6, "the latest channel");
        assert_eq!(ap.beacons, 3);
        // The middle minute only.
        let mid = survey(&store, Some(60_000_000_000), Some(120_000_000_000)).unwrap();
        let s = mid.aps[0].signal();
        assert_eq!((s.samples, s.min_dbm), (1, -60));
        assert_eq!(mid.channels[0].frames_heard, 1);
        let hist = ap_signal_history(&store, ap.bssid, 0, i64::MAX).unwrap();
        assert_eq!(
            hist.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
            [0, 60, 120]
        );
    }
}
