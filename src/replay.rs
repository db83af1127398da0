//! Offline replay: a capture file through the live path's decoder and meter (ACCOUNTING.md §4).
//!
//! It owns the order of a replay (gateway inference, reading, taking deltas, optional database
//! writes) and the JSON/table rendering of its result. It must never count anything itself: all
//! accounting is the meter's, so replay and live capture cannot disagree.

use crate::capture::file::{FileError, FileSource, ReadStats};
use crate::clock::{CLOCK_FLOOR, ClockGate};
use crate::discovery::learner::Learner;
use crate::flush::{Flusher, Stamping};
use crate::meter::{
    Delta, DeviceRemotes, DeviceTotals, Locality, Meter, MeterConfig, Other, Totals,
};
use crate::model::{Counts, IpPrefix, MacAddr, rfc3339};
use crate::store::discovery::MacFacts;
use crate::store::{Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Replay takes a delta once this many minute segments are waiting, bounding memory on long
/// captures the same way the flush interval bounds it live.
const SEGMENTS_PER_TAKE: usize = 16;

pub struct ReplayOptions {
    pub lan: Vec<IpPrefix>,
    pub gateway: Option<MacAddr>,
    pub max_devices: usize,
    /// Time TCP handshakes to the internet (passive latency).
    pub passive_latency: bool,
    /// Count internet bytes per remote address ([`crate::endpoints`]).
    pub remote_endpoints: bool,
    /// The presence window for discovery (ns): sightings closer than this are one interval.
    pub presence_window_ns: i64,
}

pub struct ReplayResult {
    pub devices: Vec<DeviceTotals>,
    /// Internet bytes per remote per device (empty unless remote endpoints were on).
    pub remotes: Vec<DeviceRemotes>,
    pub other: Other,
    pub gateway: Option<MacAddr>,
    pub stats: ReadStats,
    /// Set when the file ended early or was damaged part-way: everything before it was counted.
    pub truncated: Option<FileError>,
    /// What the device learners found in the same pass (ARP, DHCP, mDNS, NDP), per MAC, with
    /// presence from each minute a MAC was active. Vendors are filled in by the caller.
    pub discovered: Vec<MacFacts>,
}

/// Replays `path`, handing every delta to `on_delta` (the database writer, when there is one)
/// together with the gateway it must be resolved against.
pub fn replay<E>(
    path: &Path,
    opts: &ReplayOptions,
    mut on_delta: impl FnMut(&Delta, Option<MacAddr>) -> Result<(), E>,
) -> Result<Result<ReplayResult, E>, FileError> {
    let mut src = FileSource::open(path)?;
    let mut meter = Meter::new(MeterConfig {
        max_devices: opts.max_devices,
        gateway: opts.gateway,
        locality: Locality::new(opts.lan.iter().copied()),
        passive_latency: opts.passive_latency,
        remote_endpoints: opts.remote_endpoints,
    });
    let mut totals = Totals::new(opts.max_devices);
    let mut failed: Option<E> = None;
    let learner = std::cell::RefCell::new(Learner::new(opts.presence_window_ns, opts.max_devices));
    let mut take = |m: &mut Meter, totals: &mut Totals, failed: &mut Option<E>| {
        let d = m.take_delta();
        totals.add(&d);
        // Presence from traffic: the first and last frame each MAC sent in each minute, as the
        // meter kept them (per-frame tracking here would slow the replay benchmarks measure).
        {
            let mut l = learner.borrow_mut();
            for (mac, first, last) in d.sent_spans() {
                l.traffic(mac, first, last);
            }
        }
        if failed.is_none() {
            if let Err(e) = on_delta(&d, m.gateway()) {
                *failed = Some(e);
            }
        }
    };
    let outcome = src.run_with_raw(
        &mut meter,
        |m| {
            if m.pending_segments() > SEGMENTS_PER_TAKE {
                take(m, &mut totals, &mut failed);
            }
        },
        |link, ts, data| {
            if crate::discovery::wire::maybe_discovery(link, data) {
                learner.borrow_mut().frame(link, ts, data);
            }
        },
    );
    take(&mut meter, &mut totals, &mut failed);
    if let Some(e) = failed {
        return Ok(Err(e));
    }
    let (stats, truncated) = match outcome {
        Ok(s) => (s, None),
        Err(e) => match e.partial_records() {
            Some(records) => (
                ReadStats {
                    records,
                    ..Default::default()
                },
                Some(e),
            ),
            None => return Err(e),
        },
    };
    Ok(Ok(ReplayResult {
        devices: totals.devices(),
        remotes: totals.remotes(),
        other: totals.other(),
        gateway: totals.gateway(),
        stats,
        truncated,
        discovered: learner.into_inner().take(),
    }))
}

/// What stops a replay into a database (`replay --db`). The causes are boxed: a store error is
/// large, and this is returned once per replay.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("replaying {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: Box<FileError>,
    },
    #[error("opening database {}", db.display())]
    Open {
        db: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
    #[error("writing to {}", db.display())]
    Write {
        db: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
    #[error("rolling up history in {}", db.display())]
    RollUp {
        db: PathBuf,
        #[source]
        source: Box<StoreError>,
    },
}

/// `replay --db`: replays `path` and writes its minutes into the database at `db` through the
/// same flush path as the live run, then rolls them up. Minute rows are written as the file is
/// read, so the gateway must be known before the first one: without one in `opts` a first pass
/// finds it (and sets it), so `path` must then be readable twice
/// ([`crate::capture::file::is_rereadable`]).
pub fn replay_into(
    path: &Path,
    opts: &mut ReplayOptions,
    db: &Path,
) -> Result<ReplayResult, ReplayError> {
    let read = |source| ReplayError::Read {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let write = |source| ReplayError::Write {
        db: db.to_path_buf(),
        source: Box::new(source),
    };
    if opts.gateway.is_none() {
        opts.gateway = infer_gateway(path, opts).map_err(read)?;
    }
    let store = Store::open(db).map_err(|source| ReplayError::Open {
        db: db.to_path_buf(),
        source: Box::new(source),
    })?;
    let mut flusher = Flusher::new(store);
    let interval = std::time::Duration::from_secs(10);
    // Frames stamped before the clock could be right (a Pi booted without its time) are filed
    // under the file's first trusted minute (crate::clock).
    let mut gate = ClockGate::new(CLOCK_FLOOR.as_second());
    let r = replay(path, opts, |delta, _| {
        flusher
            .flush_gated(delta, interval, &mut gate, Stamping::File)
            .map(drop)
    })
    .map_err(read)?
    .map_err(write)?;
    let (usage, seen) = gate.release_as_stamped();
    flusher.flush(usage, seen).map_err(write)?;
    // Roll the replayed minutes up in the system's zone (what `export` uses without a config),
    // so exports of long captures read hour and day rows.
    flusher
        .store_mut()
        .roll_up(
            &jiff::tz::TimeZone::system(),
            jiff::Timestamp::now().as_second(),
        )
        .map_err(|source| ReplayError::RollUp {
            db: db.to_path_buf(),
            source: Box::new(source),
        })?;
    Ok(r)
}

/// Fills `hostname`, `vendor` and extra addresses of the JSON rows from what discovery learned.
pub fn attach_discovery(rows: &mut [JsonDevice], discovered: &[MacFacts]) {
    let by_mac: HashMap<String, &MacFacts> =
        discovered.iter().map(|f| (f.mac.to_string(), f)).collect();
    for row in rows {
        let Some(f) = by_mac.get(&row.mac) else {
            continue;
        };
        row.vendor = f.vendor.clone();
        row.hostname = ["dhcp", "dhcp-fqdn", "mdns", "mdns-instance"]
            .iter()
            .find_map(|src| {
                f.hostnames
                    .iter()
                    .filter(|h| h.0 == *src)
                    .max_by_key(|h| h.3)
                    .map(|h| h.1.clone())
            });
        for (ip, _, _) in &f.addresses {
            let (list, s) = match ip {
                IpAddr::V4(_) => (&mut row.ipv4, ip.to_string()),
                IpAddr::V6(_) => (&mut row.ipv6, ip.to_string()),
            };
            if !list.contains(&s) {
                list.push(s);
            }
        }
    }
}

/// The gateway a capture implies: the MAC with the most non-local traffic (a first pass used
/// when replay must write minute buckets and no `--gateway` was given).
pub fn infer_gateway(path: &Path, opts: &ReplayOptions) -> Result<Option<MacAddr>, FileError> {
    let r = replay(path, opts, |_, _| Ok::<(), std::convert::Infallible>(()))?;
    // Infallible: the closure above never fails.
    Ok(r.map(|r| r.gateway).unwrap_or_else(|e| match e {}))
}

/// One row of `replay --json` (ACCOUNTING.md §4).
#[derive(Serialize)]
pub struct JsonDevice {
    pub mac: String,
    /// The six ACCOUNTING.md counters, under their own names.
    #[serde(flatten)]
    pub counts: Counts,
    pub local_bytes: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub is_gateway: bool,
    pub is_private_mac: bool,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    pub hostname: Option<String>,
    pub vendor: Option<String>,
    /// Only on the "other" row: per-minute MAC entries folded in because the map was full.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries_evicted: Option<u64>,
    /// Only with `replay --endpoints`: internet bytes per remote, most first, then "other".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remotes: Option<Vec<JsonRemote>>,
}

/// One remote of a device in `replay --endpoints --json` ([`crate::endpoints`]'s text form).
#[derive(Serialize)]
pub struct JsonRemote {
    pub remote: String,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl JsonDevice {
    pub fn from_totals(d: &DeviceTotals) -> JsonDevice {
        JsonDevice {
            mac: d.mac.to_string(),
            counts: d.counts,
            local_bytes: d.counts.local_bytes(),
            first_seen: rfc3339(d.first_seen),
            last_seen: rfc3339(d.last_seen),
            is_gateway: d.is_gateway,
            is_private_mac: d.mac.is_locally_administered(),
            ipv4: d
                .ips
                .iter()
                .filter(|ip| ip.is_ipv4())
                .map(IpAddr::to_string)
                .collect(),
            ipv6: d
                .ips
                .iter()
                .filter(|ip| ip.is_ipv6())
                .map(IpAddr::to_string)
                .collect(),
            hostname: None,
            vendor: None,
            entries_evicted: None,
            remotes: None,
        }
    }

    fn other(o: &Other) -> JsonDevice {
        JsonDevice {
            mac: "other".into(),
            counts: o.counts,
            local_bytes: o.counts.local_bytes(),
            first_seen: String::new(),
            last_seen: String::new(),
            is_gateway: false,
            is_private_mac: false,
            ipv4: vec![],
            ipv6: vec![],
            hostname: None,
            vendor: None,
            entries_evicted: Some(o.entries_evicted),
            remotes: None,
        }
    }
}

/// The `--json` rendering: every MAC, then an "other" row only if the map ever overflowed.
pub fn to_json(r: &ReplayResult) -> String {
    let mut rows: Vec<JsonDevice> = r.devices.iter().map(JsonDevice::from_totals).collect();
    attach_discovery(&mut rows, &r.discovered);
    let by_mac: HashMap<String, &DeviceRemotes> =
        r.remotes.iter().map(|d| (d.mac.to_string(), d)).collect();
    for row in &mut rows {
        if let Some(d) = by_mac.get(&row.mac) {
            let mut list: Vec<JsonRemote> = d
                .remotes
                .iter()
                .map(|&(remote, up, down)| JsonRemote {
                    remote: remote.to_string(),
                    bytes_up: up,
                    bytes_down: down,
                })
                .collect();
            list.push(JsonRemote {
                remote: crate::endpoints::OTHER.to_string(),
                bytes_up: d.other.0,
                bytes_down: d.other.1,
            });
            row.remotes = Some(list);
        }
    }
    if r.other.entries_evicted > 0 {
        rows.push(JsonDevice::other(&r.other));
    }
    // Serialising plain strings and integers cannot fail.
    serde_json::to_string_pretty(&rows).unwrap_or_default()
}

fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A table for people: busiest first, the gateway marked.
pub fn to_table(r: &ReplayResult) -> String {
    let mut devs: Vec<&DeviceTotals> = r.devices.iter().collect();
    devs.sort_by_key(|d| std::cmp::Reverse(d.counts.bytes_sent + d.counts.bytes_received));
    let mut out = format!(
        "{:<19} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n",
        "MAC", "SENT", "RECEIVED", "INET UP", "INET DOWN", "LOCAL", "NOTE"
    );
    for d in devs {
        let c = d.counts;
        let mut note = Vec::new();
        if d.is_gateway {
            note.push("gateway".to_string());
        }
        if d.mac.is_locally_administered() {
            note.push("private MAC".to_string());
        }
        if let Some(ip) = d.ips.first() {
            note.push(ip.to_string());
        }
        out.push_str(&format!(
            "{:<19} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n",
            d.mac.to_string(),
            human(c.bytes_sent),
            human(c.bytes_received),
            human(c.internet_upload_bytes),
            human(c.internet_download_bytes),
            human(c.local_bytes()),
            note.join(", ")
        ));
    }
    if r.other.entries_evicted > 0 {
        let c = r.other.counts;
        out.push_str(&format!(
            "{:<19} {:>10} {:>10} {:>10} {:>10} {:>10}  {} entries folded in: the device bound was reached\n",
            "other",
            human(c.bytes_sent),
            human(c.bytes_received),
            human(c.internet_upload_bytes),
            human(c.internet_download_bytes),
            human(c.local_bytes()),
            r.other.entries_evicted
        ));
    }
    out.push_str(&format!(
        "{} records, {} wire bytes, {} devices{}\n",
        r.stats.records,
        r.stats.wire_bytes,
        r.devices.len(),
        if r.stats.undecodable > 0 {
            format!(
                ", {} records without a readable link-layer header",
                r.stats.undecodable
            )
        } else {
            String::new()
        }
    ));
    out
}
