//! The packet-source seam: one capture loop, whatever the frames come from.
//!
//! A [`PacketSource`] is anything that yields raw frames with their wire length: the live
//! libpcap handle (`live::LiveCapture`), a capture file ([`FileFeed`]), or frames held in
//! memory ([`MemorySource`]). [`spawn`] runs the one accounting loop over it: wait for
//! something to read, decode a batch in place, hand it to the [`FrameSink`], publish the
//! counters in [`CaptureStats`], and react to typed read errors ([`ReadError`]). What only a live
//! interface needs (reopening a vanished one, following the default route, watching the link,
//! the kernel's counters) is the source's own business, done in [`PacketSource::tend`].
//!
//! The loop never logs, allocates or blocks per packet, and notices `stop` within about
//! [`POLL_TIMEOUT_MS`] even when nothing ever arrives. [`drain`] is also the read loop of the
//! Wi-Fi monitor thread, with its own decoder and sink.

use super::decode::{self, Frame, LinkType};
use super::stats::{CaptureStats, log_stats};
use super::{BATCH, FrameSink};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long one wait for something to read lasts at most: the bound on how late a loop notices
/// `stop` on an idle link. A blocking pcap read with a timeout was seen never to return on an
/// idle veth (TOOLCHAIN.md), so no loop blocks anywhere but in such a bounded wait.
pub const POLL_TIMEOUT_MS: u16 = 100;
/// Batches read after a stop request to empty what is queued (64 frames each).
const FINAL_DRAIN_BATCHES: usize = 4096;

/// One frame as a source delivers it, borrowed until the next read.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    /// Capture time, nanoseconds since the epoch.
    pub ts_ns: i64,
    /// Length on the wire (what is counted), whatever was captured of it.
    pub wire_len: u32,
    /// The captured bytes (at most the snaplen).
    pub data: &'a [u8],
}

/// Why a read failed: the loop's reaction depends only on the variant.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The handle is bound to an interface that is gone (unplugged, deleted or recreated): the
    /// source drops it and waits for the interface (or its replacement) to come back.
    #[error(
        "interface {iface} is gone (unplugged, deleted or recreated): wait for it to come back, or choose another with `--interface` or `interface` in the config file"
    )]
    Vanished { iface: String },
    /// Anything else (the interface went down, a transient error): retried after a pause.
    #[error("capture read on {iface} failed: {message}")]
    Failed { iface: String, message: String },
}

/// Reads raw frames: the part of a source that [`drain`] needs.
pub trait PacketReader {
    /// Waits up to [`POLL_TIMEOUT_MS`] for something to read; `Ok(false)`: nothing yet.
    fn wait_readable(&mut self) -> Result<bool, ReadError>;
    /// The next frame buffered now, or `None` when nothing is buffered.
    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, ReadError>;
}

/// Where accounting frames come from. See the module documentation.
pub trait PacketSource: PacketReader + Send {
    /// The interface read now (or waited for), or what stands for it (a file's name).
    fn interface(&self) -> &str;
    /// How the frames are framed.
    fn link(&self) -> LinkType;
    /// Whether there is nothing to read from yet (an interface waited for).
    fn is_waiting(&self) -> bool {
        false
    }
    /// Called on every turn of the loop, read or not: housekeeping that is not per packet.
    fn tend(&mut self, _stats: &CaptureStats) {}
    /// A read said [`ReadError::Vanished`]: drop the handle and wait for the interface.
    fn lose(&mut self) {}
    /// After the final drain: last figures into `stats`.
    fn finish(&mut self, _stats: &CaptureStats) {}
}

/// Frames counted by one [`drain`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Drained {
    /// Frames read (decoded or not).
    pub seen: u64,
    /// Frames that became a summary and went to the sink.
    pub decoded: u64,
    /// Sum of their wire lengths.
    pub wire_bytes: u64,
}

/// Reads `reader` until it has nothing buffered, decoding each frame into `batch` in place and
/// handing each filled batch to `deliver`, then `count` with that batch's figures. Checks `stop`
/// between batches so a flood cannot hold a thread past a stop request. Returns whether the
/// reader was emptied (false: stopped with frames possibly left), or its read error.
pub fn drain<R: PacketReader + ?Sized, T>(
    reader: &mut R,
    batch: &mut [T],
    mut decode: impl FnMut(&RawPacket<'_>, &mut T) -> bool,
    mut deliver: impl FnMut(&[T]),
    mut count: impl FnMut(Drained),
    stop: &AtomicBool,
) -> Result<bool, ReadError> {
    loop {
        let mut n = 0;
        let mut d = Drained::default();
        let mut end = None;
        while (d.seen as usize) < batch.len() {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    d.seen += 1;
                    d.wire_bytes += u64::from(p.wire_len);
                    if decode(&p, &mut batch[n]) {
                        n += 1;
                    }
                }
                Ok(None) => {
                    end = Some(Ok(true));
                    break;
                }
                Err(e) => {
                    end = Some(Err(e));
                    break;
                }
            }
        }
        d.decoded = n as u64;
        if n > 0 {
            deliver(&batch[..n]);
        }
        if d.seen > 0 {
            count(d);
        }
        if let Some(end) = end {
            return end;
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
    }
}

