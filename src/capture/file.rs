//! Capture files (pcap and pcapng) as a packet source: the `replay` path.
//!
//! It reads records through libpcap, decodes them with the same decoder as live capture and
//! hands batches to a [`FrameSink`]. It owns the errors a file can have (not a capture, a link
//! type accounting cannot use, a truncated tail) and must never touch the database itself.

use super::decode::{Frame, LinkType, decode_into};
use super::ieee80211::{self, WifiFrame, WifiLink};
use super::pcapfile::{ClassicReader, Stop};
use super::{BATCH, FrameSink, WifiSink};
use pcap::{Capture, Offline, Precision};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}: check the path and that this user may read it")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a pcap or pcapng capture (libpcap: {detail}): give a file written by tcpdump, tshark, dumpcap or `lanmeter generate`"
    )]
    NotACapture { path: PathBuf, detail: String },
    #[error(
        "{path} has link type {name} ({dlt}): byte accounting needs Ethernet or Linux cooked (SLL/SLL2) framing; capture on the wired interface or on `any` instead"
    )]
    UnsupportedLink {
        path: PathBuf,
        name: String,
        dlt: i32,
    },
    #[error(
        "{path} has link type {name} ({dlt}): a Wi-Fi survey needs 802.11 frames with radiotap headers, as captured on a monitor-mode interface (`iw dev wlan1 set type monitor`, then `tcpdump -i wlan1 -w FILE`); plain `lanmeter replay` reads Ethernet captures"
    )]
    NotWifi {
        path: PathBuf,
        name: String,
        dlt: i32,
    },
    #[error(
        "{path} ends early: {records} complete records were counted, then the file stopped {at} (libpcap: {detail}); the totals cover those records only, the capture was probably cut off while being written"
    )]
    Truncated {
        path: PathBuf,
        records: u64,
        at: String,
        detail: String,
    },
}

/// What a read of a whole file saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records read from the file.
    pub records: u64,
    /// Records whose link-layer header was unreadable (not attributable to any MAC).
    pub undecodable: u64,
    /// Wire bytes of all records read.
    pub wire_bytes: u64,
}

/// An opened capture file.
pub struct FileSource {
    path: PathBuf,
    reader: Reader,
    link: LinkType,
}

/// Classic pcap files are read by our own reader (libpcap's per-record `fread` calls cost more
/// than decoding and counting); pcapng and anything unusual go through libpcap.
enum Reader {
    Classic(ClassicReader),
    Libpcap(Capture<Offline>),
}

/// What the next read produced, whichever reader did it.
enum Next<'a> {
    Record {
        ts: i64,
        wire_len: u32,
        data: &'a [u8],
    },
    End,
    Stopped {
        at: String,
        detail: String,
    },
}

impl Reader {
    #[inline]
    fn next(&mut self) -> Next<'_> {
        match self {
            Reader::Classic(r) => {
                let at = r.offset();
                match r.next_record() {
                    Ok(Some(rec)) => Next::Record {
                        ts: rec.ts_ns,
                        wire_len: rec.wire_len,
                        data: rec.data,
                    },
                    Ok(None) => Next::End,
                    Err(
                        Stop::Truncated { detail } | Stop::Invalid { detail } | Stop::Io(detail),
                    ) => Next::Stopped {
                        at: format!("at byte {at}"),
                        detail,
                    },
                }
            }
            Reader::Libpcap(cap) => match cap.next_packet() {
                Ok(p) => {
                    let h = p.header;
                    // time_t and suseconds_t are i64 on the 64-bit targets we ship but not on
                    // every libc.
                    #[allow(clippy::unnecessary_cast)]
                    let ts = (h.ts.tv_sec as i64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(h.ts.tv_usec as i64);
                    Next::Record {
                        ts,
                        wire_len: h.len,
                        data: p.data,
                    }
                }
                Err(pcap::Error::NoMorePackets) => Next::End,
                Err(e) => Next::Stopped {
                    at: "inside a pcapng block".to_string(),
                    detail: pcap_detail(&e),
                },
            },
        }
    }
}

