//! Packet sources and the pure frame decoder.
//!
//! This module owns libpcap (the only user of the `pcap` crate): opening live interfaces and
//! capture files, reading records, and turning them into [`decode::Frame`] summaries that it hands,
//! a batch at a time, to a [`FrameSink`] that `app` wires to the meter. Whatever the frames come
//! from is a [`PacketSource`] read by the one loop of [`source`]. It must never touch the
//! database or anything async. The discovery handle ([`discovery_source`]) is separate and
//! filtered, so accounting never reads payloads; the only frames sent are the sweep's, through
//! its send-only handle.
pub mod decode;
pub mod discovery_source;
pub mod file;
pub mod ieee80211;
pub mod live;
pub mod monitor;
pub mod pcapfile;
pub mod pcapng;
pub mod radiotap;
pub mod source;
pub mod stats;

pub use decode::{Frame, LinkType};
pub use live::{CaptureError, LiveCapture, LiveConfig};
pub use source::{PacketSource, ReadError};
pub use stats::{CaptureState, CaptureStats, CaptureStatsSnapshot};

/// Frames read in one go before the sink is called: large enough to amortise the sink's lock,
/// small enough (a few KB of summaries) to stay in cache.
pub const BATCH: usize = 64;

/// Where a capture loop delivers decoded frames. Called once per batch, so an implementation that
/// takes a lock takes it once per batch, not once per frame.
pub trait FrameSink: Send {
    fn ingest(&mut self, frames: &[Frame]);
}

/// Where a Wi-Fi (monitor-mode or radiotap file) loop delivers decoded 802.11 summaries, once
/// per batch. Separate from [`FrameSink`]: the survey never reaches the accounting meter.
pub trait WifiSink: Send {
    fn ingest(&mut self, frames: &[ieee80211::WifiFrame]);
}