/// Starts the accounting capture thread over `source`, named `capture-<interface>` (or
/// `capture` while there is no name yet). It runs until `stop` is set, reads what is still
/// queued, logs the final statistics and returns; join the handle to wait for it.
pub fn spawn(
    mut source: Box<dyn PacketSource>,
    sink: Box<dyn FrameSink>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(JoinHandle<()>, Arc<CaptureStats>)> {
    let stats = Arc::new(CaptureStats::default());
    stats.set_interface(source.interface());
    stats.waiting.store(source.is_waiting(), Ordering::Relaxed);
    let thread_stats = Arc::clone(&stats);
    let name = match source.interface() {
        "" => "capture".to_string(),
        i => format!("capture-{i}"),
    };
    let handle = std::thread::Builder::new()
        .name(name)
        .spawn(move || run(source.as_mut(), sink, &stop, &thread_stats))?;
    Ok((handle, stats))
}

/// The accounting loop (see the module documentation).
fn run(
    source: &mut dyn PacketSource,
    mut sink: Box<dyn FrameSink>,
    stop: &AtomicBool,
    stats: &CaptureStats,
) {
    // Allocated once for the thread's life; summaries are written into it in place.
    let mut batch = vec![Frame::EMPTY; BATCH];
    let mut last_error_log: Option<Instant> = None;
    let pause = Duration::from_millis(POLL_TIMEOUT_MS.into());
    while !stop.load(Ordering::Relaxed) {
        if source.is_waiting() {
            std::thread::sleep(pause);
        } else {
            let error = match source.wait_readable() {
                Ok(true) => read(source, &mut batch, sink.as_mut(), stop, stats).err(),
                Ok(false) => None,
                Err(e) => Some(e),
            };
            match error {
                None => {}
                Some(e @ ReadError::Vanished { .. }) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        iface = source.interface(),
                        error = %e,
                        "capture interface disappeared; it is reopened when it (or its replacement) comes back"
                    );
                    source.lose();
                }
                Some(e @ ReadError::Failed { .. }) => {
                    stats.read_errors.fetch_add(1, Ordering::Relaxed);
                    log_read_error(&e, &mut last_error_log);
                    // The handle may stay readable-with-error; do not spin on it.
                    std::thread::sleep(pause);
                }
            }
        }
        source.tend(stats);
        stats.set_interface(source.interface());
        stats.waiting.store(source.is_waiting(), Ordering::Relaxed);
    }
    if !source.is_waiting() {
        // Frames queued before the stop request are counted, not dropped: a clean stop must
        // account for everything that crossed the wire before it. Bounded, so a flood cannot
        // keep a stopping process alive.
        for _ in 0..FINAL_DRAIN_BATCHES {
            if !matches!(
                read(source, &mut batch, sink.as_mut(), stop, stats),
                Ok(false)
            ) {
                break;
            }
        }
    }
    source.finish(stats);
    log_stats(source.interface(), &stats.snapshot(), "capture stopped");
}

/// One [`drain`] of the accounting loop: Ethernet/cooked summaries into the sink, counters into
/// `stats` once per batch.
fn read(
    source: &mut dyn PacketSource,
    batch: &mut [Frame],
    sink: &mut dyn FrameSink,
    stop: &AtomicBool,
    stats: &CaptureStats,
) -> Result<bool, ReadError> {
    let link = source.link();
    drain(
        source,
        batch,
        |p, f| decode::decode_into(link, p.ts_ns, p.data, p.wire_len, f),
        |frames| sink.ingest(frames),
        |d| {
            stats.frames_seen.fetch_add(d.seen, Ordering::Relaxed);
            stats.frames_decoded.fetch_add(d.decoded, Ordering::Relaxed);
            stats
                .frames_undecodable
                .fetch_add(d.seen - d.decoded, Ordering::Relaxed);
            stats
                .wire_bytes_seen
                .fetch_add(d.wire_bytes, Ordering::Relaxed);
        },
        stop,
    )
}

/// At most one read-error line every ten seconds: an interface that stays down must not flood the
/// journal, yet the first error is reported at once.
fn log_read_error(error: &ReadError, last: &mut Option<Instant>) {
    let now = Instant::now();
    if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
        *last = Some(now);
        tracing::warn!(error = %error, "capture read failed; retrying");
    }
}

