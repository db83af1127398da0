//! The discovery capture: a second live handle, filtered in the kernel (BPF) to the protocols
//! the device learners read, with a snaplen large enough for their payloads; and a send-only
//! handle for the active sweep.
//!
//! It owns those two pcap handles and the `discovery-<iface>` thread that reads the first. The
//! accounting handle stays headers-only: payloads are captured only here, and only for frames
//! the filter lets through. The thread hands each frame's bytes to a [`RawSink`] and must never
//! block accounting (it shares nothing with it), log per packet, or touch the database.

use super::LinkType;
use super::live::{CaptureError, PcapHandle};
use super::source::{POLL_TIMEOUT_MS, PacketReader};
use pcap::{Active, Capture};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Kernel buffer of the discovery handle: discovery traffic is a few frames per second.
const DISCOVERY_BUFFER_BYTES: i32 = 1 << 20;
/// Frames read per wake-up before `stop` is checked again.
const MAX_FRAMES_PER_WAKE: usize = 1024;

/// Where the discovery thread delivers frames (only those the BPF filter passed).
pub trait RawSink: Send {
    fn frame(&mut self, link: LinkType, ts: i64, data: &[u8]);
}

#[derive(Clone, Debug)]
pub struct DiscoveryCaptureConfig {
    pub interface: String,
    pub snaplen: u32,
    pub promiscuous: bool,
    /// libpcap filter expressions, tried in order until one compiles for the link type
    /// (discovery::wire::BPF_FILTER_VLAN, then BPF_FILTER).
    pub filters: Vec<String>,
}

pub struct DiscoveryCapture {
    handle: PcapHandle,
    link: LinkType,
    cfg: DiscoveryCaptureConfig,
}

impl std::fmt::Debug for DiscoveryCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryCapture")
            .field("iface", &self.cfg.interface)
            .finish_non_exhaustive()
    }
}

/// Opens the filtered discovery handle in the calling thread's network namespace.
pub fn open_discovery(cfg: &DiscoveryCaptureConfig) -> Result<DiscoveryCapture, CaptureError> {
    let iface = cfg.interface.as_str();
    let classify = |e: pcap::Error| CaptureError::classify(iface, &e);
    let snaplen = i32::try_from(cfg.snaplen).map_err(|_| CaptureError::SettingOutOfRange {
        setting: "discovery_snaplen",
        value: cfg.snaplen,
    })?;
    let mut cap = Capture::from_device(iface)
        .map_err(classify)?
        .immediate_mode(true)
        .snaplen(snaplen)
        .buffer_size(DISCOVERY_BUFFER_BYTES)
        .promisc(cfg.promiscuous)
        .open()
        .map_err(classify)?;
    let mut result = Err(CaptureError::Other {
        iface: iface.to_string(),
        message: "no discovery filter given".into(),
    });
    for f in &cfg.filters {
        result = cap.filter(f, true).map_err(classify);
        if result.is_ok() {
            break;
        }
    }
    result?;
    let cap = cap.setnonblock().map_err(classify)?;
    let dlt = cap.get_datalink().0;
    let Some(link) = LinkType::from_dlt(dlt) else {
        return Err(CaptureError::UnsupportedLinkType {
            iface: iface.to_string(),
            dlt,
            link_name: pcap::Linktype(dlt)
                .get_name()
                .unwrap_or_else(|_| "unknown".to_string()),
        });
    };
    tracing::info!(iface, snaplen = cfg.snaplen, "discovery capture opened");
    Ok(DiscoveryCapture {
        handle: PcapHandle::new(cap, iface),
        link,
        cfg: cfg.clone(),
    })
}

impl DiscoveryCapture {
    /// Starts the `discovery-<iface>` thread; it returns when `stop` is set.
    pub fn spawn(
        self,
        sink: Box<dyn RawSink>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name(format!("discovery-{}", self.cfg.interface))
            .spawn(move || self.run(sink, &stop))
    }

    fn run(mut self, mut sink: Box<dyn RawSink>, stop: &AtomicBool) {
        let mut errors = 0u64;
        let pause = Duration::from_millis(POLL_TIMEOUT_MS.into());
        while !stop.load(Ordering::Relaxed) {
            let mut failed = match self.handle.wait_readable() {
                Ok(true) => None,
                Ok(false) => continue,
                Err(e) => Some(e),
            };
            if failed.is_none() {
                for _ in 0..MAX_FRAMES_PER_WAKE {
                    match self.handle.next_packet() {
                        Ok(Some(p)) => sink.frame(self.link, p.ts_ns, p.data),
                        Ok(None) => break,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            if let Some(err) = failed {
                errors += 1;
                if errors == 1 || errors.is_power_of_two() {
                    tracing::warn!(iface = %self.cfg.interface, error = %err, errors, "discovery capture read failed");
                }
                // Readable-with-error must not become a busy loop; a vanished interface is
                // reopened by the accounting capture's logic, here we just retry.
                std::thread::sleep(pause);
                if let Ok(fresh) = open_discovery(&self.cfg) {
                    self.handle = fresh.handle;
                }
            }
        }
        tracing::debug!(iface = %self.cfg.interface, "discovery capture stopped");
    }
}

/// A send-only handle for sweep frames. Its own receive side is filtered to nothing, so the
/// kernel never queues frames for it.
pub struct FrameSender {
    cap: Capture<Active>,
}

impl std::fmt::Debug for FrameSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSender").finish_non_exhaustive()
    }
}

pub fn open_sender(iface: &str) -> Result<FrameSender, CaptureError> {
    let classify = |e: pcap::Error| CaptureError::classify(iface, &e);
    let mut cap = Capture::from_device(iface)
        .map_err(classify)?
        .snaplen(64)
        .buffer_size(64 * 1024)
        .promisc(false)
        .open()
        .map_err(classify)?;
    // "less 1": frames of at most one byte, i.e. none.
    cap.filter("less 1", true).map_err(classify)?;
    Ok(FrameSender { cap })
}

impl FrameSender {
    /// Puts one complete link-layer frame on the wire.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), String> {
        self.cap.sendpacket(frame).map_err(|e| e.to_string())
    }
}

/// Whether libpcap compiles `filter` for link type `dlt` (no interface needed): lets callers
/// check their filters in tests and pick one before opening anything.
pub fn filter_compiles(dlt: i32, filter: &str) -> bool {
    Capture::dead(pcap::Linktype(dlt)).is_ok_and(|c| c.compile(filter, true).is_ok())
}
