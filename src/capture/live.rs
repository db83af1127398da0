//! Live capture from a network interface: opening the libpcap handle and the capture thread.
//!
//! It owns the live pcap handle, the named OS thread that reads it, and the capture statistics
//! (ours and the kernel's). The thread only reads, decodes into a reusable batch and hands the
//! batch to a [`FrameSink`]: it must never log, allocate or block per packet, never touch the
//! database or anything async, and must notice the stop flag within about [`POLL_TIMEOUT_MS`] even
//! on a link where nothing ever arrives.

use super::decode::{self, Frame, LinkType};
use super::{BATCH, FrameSink};
use crate::model::MacAddr;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pcap::{Active, Capture};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one poll(2) waits for the handle to become readable: the bound on how late the loop
/// notices `stop` on an idle link. A blocking pcap read with a timeout was seen never to return on
/// an idle veth (TOOLCHAIN.md), so the loop never blocks anywhere but here.
pub const POLL_TIMEOUT_MS: u16 = 100;
/// Batches read after a stop request to empty the kernel's queue (256 frames each).
const FINAL_DRAIN_BATCHES: usize = 4096;

/// How often the kernel's counters (pcap_stats) are copied into [`CaptureStats`].
const PCAP_STATS_REFRESH: Duration = Duration::from_secs(1);

/// How often a vanished interface is looked for again.
const REOPEN_INTERVAL: Duration = Duration::from_secs(2);

/// How often a capture that follows the default route checks whether the route moved.
const ROUTE_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// How the capture finds its interface when it is missing at start, vanishes or is replaced. In
/// every case a missing interface is waited for (never an exit): on a Pi, Wi-Fi and USB adapters
/// often come up after the service starts (issue 25).
#[derive(Clone, Debug)]
pub enum Follow {
    /// The configured name only.
    Name,
    /// The configured name, or else whichever interface carries this MAC (an adapter that came
    /// back under another name).
    NameOrMac(MacAddr),
    /// Whichever interface holds the default route, asked of this function (no interface
    /// configured): the capture moves when the route moves.
    DefaultRoute(fn() -> Option<String>),
}

/// The MAC address of `iface` in the calling thread's network namespace.
pub fn interface_mac(iface: &str) -> Option<MacAddr> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        (a.interface_name == iface)
            .then(|| {
                a.address
                    .and_then(|s| s.as_link_addr().and_then(|l| l.addr()))
            })
            .flatten()
            .filter(|m| *m != [0; 6])
            .map(MacAddr)
    })
}

/// The interface carrying `mac`, if any.
fn interface_with_mac(mac: MacAddr) -> Option<String> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        let found = a
            .address
            .and_then(|s| s.as_link_addr().and_then(|l| l.addr()))
            == Some(mac.0);
        found.then_some(a.interface_name)
    })
}

/// How often a capture that waits for its interface says so in the log.
const WAIT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How often the interface's state (up, carrier) is asked of the kernel. libpcap reports nothing
/// when an interface goes down and comes back (observed: no read error, frames simply stop), so
/// this check is the only way a gap in the counts is noticed; a flap shorter than this can be missed.
const LINK_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Where and how to capture. Built by `app` from the configuration.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name as `ip link` shows it (or `any`, which yields Linux cooked framing).
    pub interface: String,
    /// Bytes kept per frame: headers only (default 128; ACCOUNTING.md §1). Wire length is kept regardless.
    pub snaplen: u32,
    /// Kernel capture ring size in bytes: what absorbs bursts while the thread is busy.
    pub buffer_bytes: u32,
    pub promiscuous: bool,
    /// How often the capture statistics are logged (they are also logged once at shutdown).
    pub stats_log_interval: Duration,
}

