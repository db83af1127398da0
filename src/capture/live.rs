//! Live capture from a network interface: opening the libpcap handle, and the interface's
//! housekeeping while the shared capture loop ([`super::source`]) reads it.
//!
//! It owns the live pcap handle and what keeps it usable: waiting for a missing interface,
//! reopening one that vanished, following the default route, watching the link for gaps and
//! copying the kernel's counters into [`CaptureStats`]. Reading, decoding and the stop flag are
//! the loop's; nothing here runs per packet except [`PcapHandle`]'s read.

use super::FrameSink;
use super::decode::LinkType;
pub use super::source::POLL_TIMEOUT_MS;
use super::source::{self, PacketReader, PacketSource, RawPacket, ReadError};
use super::stats::{CaptureStats, log_stats};
use crate::model::MacAddr;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pcap::{Active, Capture};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
/// waiting for its interface. As a [`PacketSource`] it also keeps the interface's housekeeping:
/// reopening, following the default route, watching the link, the kernel's counters.
pub struct LiveCapture {
    /// `None` while the interface is missing (not yet there, vanished) or down at open.
    handle: Option<PcapHandle>,
    link: LinkType,
    /// Kept to reopen the interface if it vanishes and comes back; `interface` is the name
    /// captured on now (it changes when the interface is followed elsewhere).
    cfg: LiveConfig,
    follow: Follow,
    kernel: KernelCounters,
    gaps: GapWatch,
    last_refresh: Instant,
    last_log: Instant,
    last_reopen: Instant,
    last_route_check: Instant,
    last_link_check: Instant,
    last_wait_log: Instant,
}

/// An activated non-blocking libpcap handle and the interface it is bound to: the reading part
/// shared by the accounting, discovery and Wi-Fi monitor captures.
pub(super) struct PcapHandle {
    pub(super) cap: Capture<Active>,
    iface: String,
    /// The interface's index when the handle was opened. A read error while the name has
    /// another index, or none, means the handle's interface is gone: that, asked of the kernel,
    /// is what makes an error [`ReadError::Vanished`] (libpcap's message text is not parsed).
    ifindex: Option<u32>,
}

impl PcapHandle {
    pub(super) fn new(cap: Capture<Active>, iface: &str) -> PcapHandle {
        PcapHandle {
            cap,
            iface: iface.to_string(),
            ifindex: nix::net::if_::if_nametoindex(iface).ok(),
        }
    }
}

/// Types a read error on `iface` (see [`PcapHandle::ifindex`]). `any` is libpcap's pseudo-device,
/// unknown to the kernel, so it never vanishes.
fn read_error(iface: &str, ifindex: Option<u32>, message: String) -> ReadError {
    let now = nix::net::if_::if_nametoindex(iface).ok();
    if iface != "any" && (now.is_none() || now != ifindex) {
        ReadError::Vanished {
            iface: iface.to_string(),
        }
    } else {
        ReadError::Failed {
            iface: iface.to_string(),
            message,
        }
    }
}

impl PacketReader for PcapHandle {
    /// poll(2) on the handle; EINTR counts as "nothing yet" so that a signal only makes the loop
    /// check `stop` sooner.
    fn wait_readable(&mut self) -> Result<bool, ReadError> {
        let mut fds = [PollFd::new(self.cap.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(POLL_TIMEOUT_MS)) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(err) => Err(read_error(&self.iface, self.ifindex, err.to_string())),
        }
    }

