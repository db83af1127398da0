//! What a capture loop publishes about itself: frame and byte counters (ours and the kernel's),
//! gaps in the link, and whether it waits for its interface.
//!
//! Written by the capture thread (once per batch, never per frame), read by anyone: the daemon's
//! watchdog and status line, the alert probe and, through telemetry, the web pages and
//! `/metrics`. It holds no handle and knows nothing of libpcap.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Counters the capture thread publishes; readable from any thread at any time.
///
/// Our own counters are published once per batch (not per frame) to keep atomics off the per-packet
/// path; the kernel's (pcap_stats) are refreshed about once a second.
#[derive(Debug, Default)]
pub struct CaptureStats {
    pub(super) frames_seen: AtomicU64,
    pub(super) frames_decoded: AtomicU64,
    pub(super) frames_undecodable: AtomicU64,
    pub(super) wire_bytes_seen: AtomicU64,
    pub(super) read_errors: AtomicU64,
    pub(super) pcap_received: AtomicU64,
    pub(super) pcap_dropped: AtomicU64,
    pub(super) pcap_if_dropped: AtomicU64,
    pub(super) link_gaps: AtomicU64,
    pub(super) link_gap_millis: AtomicU64,
    pub(super) link_down_since: AtomicU64,
    /// No handle: the interface is missing (not there yet, or vanished) and waited for.
    pub(super) waiting: AtomicBool,
    /// The interface captured on (or waited for) now; empty while following a default route
    /// that does not exist yet. Written only when it changes, never on the packet path.
    pub(super) interface: Mutex<String>,
}

/// What the capture is doing, for the health page, the API and the service status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureState {
    Capturing {
        iface: String,
    },
    /// The interface is missing; `iface` is empty while no default route names one.
    Waiting {
        iface: String,
    },
    /// The interface exists but is down or has no carrier, since this moment (epoch seconds).
    LinkDown {
        iface: String,
        since: i64,
    },
}

impl std::fmt::Display for CaptureState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CaptureState::Capturing { iface } => write!(f, "capturing on {iface}"),
            CaptureState::Waiting { iface } if iface.is_empty() => {
                write!(f, "waiting for a default route to pick the interface from")
            }
            CaptureState::Waiting { iface } => write!(f, "waiting for interface {iface}"),
            CaptureState::LinkDown { iface, since } => write!(
                f,
                "link down on {iface} since {}: its traffic is not counted",
                jiff::Timestamp::from_second(*since)
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| since.to_string())
            ),
        }
    }
}

/// A plain copy of [`CaptureStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CaptureStatsSnapshot {
    /// Frames read from the handle.
    pub frames_seen: u64,
    /// Frames that became a [`Frame`] and went to the sink.
    pub frames_decoded: u64,
    /// Frames without a readable link-layer source: counted here, attributed to nobody.
    pub frames_undecodable: u64,
    /// Sum of the wire length of every frame seen.
    pub wire_bytes_seen: u64,
    /// Errors libpcap returned while reading (the interface went down, disappeared...).
    pub read_errors: u64,
    /// pcap_stats `ps_recv`: frames the kernel passed to the capture socket.
    pub pcap_received: u64,
    /// pcap_stats `ps_drop`: frames the kernel dropped because the capture ring was full.
    pub pcap_dropped: u64,
    /// pcap_stats `ps_ifdrop`: frames the interface or its driver dropped.
    pub pcap_if_dropped: u64,
    /// Times the interface went down, lost its carrier or vanished: gaps in the counts, since
    /// whatever crossed the wire meanwhile was never seen.
    pub link_gaps: u64,
    /// Total length of the gaps that have ended, in milliseconds.
    pub link_gap_millis: u64,
    /// While a gap lasts: when it began, seconds since the epoch.
    pub link_down_since: Option<i64>,
}

impl CaptureStats {
    /// The interface captured on (or waited for) now.
    pub fn interface(&self) -> String {
        self.interface
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(super) fn set_interface(&self, iface: &str) {
        let mut cur = self
            .interface
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if *cur != iface {
            *cur = iface.to_string();
        }
    }

    /// Whether the capture has no handle and waits for its interface.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> CaptureState {
        let iface = self.interface();
        if self.is_waiting() {
            return CaptureState::Waiting { iface };
        }
        match self.snapshot().link_down_since {
            Some(since) => CaptureState::LinkDown { iface, since },
            None => CaptureState::Capturing { iface },
        }
    }

    pub fn snapshot(&self) -> CaptureStatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CaptureStatsSnapshot {
            frames_seen: r(&self.frames_seen),
            frames_decoded: r(&self.frames_decoded),
            frames_undecodable: r(&self.frames_undecodable),
            wire_bytes_seen: r(&self.wire_bytes_seen),
            read_errors: r(&self.read_errors),
            pcap_received: r(&self.pcap_received),
            pcap_dropped: r(&self.pcap_dropped),
            pcap_if_dropped: r(&self.pcap_if_dropped),
            link_gaps: r(&self.link_gaps),
            link_gap_millis: r(&self.link_gap_millis),
            link_down_since: match r(&self.link_down_since) {
                0 => None,
                t => i64::try_from(t).ok(),
            },
        }
    }
}

pub(super) fn log_stats(iface: &str, s: &CaptureStatsSnapshot, msg: &'static str) {
    tracing::info!(
        iface,
        frames_seen = s.frames_seen,
        frames_decoded = s.frames_decoded,
        frames_undecodable = s.frames_undecodable,
        wire_bytes_seen = s.wire_bytes_seen,
        read_errors = s.read_errors,
        pcap_received = s.pcap_received,
        pcap_dropped = s.pcap_dropped,
        pcap_if_dropped = s.pcap_if_dropped,
        link_gaps = s.link_gaps,
        link_gap_millis = s.link_gap_millis,
        "{msg}"
    );
}