/// Frames held in memory, delivered once in order and then nothing, like a link gone quiet:
/// frames fabricated by a test or a generator, through the same loop as a live interface.
#[derive(Debug)]
pub struct MemorySource {
    name: String,
    link: LinkType,
    frames: Vec<(i64, u32, Vec<u8>)>,
    next: usize,
}

impl MemorySource {
    /// `frames` are (capture time in ns, wire length, captured bytes), read in this order.
    pub fn new(name: &str, link: LinkType, frames: Vec<(i64, u32, Vec<u8>)>) -> MemorySource {
        MemorySource {
            name: name.to_string(),
            link,
            frames,
            next: 0,
        }
    }
}

impl PacketReader for MemorySource {
    fn wait_readable(&mut self) -> Result<bool, ReadError> {
        if self.next < self.frames.len() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(POLL_TIMEOUT_MS.into()));
        Ok(false)
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, ReadError> {
        let Some((ts_ns, wire_len, data)) = self.frames.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        Ok(Some(RawPacket {
            ts_ns: *ts_ns,
            wire_len: *wire_len,
            data,
        }))
    }
}

impl PacketSource for MemorySource {
    fn interface(&self) -> &str {
        &self.name
    }

    fn link(&self) -> LinkType {
        self.link
    }
}

/// A capture file read through the accounting loop: its records once, in order, then nothing,
/// like a link gone quiet. Where the file stops early (a truncated tail) is one
/// [`ReadError::Failed`], and then the end.
pub struct FileFeed {
    name: String,
    link: LinkType,
    file: super::file::FileSource,
    ended: bool,
}

impl FileFeed {
    pub fn open(path: &std::path::Path) -> Result<FileFeed, super::file::FileError> {
        let file = super::file::FileSource::open(path)?;
        Ok(FileFeed {
            name: path
                .file_name()
                .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned()),
            link: file.link(),
            file,
            ended: false,
        })
    }
}

impl PacketReader for FileFeed {
    fn wait_readable(&mut self) -> Result<bool, ReadError> {
        if !self.ended {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(POLL_TIMEOUT_MS.into()));
        Ok(false)
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, ReadError> {
        if self.ended {
            return Ok(None);
        }
        match self.file.next_record(self.link) {
            Ok(Some((ts_ns, wire_len, data))) => Ok(Some(RawPacket {
                ts_ns,
                wire_len,
                data,
            })),
            Ok(None) => {
                self.ended = true;
                Ok(None)
            }
            Err(message) => {
                self.ended = true;
                Err(ReadError::Failed {
                    iface: self.name.clone(),
                    message,
                })
            }
        }
    }
}

impl PacketSource for FileFeed {
    fn interface(&self) -> &str {
        &self.name
    }

    fn link(&self) -> LinkType {
        self.link
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Arc<Mutex<Vec<Frame>>>);
    impl FrameSink for Collect {
        fn ingest(&mut self, frames: &[Frame]) {
            self.0.lock().unwrap().extend_from_slice(frames);
        }
    }

    fn frame(src: u8, len: u32) -> (i64, u32, Vec<u8>) {
        let mut b = vec![0u8; 60];
        b[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xff]);
        b[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, src]);
        b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        (1_772_323_200_000_000_000, len, b)
    }

    /// Every frame of a source reaches the sink, counted once with its wire length (not the
    /// captured length), and a stop request is seen while the source stays quiet afterwards.
    #[test]
    fn the_loop_delivers_every_frame_and_stops_on_a_quiet_source() {
        let mut frames: Vec<_> = (0..200u32)
            .map(|i| frame((i % 3) as u8, 1000 + i))
            .collect();
        // Too short to have a source address: seen, counted undecodable, delivered to nobody.
        frames.push((0, 5, vec![0; 5]));
        let wire: u64 = frames.iter().map(|f| u64::from(f.1)).sum();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread, stats) = spawn(
            Box::new(MemorySource::new("fabricated", LinkType::Ethernet, frames)),
            Box::new(Collect(Arc::clone(&got))),
            Arc::clone(&stop),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while stats.snapshot().frames_seen < 201 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
        let s = stats.snapshot();
        assert_eq!(
            (s.frames_seen, s.frames_decoded, s.frames_undecodable),
            (201, 200, 1)
        );
        assert_eq!(s.wire_bytes_seen, wire);
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 200);
        assert_eq!(
            got.iter().map(|f| u64::from(f.wire_len)).sum::<u64>(),
            wire - 5
        );
        assert_eq!(stats.interface(), "fabricated");
    }
}