/// Why a live capture could not be opened. Each message is one line saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "no interface named {iface}: list interfaces with `ip link` and choose one with `--interface` or `interface` in the config file"
    )]
    NoSuchInterface { iface: String },
    #[error(
        "capturing on {iface} needs CAP_NET_RAW: run as root, under the lanmeter.service unit, or `setcap cap_net_raw,cap_net_admin+eip` on the lanmeter binary"
    )]
    PermissionDenied { iface: String },
    #[error(
        "interface {iface} is down: bring it up with `ip link set {iface} up`, or choose another with `--interface` or `interface` in the config file"
    )]
    InterfaceDown { iface: String },
    #[error(
        "interface {iface} has link type {link_name} (DLT {dlt}): accounting needs Ethernet or Linux cooked framing; choose (with `--interface` or `interface` in the config file) the Ethernet interface or bridge that carries the LAN"
    )]
    UnsupportedLinkType {
        iface: String,
        dlt: i32,
        link_name: String,
    },
    #[error(
        "interface {iface} has link type {link_name} (DLT {dlt}), not radiotap: the Wi-Fi survey needs an adapter in monitor mode (`ip link set {iface} down; iw dev {iface} set type monitor; ip link set {iface} up`), or set `wifi_interface` in the config file to one that is"
    )]
    NotMonitorMode {
        iface: String,
        dlt: i32,
        link_name: String,
    },
    #[error("{setting} = {value} is too large: use a value below 2147483648 in the config file")]
    SettingOutOfRange { setting: &'static str, value: u32 },
    #[error(
        "cannot capture on {iface}: {message} (check `--interface` or `interface` in the config file and that lanmeter has CAP_NET_RAW)"
    )]
    Other { iface: String, message: String },
}

impl CaptureError {
    /// Turns what libpcap said into advice. The pcap crate hands back only `pcap_geterr`'s text,
    /// not the activation status code, so the interface's existence and flags are asked of the
    /// kernel directly (in the calling thread's network namespace, the one pcap opened in); the text
    /// decides only what the kernel cannot tell us. libpcap 1.10.3 on Linux says, as observed:
    /// missing interface "No such device exists", interface down "That device is not up", no
    /// CAP_NET_RAW "socket: Operation not permitted" (for any name, existing or not).
    pub(super) fn classify(iface: &str, err: &pcap::Error) -> CaptureError {
        let iface_owned = iface.to_string();
        let message = match err {
            pcap::Error::PcapError(m) => m.clone(),
            other => other.to_string(),
        };
        tracing::debug!(iface, pcap_error = %message, "libpcap refused to open the interface");
        let lower = message.to_ascii_lowercase();
        // Existence first: without CAP_NET_RAW libpcap fails at socket() before it looks at the
        // name, and a misspelt interface is the thing to fix before granting capabilities.
        let state = interface_state(iface);
        if matches!(state, InterfaceState::Missing) {
            return CaptureError::NoSuchInterface { iface: iface_owned };
        }
        if lower.contains("not permitted")
            || lower.contains("permission")
            || lower.contains("access denied")
        {
            return CaptureError::PermissionDenied { iface: iface_owned };
        }
        if matches!(state, InterfaceState::Down)
            || lower.contains("not up")
            || lower.contains("went down")
        {
            return CaptureError::InterfaceDown { iface: iface_owned };
        }
        if lower.contains("no such device") {
            return CaptureError::NoSuchInterface { iface: iface_owned };
        }
        CaptureError::Other {
            iface: iface_owned,
            message,
        }
    }
}

enum InterfaceState {
    Missing,
    Down,
    Up,
    Unknown,
}

fn interface_state(iface: &str) -> InterfaceState {
    // `any` is libpcap's pseudo-device: the kernel knows no interface by that name.
    if iface == "any" {
        return InterfaceState::Unknown;
    }
    if nix::net::if_::if_nametoindex(iface).is_err() {
        return InterfaceState::Missing;
    }
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return InterfaceState::Unknown;
    };
    for a in addrs {
        if a.interface_name == iface {
            return if a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP) {
                InterfaceState::Up
            } else {
                InterfaceState::Down
            };
        }
    }
    InterfaceState::Unknown
}