/// Opens `path` with our classic reader when it is classic pcap, else with libpcap; returns the
/// reader and the file's link type.
fn open_reader(path: &Path) -> Result<(Reader, i32), FileError> {
    let open_err = |source| FileError::Open {
        path: path.to_owned(),
        source,
    };
    // Opening it ourselves first also gives clearer messages for missing files than libpcap.
    Ok(match ClassicReader::open(path).map_err(open_err)? {
        Some(r) => {
            let dlt = r.linktype as i32;
            (Reader::Classic(r), dlt)
        }
        None => {
            let cap = Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| {
                FileError::NotACapture {
                    path: path.to_owned(),
                    detail: pcap_detail(&e),
                }
            })?;
            let dlt = cap.get_datalink().0;
            (Reader::Libpcap(cap), dlt)
        }
    })
}

fn link_name(dlt: i32) -> String {
    pcap::Linktype(dlt)
        .get_name()
        .unwrap_or_else(|_| "unknown".into())
}

impl FileSource {
    pub fn open(path: &Path) -> Result<FileSource, FileError> {
        let (reader, dlt) = open_reader(path)?;
        let link = LinkType::from_dlt(dlt).ok_or_else(|| FileError::UnsupportedLink {
            path: path.to_owned(),
            name: link_name(dlt),
            dlt,
        })?;
        Ok(FileSource {
            path: path.to_owned(),
            reader,
            link,
        })
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Reads every record into `sink`, calling `after_batch` after each batch (replay uses it to
    /// take deltas while the file is read). Stops at the end of the file, or at a truncated tail,
    /// in which case everything before it has been delivered and the error says where it ended.
    pub fn run<S: FrameSink + ?Sized>(
        &mut self,
        sink: &mut S,
        after_batch: impl FnMut(&mut S),
    ) -> Result<ReadStats, FileError> {
        self.run_with_raw(sink, after_batch, |_, _, _| {})
    }

    /// Like [`FileSource::run`], and also shows every record's captured bytes to `raw` (replay's
    /// device discovery reads the same pass; a capture file has what it has, so there is no
    /// headers-only rule to keep here). `raw` must be cheap: it is called for every record.
    pub fn run_with_raw<S: FrameSink + ?Sized>(
        &mut self,
        sink: &mut S,
        mut after_batch: impl FnMut(&mut S),
        mut raw: impl FnMut(LinkType, i64, &[u8]),
    ) -> Result<ReadStats, FileError> {
        let mut stats = ReadStats::default();
        // Summaries are decoded in place into this buffer; `n` of them are filled.
        let mut batch = vec![Frame::EMPTY; BATCH];
        let mut n = 0;
        let link = self.link;
        let stopped = loop {
            match self.reader.next() {
                Next::Record { ts, wire_len, data } => {
                    stats.records += 1;
                    stats.wire_bytes += u64::from(wire_len);
                    raw(link, ts, data);
                    if decode_into(link, ts, data, wire_len, &mut batch[n]) {
                        n += 1;
                    } else {
                        stats.undecodable += 1;
                    }
                }
                Next::End => break None,
                Next::Stopped { at, detail } => break Some((at, detail)),
            }
            if n == BATCH {
                sink.ingest(&batch);
                n = 0;
                after_batch(sink);
            }
        };
        if n > 0 {
            sink.ingest(&batch[..n]);
            after_batch(sink);
        }
        match stopped {
            None => Ok(stats),
            Some((at, detail)) => Err(FileError::Truncated {
                path: self.path.clone(),
                records: stats.records,
                at,
                detail,
            }),
        }
    }
}

/// An opened 802.11 capture file (radiotap or bare 802.11): the `replay --survey` path.
pub struct WifiFileSource {
    path: PathBuf,
    reader: Reader,
    link: WifiLink,
}

impl WifiFileSource {
    pub fn open(path: &Path) -> Result<WifiFileSource, FileError> {
        let (reader, dlt) = open_reader(path)?;
        let link = WifiLink::from_dlt(dlt).ok_or_else(|| FileError::NotWifi {
            path: path.to_owned(),
            name: link_name(dlt),
            dlt,
        })?;
        Ok(WifiFileSource {
            path: path.to_owned(),
            reader,
            link,
        })
    }

    /// Reads every record into `sink`, a batch at a time, like [`FileSource::run`]. A truncated
    /// tail stops the read with everything before it delivered.
    pub fn run<S: WifiSink + ?Sized>(&mut self, sink: &mut S) -> Result<ReadStats, FileError> {
        let mut stats = ReadStats::default();
        let mut batch = vec![WifiFrame::EMPTY; BATCH];
        let mut n = 0;
        let link = self.link;
        let stopped = loop {
            match self.reader.next() {
                Next::Record { ts, wire_len, data } => {
                    stats.records += 1;
                    stats.wire_bytes += u64::from(wire_len);
                    if ieee80211::decode_into(link, ts, data, wire_len, &mut batch[n]) {
                        n += 1;
                    } else {
                        stats.undecodable += 1;
                    }
                }
                Next::End => break None,
                Next::Stopped { at, detail } => break Some((at, detail)),
            }
            if n == BATCH {
                sink.ingest(&batch);
                n = 0;
            }
        };
        if n > 0 {
            sink.ingest(&batch[..n]);
        }
        match stopped {
            None => Ok(stats),
            Some((at, detail)) => Err(FileError::Truncated {
                path: self.path.clone(),
                records: stats.records,
                at,
                detail,
            }),
        }
    }
}

fn pcap_detail(e: &pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    struct Collect(Vec<Frame>);
    impl FrameSink for Collect {
        fn ingest(&mut self, frames: &[Frame]) {
            self.0.extend_from_slice(frames);
        }
    }

    /// A classic pcap (microsecond magic) with `n` 60-byte Ethernet records.
    fn pcap_bytes(n: usize, linktype: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&linktype.to_le_bytes());
        for i in 0..n {
            b.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
            b.extend_from_slice(&250_000u32.to_le_bytes());
            b.extend_from_slice(&60u32.to_le_bytes());
            b.extend_from_slice(&1514u32.to_le_bytes());
            let mut frame = [0u8; 60];
            frame[..6].copy_from_slice(&[0xff; 6]);
            frame[6..12].copy_from_slice(&[0, 1, 2, 3, 4, i as u8]);
            frame[12] = 0x08;
            b.extend_from_slice(&frame);
        }
        b
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p).unwrap().write_all(bytes).unwrap();
        p
    }

