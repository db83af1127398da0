//! The optional second capture source: a Wi-Fi adapter in monitor mode, read for the survey.
//!
//! It owns opening the monitor interface through the same libpcap machinery as live accounting
//! capture (refusing anything but radiotap, with the `iw` commands that fix it), and the named
//! thread that decodes its frames into a reusable batch of [`WifiFrame`]s for a [`WifiSink`].
//! Like the accounting thread it never logs, allocates or blocks per frame and notices the stop
//! flag within [`POLL_TIMEOUT_MS`]; it never touches the accounting meter or the database.
//! Putting the adapter into monitor mode and choosing its channel are left to `iw` (documented
//! in packaging/lanmeter.toml), not done over nl80211 here.

use super::ieee80211::{self, WifiFrame, WifiLink};
use super::live::{CaptureError, LiveConfig, PcapHandle, link_name, open_handle};
use super::source::{self, POLL_TIMEOUT_MS, PacketReader};
use super::{BATCH, WifiSink};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes kept per frame on the monitor interface. A beacon's elements (name, channel, security,
/// operation elements) sit in its first few hundred bytes; data frame payloads are never read,
/// but their radiotap header and length (for airtime) come with any snaplen.
pub const MONITOR_SNAPLEN: u32 = 1024;

/// An opened monitor-mode capture that no thread reads yet.
pub struct MonitorCapture {
    handle: PcapHandle,
    link: WifiLink,
    iface: String,
}

impl std::fmt::Debug for MonitorCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorCapture")
            .field("iface", &self.iface)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

/// Counters the monitor thread publishes once per batch.
#[derive(Debug, Default)]
pub struct MonitorStats {
    pub frames_seen: AtomicU64,
    pub frames_undecodable: AtomicU64,
    pub read_errors: AtomicU64,
}

/// Opens `iface` (already in monitor mode) now, in the calling thread, so a missing adapter or
/// one not in monitor mode is reported at start.
pub fn open(iface: &str, buffer_bytes: u32) -> Result<MonitorCapture, CaptureError> {
    let cfg = LiveConfig {
        interface: iface.to_string(),
        snaplen: MONITOR_SNAPLEN,
        buffer_bytes,
        // Monitor mode hears everything regardless; promiscuous mode means nothing there.
        promiscuous: false,
        stats_log_interval: Duration::from_secs(60),
    };
    let (cap, dlt) = open_handle(&cfg)?;
    let Some(link) = WifiLink::from_dlt(dlt) else {
        return Err(CaptureError::NotMonitorMode {
            iface: iface.to_string(),
            dlt,
            link_name: link_name(dlt),
        });
    };
    tracing::info!(iface, link = ?link, snaplen = MONITOR_SNAPLEN, "Wi-Fi monitor capture opened");
    Ok(MonitorCapture {
        handle: PcapHandle::new(cap, iface),
        link,
        iface: iface.to_string(),
    })
}

impl MonitorCapture {
    /// Starts the thread `wifi-<iface>`; it runs until `stop` is set.
    pub fn spawn(
        self,
        sink: Box<dyn WifiSink>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<(JoinHandle<()>, Arc<MonitorStats>)> {
        let stats = Arc::new(MonitorStats::default());
        let thread_stats = Arc::clone(&stats);
        let handle = std::thread::Builder::new()
            .name(format!("wifi-{}", self.iface))
            .spawn(move || self.run(sink, &stop, &thread_stats))?;
        Ok((handle, stats))
    }

    fn run(mut self, mut sink: Box<dyn WifiSink>, stop: &AtomicBool, stats: &MonitorStats) {
        let mut batch = vec![WifiFrame::EMPTY; BATCH];
        let mut warned = false;
        let link = self.link;
        let pause = Duration::from_millis(POLL_TIMEOUT_MS.into());
        while !stop.load(Ordering::Relaxed) {
            let read = match self.handle.wait_readable() {
                Ok(true) => source::drain(
                    &mut self.handle,
                    &mut batch,
                    |p, f| ieee80211::decode_into(link, p.ts_ns, p.data, p.wire_len, f),
                    |frames| sink.ingest(frames),
                    |d| {
                        stats.frames_seen.fetch_add(d.seen, Ordering::Relaxed);
                        stats
                            .frames_undecodable
                            .fetch_add(d.seen - d.decoded, Ordering::Relaxed);
                    },
                    stop,
                )
                .map(drop),
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(error) = read {
                stats.read_errors.fetch_add(1, Ordering::Relaxed);
                // One warning: an unplugged adapter must not flood the journal. The survey is
                // optional, so accounting carries on either way.
                if !warned {
                    warned = true;
                    tracing::warn!(iface = %self.iface, error = %error, "Wi-Fi monitor capture read failed; the survey pauses until the adapter works again");
                }
                // Readable-with-error must not become a busy loop.
                std::thread::sleep(pause);
            }
        }
        tracing::info!(
            iface = %self.iface,
            frames = stats.frames_seen.load(Ordering::Relaxed),
            undecodable = stats.frames_undecodable.load(Ordering::Relaxed),
            "Wi-Fi monitor capture stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loopback is a real interface whose link type is not radiotap: the refusal must name it
    /// and give the `iw` commands. (Needs CAP_NET_RAW, like every capture test here.)
    #[test]
    fn an_interface_not_in_monitor_mode_is_refused_with_the_iw_commands() {
        let err = open("lo", 1 << 20).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, CaptureError::NotMonitorMode { .. }), "{msg}");
        assert!(
            msg.contains("interface lo has link type EN10MB")
                && msg.contains("iw dev lo set type monitor")
                && msg.contains("wifi_interface"),
            "{msg}"
        );
        let err = open("nosuchwlan9", 1 << 20).unwrap_err();
        assert!(matches!(err, CaptureError::NoSuchInterface { .. }), "{err}");
    }
}