/// An opened, activated, non-blocking live capture that no thread reads yet, or one still
/// waiting for its interface.
pub struct LiveCapture {
    /// `None` while the interface is missing (not yet there, vanished) or down at open.
    cap: Option<Capture<Active>>,
    link: LinkType,
    /// Kept to reopen the interface if it vanishes and comes back; `interface` is the name
    /// captured on now (it changes when the interface is followed elsewhere).
    cfg: LiveConfig,
    follow: Follow,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("iface", &self.cfg.interface)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// libpcap's name for a DLT, for messages.
pub(super) fn link_name(dlt: i32) -> String {
    pcap::Linktype(dlt)
        .get_name()
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Opens and activates a non-blocking handle on `cfg.interface` whatever its link type; the
/// caller decides which link types it can read (accounting: Ethernet; the survey: radiotap).
pub(super) fn open_handle(cfg: &LiveConfig) -> Result<(Capture<Active>, i32), CaptureError> {
    let iface = cfg.interface.as_str();
    let snaplen = i32::try_from(cfg.snaplen).map_err(|_| CaptureError::SettingOutOfRange {
        setting: "snaplen",
        value: cfg.snaplen,
    })?;
    let buffer = i32::try_from(cfg.buffer_bytes).map_err(|_| CaptureError::SettingOutOfRange {
        setting: "buffer_bytes",
        value: cfg.buffer_bytes,
    })?;
    let classify = |e: pcap::Error| CaptureError::classify(iface, &e);
    let cap = Capture::from_device(iface)
        .map_err(classify)?
        // Immediate mode: frames are handed over as they arrive, not when a ring block fills,
        // so an idle-then-busy link never sits on a half-full block and stop stays prompt.
        .immediate_mode(true)
        .snaplen(snaplen)
        .buffer_size(buffer)
        .promisc(cfg.promiscuous)
        .open()
        .map_err(classify)?
        .setnonblock()
        .map_err(classify)?;
    let dlt = cap.get_datalink().0;
    Ok((cap, dlt))
}

/// Opens the interface now, in the calling thread (and so in its network namespace), so that the
/// caller can report a bad interface or missing capability before starting anything else.
pub fn open(cfg: &LiveConfig) -> Result<LiveCapture, CaptureError> {
    let iface = cfg.interface.as_str();
    let (cap, dlt) = open_handle(cfg)?;
    let Some(link) = LinkType::from_dlt(dlt) else {
        return Err(CaptureError::UnsupportedLinkType {
            iface: iface.to_string(),
            dlt,
            link_name: link_name(dlt),
        });
    };
    tracing::info!(
        iface,
        link = ?link,
        snaplen = cfg.snaplen,
        buffer_bytes = cfg.buffer_bytes,
        promiscuous = cfg.promiscuous,
        "live capture opened"
    );
    Ok(LiveCapture {
        cap: Some(cap),
        link,
        cfg: cfg.clone(),
        follow: Follow::Name,
    })
}

/// Which interface `follow` points at now: the configured name while it exists, else the one
/// with the MAC, or the default route's. `None`: nothing to open yet.
fn resolve(configured: &str, follow: &Follow) -> Option<String> {
    match follow {
        Follow::Name => Some(configured.to_string()),
        Follow::NameOrMac(mac) => {
            if nix::net::if_::if_nametoindex(configured).is_ok() {
                Some(configured.to_string())
            } else {
                interface_with_mac(*mac)
            }
        }
        Follow::DefaultRoute(route) => route(),
    }
}

/// [`open`], except that a missing or down interface (or, following the default route, no
/// default route yet) is not an error: the capture starts waiting for it, says so in the log and
/// in [`CaptureStats::state`], and opens it as soon as it is there. Other failures (no
/// CAP_NET_RAW, a link type that cannot be read) are errors as with [`open`].
pub fn open_following(cfg: &LiveConfig, follow: Follow) -> Result<LiveCapture, CaptureError> {
    let waiting = |cfg: LiveConfig, why: String| {
        tracing::warn!(
            iface = %cfg.interface,
            "{why}: waiting for it; capture starts as soon as it is there (the wait is shown on /system)"
        );
        LiveCapture {
            cap: None,
            link: LinkType::Ethernet,
            cfg,
            follow: follow.clone(),
        }
    };
    let Some(name) = resolve(&cfg.interface, &follow) else {
        return Ok(waiting(
            cfg.clone(),
            "no default route yet to pick the capture interface from".into(),
        ));
    };
    let cfg = LiveConfig {
        interface: name,
        ..cfg.clone()
    };
    match open(&cfg) {
        Ok(mut c) => {
            c.follow = follow.clone();
            Ok(c)
        }
        Err(e @ (CaptureError::NoSuchInterface { .. } | CaptureError::InterfaceDown { .. })) => {
            let why = match e {
                CaptureError::NoSuchInterface { .. } => "the capture interface does not exist yet",
                _ => "the capture interface is down",
            };
            Ok(waiting(cfg, why.into()))
        }
        Err(e) => Err(e),
    }
}

/// Counters the capture thread publishes; readable from any thread at any time.
///
/// Our own counters are published once per batch (not per frame) to keep atomics off the per-packet
/// path; the kernel's (pcap_stats) are refreshed about once a second.
#[derive(Debug, Default)]
pub struct CaptureStats {
    frames_seen: AtomicU64,
    frames_decoded: AtomicU64,
    frames_undecodable: AtomicU64,
    wire_bytes_seen: AtomicU64,
    read_errors: AtomicU64,
    pcap_received: AtomicU64,
    pcap_dropped: AtomicU64,
    pcap_if_dropped: AtomicU64,
    link_gaps: AtomicU64,
    link_gap_millis: AtomicU64,
    link_down_since: AtomicU64,
    /// No handle: the interface is missing (not there yet, or vanished) and waited for.
    waiting: AtomicBool,
    /// The interface captured on (or waited for) now; empty while following a default route
    /// that does not exist yet. Written only when it changes, never on the packet path.
    interface: Mutex<String>,
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

    fn set_interface(&self, iface: &str) {
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

fn log_stats(iface: &str, s: &CaptureStatsSnapshot, msg: &'static str) {
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

/// libpcap's counters are 32-bit and wrap (after ~4 billion frames, hours at line rate); this keeps
/// 64-bit totals by adding the wrapping difference between successive readings.
#[derive(Default)]
struct Wrapping32 {
    last: u32,
    total: u64,
}

impl Wrapping32 {
    /// A new handle counts from zero again; the running total carries on.
    fn restart(&mut self) {
        self.last = 0;
    }

    fn update(&mut self, now: u32) -> u64 {
        self.total += u64::from(now.wrapping_sub(self.last));
        self.last = now;
        self.total
    }
}

#[derive(Default)]
struct KernelCounters {
    received: Wrapping32,
    dropped: Wrapping32,
    if_dropped: Wrapping32,
}

impl KernelCounters {
    fn restart(&mut self) {
        self.received.restart();
        self.dropped.restart();
        self.if_dropped.restart();
    }
}

/// Follows whether the interface can deliver frames and books each stretch when it cannot (down,
/// no carrier, vanished) as a gap in [`CaptureStats`], logged when it begins and when it ends.
#[derive(Debug, Default)]
struct GapWatch {
    down_since: Option<Instant>,
}

impl GapWatch {
    /// Records one observation; `usable` is None when the state could not be read (no change).
    fn observe(
        &mut self,
        iface: &str,
        usable: Option<bool>,
        now: Instant,
        wall_secs: i64,
        stats: &CaptureStats,
    ) {
        match (usable, self.down_since) {
            (Some(false), None) => {
                self.down_since = Some(now);
                let gap = stats.link_gaps.fetch_add(1, Ordering::Relaxed) + 1;
                stats.link_down_since.store(
                    u64::try_from(wall_secs).unwrap_or(1).max(1),
                    Ordering::Relaxed,
                );
                tracing::warn!(
                    iface,
                    gap,
                    "capture interface is down or has no carrier: its traffic is not counted until it is back (the gap is shown on /system and in /metrics)"
                );
            }
            (Some(true), Some(since)) => {
                self.down_since = None;
                let millis =
                    u64::try_from(now.duration_since(since).as_millis()).unwrap_or(u64::MAX);
                stats.link_gap_millis.fetch_add(millis, Ordering::Relaxed);
                stats.link_down_since.store(0, Ordering::Relaxed);
                tracing::warn!(
                    iface,
                    gap = stats.link_gaps.load(Ordering::Relaxed),
                    gap_millis = millis,
                    "capture interface is back: counting again after a gap"
                );
            }
            _ => {}
        }
    }
}

/// Whether `iface` is up with a carrier, as the kernel says now; None when it cannot be told
/// (`any`, the interface list unreadable, or no such name in this thread's network namespace: a
/// vanished interface is noticed by the read path, which marks the capture lost).
fn link_usable(iface: &str) -> Option<bool> {
    use nix::net::if_::InterfaceFlags;
    if iface == "any" {
        return None;
    }
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut found = false;
    for a in addrs {
        if a.interface_name == iface {
            found = true;
            if !a
                .flags
                .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING)
            {
                return Some(false);
            }
        }
    }
    found.then_some(true)
}

impl LiveCapture {
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    pub fn interface(&self) -> &str {
        &self.cfg.interface
    }

    /// Whether the interface is still waited for (see [`open_following`]).
    pub fn is_waiting(&self) -> bool {
        self.cap.is_none()
    }

    /// Starts the capture thread, named `capture-<iface>` (or `capture` while following a
    /// default route that is not there yet). It runs until `stop` is set, then logs the final
    /// statistics and returns; join the handle to wait for it.
    pub fn spawn(
        self,
        sink: Box<dyn FrameSink>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<(JoinHandle<()>, Arc<CaptureStats>)> {
        let stats = Arc::new(CaptureStats::default());
        stats.set_interface(&self.cfg.interface);
        stats.waiting.store(self.cap.is_none(), Ordering::Relaxed);
        let thread_stats = Arc::clone(&stats);
        let name = match self.cfg.interface.as_str() {
            "" => "capture".to_string(),
            i => format!("capture-{i}"),
        };
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || self.run(sink, &stop, &thread_stats))?;
        Ok((handle, stats))
    }

    fn run(mut self, mut sink: Box<dyn FrameSink>, stop: &AtomicBool, stats: &CaptureStats) {
        // Allocated once for the thread's life; summaries are written into it in place.
        let mut batch = vec![Frame::EMPTY; BATCH];
        let mut kernel = KernelCounters::default();
        let mut last_refresh = Instant::now();
        let mut last_log = Instant::now();
        let mut last_error_log: Option<Instant> = None;
        // No handle (`self.cap` None): the interface is not there yet, or it vanished (USB adapter
        // unplugged, bridge recreated) and the old handle, bound to the old ifindex, was dropped.
        // It is looked for again every REOPEN_INTERVAL, by name, MAC or default route.
        let mut last_reopen = Instant::now();
        let mut last_route_check = Instant::now();
        let mut iface = self.cfg.interface.clone();
        let mut gaps = GapWatch::default();
        let mut last_link_check = Instant::now();
        let mut last_wait_log = Instant::now();

        while !stop.load(Ordering::Relaxed) {
            if self.cap.is_none() {
                std::thread::sleep(Duration::from_millis(POLL_TIMEOUT_MS.into()));
                if last_reopen.elapsed() >= REOPEN_INTERVAL {
                    last_reopen = Instant::now();
                    if self.reopen(&mut kernel, stats) {
                        iface = self.cfg.interface.clone();
                    } else if last_wait_log.elapsed() >= WAIT_LOG_INTERVAL {
                        last_wait_log = Instant::now();
                        tracing::warn!(state = %stats.state(), "capture still waiting for its interface: nothing is counted meanwhile");
                    }
                }
            } else {
                let error = match self.wait_readable() {
                    Ok(true) => self.drain(&mut batch, sink.as_mut(), stop, stats).err(),
                    Ok(false) => None,
                    Err(err) => Some(err.to_string()),
                };
                if let Some(error) = error {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    if error.contains("disappeared")
                        || matches!(interface_state(&iface), InterfaceState::Missing)
                    {
                        tracing::warn!(
                            iface,
                            error,
                            "capture interface disappeared; it is reopened when it (or its replacement) comes back"
                        );
                        self.cap = None;
                        stats.waiting.store(true, Ordering::Relaxed);
                        last_reopen = Instant::now();
                    } else {
                        log_read_error(&iface, &mut last_error_log, &error);
                        // The handle may stay readable-with-error; do not spin on it.
                        std::thread::sleep(Duration::from_millis(POLL_TIMEOUT_MS.into()));
                    }
                }
            }
            let now = Instant::now();
            if let Follow::DefaultRoute(route) = self.follow
                && self.cap.is_some()
                && now.duration_since(last_route_check) >= ROUTE_CHECK_INTERVAL
            {
                last_route_check = now;
                if let Some(moved) = route().filter(|r| *r != iface) {
                    tracing::warn!(from = %iface, to = %moved, "the default route moved to another interface: capture follows it");
                    self.cap = None;
                    if self.reopen(&mut kernel, stats) {
                        iface = self.cfg.interface.clone();
                    } else {
                        stats.waiting.store(true, Ordering::Relaxed);
                    }
                }
            }
            if now.duration_since(last_link_check) >= LINK_CHECK_INTERVAL {
                last_link_check = now;
                let usable = if self.cap.is_none() {
                    Some(false)
                } else {
                    link_usable(&iface)
                };
                gaps.observe(
                    &iface,
                    usable,
                    now,
                    jiff::Timestamp::now().as_second(),
                    stats,
                );
            }
            if self.cap.is_some() && now.duration_since(last_refresh) >= PCAP_STATS_REFRESH {
                last_refresh = now;
                self.refresh_kernel_stats(&mut kernel, stats);
            }
            if now.duration_since(last_log) >= self.cfg.stats_log_interval {
                last_log = now;
                log_stats(&iface, &stats.snapshot(), "capture statistics");
            }
        }
        if self.cap.is_some() {
            // Frames the kernel queued before the stop request are counted, not dropped: a
            // clean stop must account for everything that crossed the wire before it. Bounded,
            // so a flood cannot keep a stopping process alive.
            for _ in 0..FINAL_DRAIN_BATCHES {
                if !matches!(
                    self.drain(&mut batch, sink.as_mut(), stop, stats),
                    Ok(false)
                ) {
                    break;
                }
            }
            self.refresh_kernel_stats(&mut kernel, stats);
        }
        log_stats(&iface, &stats.snapshot(), "capture stopped");
    }

    /// Waits up to [`POLL_TIMEOUT_MS`] for the handle to have something to read. EINTR counts as
    /// "nothing yet" so that a signal only makes the loop check `stop` sooner.
    fn wait_readable(&self) -> Result<bool, nix::errno::Errno> {
        let Some(cap) = &self.cap else {
            return Ok(false);
        };
        let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(POLL_TIMEOUT_MS)) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Opens the interface `follow` points at now (the same name, the one with the MAC, or the
    /// default route's) with the original settings, in this thread's namespace.
    fn reopen(&mut self, kernel: &mut KernelCounters, stats: &CaptureStats) -> bool {
        let Some(name) = resolve(&self.cfg.interface, &self.follow) else {
            tracing::debug!("no default route yet");
            return false;
        };
        let cfg = LiveConfig {
            interface: name,
            ..self.cfg.clone()
        };
        stats.set_interface(&cfg.interface);
        match open(&cfg) {
            Ok(fresh) => {
                if cfg.interface != self.cfg.interface && !self.cfg.interface.is_empty() {
                    tracing::warn!(from = %self.cfg.interface, to = %cfg.interface, "capture interface replaced: now capturing on the new one");
                }
                self.cap = fresh.cap;
                self.link = fresh.link;
                self.cfg = cfg;
                kernel.restart();
                stats.waiting.store(false, Ordering::Relaxed);
                tracing::info!(iface = %self.cfg.interface, "capture resumed");
                true
            }
            Err(err) => {
                tracing::debug!(iface = %cfg.interface, error = %err, "interface not back yet");
                self.cfg.interface = cfg.interface;
                false
            }
        }
    }

    /// Reads until libpcap has nothing left, handing over a batch whenever it fills. Checks `stop`
    /// between batches so a flood cannot hold the thread past a stop request. Returns whether the
    /// buffer was emptied (false: stopped with frames possibly left), or libpcap's read error.
    fn drain(
        &mut self,
        batch: &mut [Frame],
        sink: &mut dyn FrameSink,
        stop: &AtomicBool,
        stats: &CaptureStats,
    ) -> Result<bool, String> {
        let Some(cap) = self.cap.as_mut() else {
            return Ok(true);
        };
        loop {
            let mut n = 0;
            let mut undecodable = 0u64;
            let mut wire_bytes = 0u64;
            let mut end: Option<Option<String>> = None;
            while n + (undecodable as usize) < batch.len() {
                match cap.next_packet() {
                    Ok(p) => {
                        let h = p.header;
                        let ts = timeval_ns(&h.ts);
                        wire_bytes += u64::from(h.len);
                        if decode::decode_into(self.link, ts, p.data, h.len, &mut batch[n]) {
                            n += 1;
                        } else {
                            undecodable += 1;
                        }
                    }
                    // In non-blocking mode this is libpcap's "nothing buffered right now".
                    Err(pcap::Error::TimeoutExpired) => {
                        end = Some(None);
                        break;
                    }
                    Err(err) => {
                        end = Some(Some(err.to_string()));
                        break;
                    }
                }
            }
            if n > 0 {
                sink.ingest(&batch[..n]);
            }
            let seen = n as u64 + undecodable;
            if seen > 0 {
                stats.frames_seen.fetch_add(seen, Ordering::Relaxed);
                stats.frames_decoded.fetch_add(n as u64, Ordering::Relaxed);
                stats
                    .frames_undecodable
                    .fetch_add(undecodable, Ordering::Relaxed);
                stats
                    .wire_bytes_seen
                    .fetch_add(wire_bytes, Ordering::Relaxed);
            }
            match end {
                Some(None) => return Ok(true),
                Some(Some(error)) => return Err(error),
                None => {}
            }
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
        }
    }

    fn refresh_kernel_stats(&mut self, k: &mut KernelCounters, stats: &CaptureStats) {
        // Failure here is transient or harmless (the counters just stay stale); the next
        // refresh tries again, and read errors are reported by the read path.
        if let Some(Ok(s)) = self.cap.as_mut().map(|c| c.stats()) {
            stats
                .pcap_received
                .store(k.received.update(s.received), Ordering::Relaxed);
            stats
                .pcap_dropped
                .store(k.dropped.update(s.dropped), Ordering::Relaxed);
            stats
                .pcap_if_dropped
                .store(k.if_dropped.update(s.if_dropped), Ordering::Relaxed);
        }
    }
}

/// Capture timestamp in ns since the epoch. libpcap's default precision is microseconds.
// time_t and suseconds_t are i64 on 64-bit Linux but i32 on 32-bit ARM (Pi OS armhf), so the
// conversions are needed there even though clippy sees them as no-ops here.
#[allow(clippy::useless_conversion)]
#[inline]
pub(super) fn timeval_ns(tv: &nix::libc::timeval) -> i64 {
    i64::from(tv.tv_sec)
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(tv.tv_usec).saturating_mul(1_000))
}

/// At most one read-error line every ten seconds: an interface that stays down must not flood the
/// journal, yet the first error is reported at once.
fn log_read_error(iface: &str, last: &mut Option<Instant>, error: &str) {
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
        *last = Some(now);
        tracing::warn!(iface, error, "capture read failed; retrying");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapping_counter_survives_u32_wrap() {
        let mut w = Wrapping32::default();
        assert_eq!(w.update(10), 10);
        assert_eq!(w.update(u32::MAX - 5), u64::from(u32::MAX) - 5);
        assert_eq!(w.update(4), u64::from(u32::MAX) + 5);
        assert_eq!(w.update(4), u64::from(u32::MAX) + 5);
        // A reopened handle counts from zero; the total keeps growing from where it was.
        w.restart();
        assert_eq!(w.update(3), u64::from(u32::MAX) + 8);
    }

    #[test]
    fn gap_is_booked_once_from_down_to_back_up() {
        let stats = CaptureStats::default();
        let mut w = GapWatch::default();
        let t0 = Instant::now();
        w.observe("x", Some(true), t0, 100, &stats);
        assert_eq!(stats.snapshot().link_gaps, 0);
        w.observe("x", Some(false), t0, 100, &stats);
        // Still down, or state unreadable: the same gap goes on.
        w.observe(
            "x",
            Some(false),
            t0 + Duration::from_millis(250),
            100,
            &stats,
        );
        w.observe("x", None, t0 + Duration::from_millis(500), 100, &stats);
        let during = stats.snapshot();
        assert_eq!((during.link_gaps, during.link_down_since), (1, Some(100)));
        w.observe(
            "x",
            Some(true),
            t0 + Duration::from_millis(1500),
            102,
            &stats,
        );
        let after = stats.snapshot();
        assert_eq!(
            (
                after.link_gaps,
                after.link_gap_millis,
                after.link_down_since
            ),
            (1, 1500, None)
        );
        w.observe("x", Some(false), t0 + Duration::from_secs(2), 103, &stats);
        w.observe("x", Some(true), t0 + Duration::from_secs(3), 104, &stats);
        let twice = stats.snapshot();
        assert_eq!((twice.link_gaps, twice.link_gap_millis), (2, 2500));
    }

    #[test]
    fn timeval_becomes_nanoseconds() {
        let tv = nix::libc::timeval {
            tv_sec: 1_700_000_000,
            tv_usec: 123_456,
        };
        assert_eq!(timeval_ns(&tv), 1_700_000_000_123_456_000);
    }

    #[test]
    fn out_of_range_settings_are_refused_before_libpcap() {
        let cfg = LiveConfig {
            interface: "lo".into(),
            snaplen: u32::MAX,
            buffer_bytes: 1 << 20,
            promiscuous: false,
            stats_log_interval: Duration::from_secs(60),
        };
        let err = open(&cfg).unwrap_err();
        assert!(matches!(
            err,
            CaptureError::SettingOutOfRange {
                setting: "snaplen",
                ..
            }
        ));
    }
}