    #[test]
    fn reads_records_with_wire_length_and_nanosecond_time() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "ok.pcap", &pcap_bytes(300, 1));
        let mut src = FileSource::open(&p).unwrap();
        let mut sink = Collect(Vec::new());
        let mut batches = 0;
        let stats = src.run(&mut sink, |_| batches += 1).unwrap();
        assert_eq!(stats.records, 300);
        assert_eq!(stats.wire_bytes, 300 * 1514);
        assert_eq!(batches, 300usize.div_ceil(BATCH));
        assert_eq!(sink.0.len(), 300);
        assert_eq!(sink.0[0].ts, 1_700_000_000 * 1_000_000_000 + 250_000_000);
        assert_eq!(sink.0[0].wire_len, 1514);
    }

    #[test]
    fn truncated_file_counts_complete_records_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let full = pcap_bytes(10, 1);
        // Cut inside the 8th record's header.
        let cut = 24 + 7 * (16 + 60) + 5;
        let p = write(dir.path(), "cut.pcap", &full[..cut]);
        let mut src = FileSource::open(&p).unwrap();
        let mut sink = Collect(Vec::new());
        let err = src.run(&mut sink, |_| {}).unwrap_err();
        assert_eq!(sink.0.len(), 7);
        let msg = err.to_string();
        assert!(msg.contains("7 complete records"), "{msg}");
        assert!(msg.contains(&format!("at byte {}", 24 + 7 * 76)), "{msg}");
    }

    #[test]
    fn not_a_capture_and_unsupported_link_types_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "notes.txt", b"shopping list: milk, eggs\n");
        let msg = FileSource::open(&p).err().unwrap().to_string();
        assert!(msg.contains("is not a pcap or pcapng capture"), "{msg}");
        let p = write(dir.path(), "wifi.pcap", &pcap_bytes(1, 127));
        let msg = FileSource::open(&p).err().unwrap().to_string();
        assert!(msg.contains("needs Ethernet or Linux cooked"), "{msg}");
        let msg = FileSource::open(&dir.path().join("missing.pcap"))
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("cannot read"), "{msg}");
    }
}