    #[inline]
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, ReadError> {
        match self.cap.next_packet() {
            Ok(p) => Ok(Some(RawPacket {
                ts_ns: timeval_ns(&p.header.ts),
                wire_len: p.header.len,
                data: p.data,
            })),
            // In non-blocking mode this is libpcap's "nothing buffered right now".
            Err(pcap::Error::TimeoutExpired) => Ok(None),
            Err(err) => Err(read_error(&self.iface, self.ifindex, err.to_string())),
        }
    }
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
    Ok(LiveCapture::new(
        Some(PcapHandle::new(cap, iface)),
        link,
        cfg.clone(),
        Follow::Name,
    ))
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
        LiveCapture::new(None, LinkType::Ethernet, cfg, follow.clone())
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
    fn new(
        handle: Option<PcapHandle>,
        link: LinkType,
        cfg: LiveConfig,
        follow: Follow,
    ) -> LiveCapture {
        let now = Instant::now();
        LiveCapture {
            handle,
            link,
            cfg,
            follow,
            kernel: KernelCounters::default(),
            gaps: GapWatch::default(),
            last_refresh: now,
            last_log: now,
            last_reopen: now,
            last_route_check: now,
            last_link_check: now,
            last_wait_log: now,
        }
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Starts the capture thread (see [`source::spawn`]).
    pub fn spawn(
        self,
        sink: Box<dyn FrameSink>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<(JoinHandle<()>, Arc<CaptureStats>)> {
        source::spawn(Box::new(self), sink, stop)
    }

    /// Opens the interface `follow` points at now (the same name, the one with the MAC, or the
    /// default route's) with the original settings, in this thread's namespace.
    fn reopen(&mut self) -> bool {
        let Some(name) = resolve(&self.cfg.interface, &self.follow) else {
            tracing::debug!("no default route yet");
            return false;
        };
        let cfg = LiveConfig {
            interface: name,
            ..self.cfg.clone()
        };
        match open(&cfg) {
            Ok(fresh) => {
                if cfg.interface != self.cfg.interface && !self.cfg.interface.is_empty() {
                    tracing::warn!(from = %self.cfg.interface, to = %cfg.interface, "capture interface replaced: now capturing on the new one");
                }
                self.handle = fresh.handle;
                self.link = fresh.link;
                self.cfg = cfg;
                self.kernel.restart();
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

    fn refresh_kernel_stats(&mut self, stats: &CaptureStats) {
        // Failure here is transient or harmless (the counters just stay stale); the next
        // refresh tries again, and read errors are reported by the read path.
        let k = &mut self.kernel;
        if let Some(Ok(s)) = self.handle.as_mut().map(|h| h.cap.stats()) {
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

impl PacketReader for LiveCapture {
    fn wait_readable(&mut self) -> Result<bool, ReadError> {
        match self.handle.as_mut() {
            Some(h) => h.wait_readable(),
            None => Ok(false),
        }
    }

    #[inline]
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, ReadError> {
        match self.handle.as_mut() {
            Some(h) => h.next_packet(),
            None => Ok(None),
        }
    }
}

impl PacketSource for LiveCapture {
    fn interface(&self) -> &str {
        &self.cfg.interface
    }

    fn link(&self) -> LinkType {
        self.link
    }

    /// Whether the interface is still waited for (see [`open_following`]).
    fn is_waiting(&self) -> bool {
        self.handle.is_none()
    }

    /// No handle: the interface is not there yet, or it vanished (USB adapter unplugged, bridge
    /// recreated) and the old handle, bound to the old ifindex, was dropped. It is looked for
    /// again every REOPEN_INTERVAL, by name, MAC or default route. With a handle: the default
    /// route is followed, the link watched and the kernel's counters copied.
    fn tend(&mut self, stats: &CaptureStats) {
        let now = Instant::now();
        if self.handle.is_none() && now.duration_since(self.last_reopen) >= REOPEN_INTERVAL {
            self.last_reopen = now;
            if !self.reopen() && now.duration_since(self.last_wait_log) >= WAIT_LOG_INTERVAL {
                self.last_wait_log = now;
                tracing::warn!(state = %stats.state(), "capture still waiting for its interface: nothing is counted meanwhile");
            }
        }
        if let Follow::DefaultRoute(route) = self.follow
            && self.handle.is_some()
            && now.duration_since(self.last_route_check) >= ROUTE_CHECK_INTERVAL
        {
            self.last_route_check = now;
            if let Some(moved) = route().filter(|r| *r != self.cfg.interface) {
                tracing::warn!(from = %self.cfg.interface, to = %moved, "the default route moved to another interface: capture follows it");
                self.handle = None;
                self.reopen();
            }
        }
        if now.duration_since(self.last_link_check) >= LINK_CHECK_INTERVAL {
            self.last_link_check = now;
            let usable = if self.handle.is_none() {
                Some(false)
            } else {
                link_usable(&self.cfg.interface)
            };
            self.gaps.observe(
                &self.cfg.interface,
                usable,
                now,
                jiff::Timestamp::now().as_second(),
                stats,
            );
        }
        if self.handle.is_some() && now.duration_since(self.last_refresh) >= PCAP_STATS_REFRESH {
            self.last_refresh = now;
            self.refresh_kernel_stats(stats);
        }
        if now.duration_since(self.last_log) >= self.cfg.stats_log_interval {
            self.last_log = now;
            log_stats(&self.cfg.interface, &stats.snapshot(), "capture statistics");
        }
    }

    fn lose(&mut self) {
        self.handle = None;
        self.last_reopen = Instant::now();
    }

    fn finish(&mut self, stats: &CaptureStats) {
        if self.handle.is_some() {
            self.refresh_kernel_stats(stats);
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
