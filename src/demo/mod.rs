//! The synthetic household: writes a realistic LAN capture (classic pcap) and, alongside it, the
//! per-MAC totals lanmeter must report for it, booked by construction from what was sent.
//!
//! It owns the generator (device catalogue, traffic mix, day/night rhythm, frame templates built
//! with `pnet_packet`, the pcap writer) and its own reading of the ACCOUNTING.md accounting rules. It
//! must never parse its own output, nor call the capture decoder or the meter to compute what it
//! expects: the expected totals are the oracle that replay is checked against.
//!
//! [`dashboard`] reuses the same household (catalogue and rhythm) for `lanmeter demo`: a
//! database with history, and synthetic traffic through the real meter for a live dashboard.

pub mod alerts;
pub mod dashboard;
mod frames;
mod household;
mod locality;
mod pcap;
mod rng;

use crate::model::{Counts, IpPrefix, MacAddr, TimestampNs, rfc3339};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// 2026-03-01T00:00:00Z in nanoseconds since the epoch.
pub const DEFAULT_START_NS: TimestampNs = 1_772_323_200 * 1_000_000_000;
/// Smallest snaplen accepted: every header the generator writes (an RA's prefix option is the
/// deepest, at byte 102) must be captured for the expected totals to hold.
pub const MIN_SNAPLEN: u32 = 128;
/// Largest household: the LAN addressing (192.168.176.0/20) has room for this many devices.
pub const MAX_DEVICES: usize = 3_000;

/// What to generate. Timestamps are whole microseconds (the file uses the microsecond pcap
/// magic, so readers opened with either precision see exactly the accounted timestamps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenOptions {
    /// Same seed and options, same file, byte for byte.
    pub seed: u64,
    /// Number of frames (pcap records) to write.
    pub frames: u64,
    /// Capture start, ns since the epoch (floored to the microsecond).
    pub start_ns: TimestampNs,
    /// Frames are spread over this many seconds with a day/night rhythm (UTC hours).
    pub duration_secs: u64,
    /// Bytes captured per frame at most (`caplen = min(snaplen, len)`); at least [`MIN_SNAPLEN`].
    pub snaplen: u32,
    /// Household devices, the router not included (1..=[`MAX_DEVICES`]).
    pub devices: usize,
    /// Percentage (0..=100) of web requests that open a new connection: a SYN and SYN-ACK
    /// before the request, for passive latency (issue 27). 0, the default, writes the same bytes
    /// as before the option existed (no random number is drawn for it).
    pub handshake_percent: u32,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            seed: 1,
            frames: 1_000_000,
            start_ns: DEFAULT_START_NS,
            duration_secs: 86_400,
            snaplen: 128,
            devices: 25,
            handshake_percent: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenError {
    #[error(
        "cannot create capture file {path}: {source}; check that its folder exists and is writable"
    )]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write capture file {path}: {source}; check free disk space")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid generator options: {0}")]
    Options(String),
}

/// One MAC's expected totals, exactly as ACCOUNTING.md §2–§4 define them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedDevice {
    pub counts: Counts,
    /// First/last frame the MAC sent; for a MAC that never sent, first/last frame addressed to it.
    pub first_seen_ns: TimestampNs,
    pub last_seen_ns: TimestampNs,
    /// The household's name for it ("Living room TV"), for demo dashboards; not part of §3.
    pub name: String,
}

/// What lanmeter must report after replaying the generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub gateway: MacAddr,
    /// The household's LAN prefixes (what to pass as `--lan`); RFC 1918 covers them anyway.
    pub lan_prefixes: Vec<IpPrefix>,
    /// The IPv6 prefix(es) the router announces in its Router Advertisements (not to be passed as
    /// `--lan`: replay must learn them from the wire).
    pub ra_prefixes: Vec<IpPrefix>,
    /// Records written.
    pub frames: u64,
    /// Every MAC that sent a frame or received a unicast one (gateway included).
    pub devices: BTreeMap<MacAddr, ExpectedDevice>,
}

impl Expected {
    /// The ACCOUNTING.md §4 `replay --json` shape (the fields the generator knows), sorted by MAC.
    pub fn to_json(&self) -> serde_json::Value {
        let rows = self
            .devices
            .iter()
            .map(|(mac, d)| {
                let c = &d.counts;
                serde_json::json!({
                    "mac": mac.to_string(),
                    "frames_sent": c.frames_sent,
                    "frames_received": c.frames_received,
                    "bytes_sent": c.bytes_sent,
                    "bytes_received": c.bytes_received,
                    "internet_upload_bytes": c.internet_upload_bytes,
                    "internet_download_bytes": c.internet_download_bytes,
                    "local_bytes": c.local_bytes(),
                    "first_seen": rfc3339(d.first_seen_ns),
                    "last_seen": rfc3339(d.last_seen_ns),
                    "is_gateway": *mac == self.gateway,
                })
            })
            .collect();
        serde_json::Value::Array(rows)
    }
}

/// Writes the synthetic household capture to `path` and returns what replay must report for it.
pub fn write_household_pcap(path: &Path, opts: &GenOptions) -> Result<Expected, GenError> {
    household::generate(path, opts)
}

/// Writes `frames` minimum-size frames whose source MACs are drawn from `distinct_macs` distinct
/// random unicast addresses (each used at least once when `frames >= distinct_macs`), all sent
/// to broadcast, one microsecond apart from [`DEFAULT_START_NS`]: the flood that the counter map
/// must survive with bounded memory. Snaplen 128, every frame 60 bytes on the wire.
pub fn write_mac_flood_pcap(
    path: &Path,
    seed: u64,
    frames: u64,
    distinct_macs: u64,
) -> Result<(), GenError> {
    household::mac_flood(path, seed, frames, distinct_macs)
}

#[cfg(test)]
mod tests;
