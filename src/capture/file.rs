//! Capture files (pcap and pcapng, optionally gzip-compressed) as a packet source: the `replay`
//! path.
//!
//! It opens a path, `-` for standard input, or any non-seekable input (a FIFO, a process
//! substitution), sniffs the format from the stream itself (never opening the path twice), reads
//! records with our own readers ([`super::pcapfile`], [`super::pcapng`]), decodes them with the
//! same decoder as live capture and hands batches to a [`FrameSink`]. Every record carries its
//! interface's link type, so a pcapng file mixing Ethernet with Wi-Fi or cooked interfaces is
//! read record by record; records of link types accounting cannot use are skipped and counted.
//! It owns the errors a file can have (not a capture, no usable link type, a damaged record, a
//! cut-off tail) and must never touch the database itself.

use super::decode::{Frame, LinkType, decode_into};
use super::ieee80211::{self, WifiFrame, WifiLink};
use super::pcapfile::{ClassicReader, Stop, read_prefix};
use super::pcapng::{self, PcapngReader};
use super::{BATCH, FrameSink, WifiSink};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}: check the path and that this user may read it")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a pcap or pcapng capture ({detail}): give a file written by tcpdump, tshark, dumpcap or `lanmeter generate` (gzip-compressed is fine)"
    )]
    NotACapture { path: PathBuf, detail: String },
    #[error(
        "{path} holds no packets ({detail}): there is nothing to count (was the capture stopped before anything was heard?)"
    )]
    Empty { path: PathBuf, detail: String },
    #[error(
        "{path} has link type {name} ({dlt}): byte accounting needs Ethernet or Linux cooked (SLL/SLL2) framing; capture on the wired interface or on `any` instead{hint}"
    )]
    UnsupportedLink {
        path: PathBuf,
        name: String,
        dlt: i32,
        /// Points Wi-Fi captures at the survey.
        hint: &'static str,
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
        "{path}: none of its {records} records carries a readable Ethernet or Linux cooked header, so no device can be counted ({detail})"
    )]
    NoAddresses {
        path: PathBuf,
        records: u64,
        detail: String,
    },
    #[error(
        "{path} ends early: {records} complete records were counted, then the file stopped {at} ({detail}); the totals cover those records only, the capture was probably cut off while being written"
    )]
    Truncated {
        path: PathBuf,
        records: u64,
        at: String,
        detail: String,
    },
    #[error(
        "{path} is damaged {at}: {detail}; the {records} records before it were counted, nothing after it was read (no capture tool writes this: the file was corrupted after it was written)"
    )]
    Corrupt {
        path: PathBuf,
        records: u64,
        at: String,
        detail: String,
    },
}

impl FileError {
    /// The records counted before a read that stopped part-way (cut off or damaged), or `None`
    /// for an error that stopped it before any record was counted.
    pub fn partial_records(&self) -> Option<u64> {
        match self {
            FileError::Truncated { records, .. } | FileError::Corrupt { records, .. } => {
                Some(*records)
            }
            _ => None,
        }
    }
}

/// What a read of a whole file saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Records read from the file.
    pub records: u64,
    /// Records whose link-layer header was unreadable (not attributable to any MAC).
    pub undecodable: u64,
    /// Records of interfaces whose link type this read cannot use, per link type.
    pub skipped_links: BTreeMap<u32, u64>,
    /// Wire bytes of all records read.
    pub wire_bytes: u64,
}

impl ReadStats {
    /// "12 of link type IEEE802_11_RADIO (127), 3 of …" for the summary line.
    pub fn skipped_summary(&self) -> String {
        self.skipped_links
            .iter()
            .map(|(dlt, n)| format!("{n} of link type {} ({dlt})", link_name(*dlt as i32)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The two formats, read from one stream.
enum Reader {
    Classic(ClassicReader),
    Pcapng(PcapngReader),
}

/// What the next read produced, whichever reader did it.
enum Next<'a> {
    Record {
        ts: i64,
        wire_len: u32,
        linktype: u32,
        data: &'a [u8],
    },
    End,
    Stopped {
        at: String,
        stop: Stop,
    },
}

impl Reader {
    #[inline]
    fn next(&mut self) -> Next<'_> {
        let at = match self {
            Reader::Classic(r) => r.offset(),
            Reader::Pcapng(r) => r.offset(),
        };
        let rec = match self {
            Reader::Classic(r) => r.next_record(),
            Reader::Pcapng(r) => r.next_record(),
        };
        match rec {
            Ok(Some(rec)) => Next::Record {
                ts: rec.ts_ns,
                wire_len: rec.wire_len,
                linktype: rec.linktype,
                data: rec.data,
            },
            Ok(None) => Next::End,
            Err(stop) => Next::Stopped {
                at: format!("at byte {at}"),
                stop,
            },
        }
    }

    /// The link type a reader knows before its first record (classic: the file header; pcapng:
    /// the first interface description), if any.
    fn first_linktype(&self) -> Option<u32> {
        match self {
            Reader::Classic(r) => Some(r.linktype),
            Reader::Pcapng(r) => r.first_linktype(),
        }
    }
}

/// The raw bytes of `path`, `-` meaning standard input. A FIFO, `/dev/stdin` or a process
/// substitution opens like a file and is read once, front to back.
pub fn open_input(path: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    if path.as_os_str() == "-" {
        Ok(Box::new(std::io::stdin()))
    } else {
        Ok(Box::new(std::fs::File::open(path)?))
    }
}

/// Whether `path` can be read twice (a regular file); standard input, FIFOs and process
/// substitutions cannot.
pub fn is_rereadable(path: &Path) -> bool {
    path.as_os_str() != "-" && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// The stream with gzip undone (detected by its magic, not the file name) and the format sniffed
/// from its first bytes, which are then handed back in front of the rest.
fn open_reader(path: &Path) -> Result<Reader, FileError> {
    let open_err = |source| FileError::Open {
        path: path.to_owned(),
        source,
    };
    let mut raw = open_input(path).map_err(open_err)?;
    let head = read_prefix(&mut raw, 4).map_err(open_err)?;
    let mut stream: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head.clone()).chain(raw));
    let mut head = head;
    let mut gzip = false;
    if head.starts_with(&[0x1f, 0x8b]) {
        gzip = true;
        let mut unzipped: Box<dyn Read + Send> =
            Box::new(flate2::read::MultiGzDecoder::new(stream));
        head = read_prefix(&mut unzipped, 4).map_err(|e| FileError::NotACapture {
            path: path.to_owned(),
            detail: format!("gzip-compressed, but it does not decompress: {e}"),
        })?;
        stream = Box::new(std::io::Cursor::new(head.clone()).chain(unzipped));
    }
    let not_a_capture = |detail: String| FileError::NotACapture {
        path: path.to_owned(),
        detail,
    };
    let magic = match <[u8; 4]>::try_from(&head[..]) {
        Ok(m) => u32::from_le_bytes(m),
        Err(_) => {
            return Err(not_a_capture(format!(
                "{} holds only {} bytes",
                if gzip {
                    "its decompressed content"
                } else {
                    "it"
                },
                head.len()
            )));
        }
    };
    if magic == pcapng::SHB {
        return match PcapngReader::from_reader(stream) {
            Ok(Some(mut r)) => {
                match r.prime() {
                    Ok(()) => {}
                    Err(Stop::Io(e)) => return Err(open_err(std::io::Error::other(e))),
                    // A damaged or cut-off first block: reading records reports it with its place.
                    Err(_) => {}
                }
                Ok(Reader::Pcapng(r))
            }
            Ok(None) => Err(not_a_capture("no pcapng section header".into())),
            Err(e) => Err(open_err(std::io::Error::other(format!("{e:?}")))),
        };
    }
    match ClassicReader::from_reader(stream).map_err(open_err)? {
        Some(r) => Ok(Reader::Classic(r)),
        None => Err(not_a_capture(format!(
            "it starts with the bytes {:02x} {:02x} {:02x} {:02x}{}, which is neither pcap's nor pcapng's magic number",
            head[0],
            head[1],
            head[2],
            head[3],
            if gzip { " once decompressed" } else { "" }
        ))),
    }
}

pub fn link_name(dlt: i32) -> String {
    pcap::Linktype(dlt)
        .get_name()
        .unwrap_or_else(|_| "unknown".into())
}

/// Link types that hold 802.11 frames: `lanmeter replay --survey` reads them.
fn is_wifi(dlt: u32) -> bool {
    WifiLink::from_dlt(dlt as i32).is_some()
}

fn unsupported(path: &Path, dlt: u32) -> FileError {
    FileError::UnsupportedLink {
        path: path.to_owned(),
        name: link_name(dlt as i32),
        dlt: dlt as i32,
        hint: if is_wifi(dlt) {
            "; for a Wi-Fi capture use `lanmeter replay --survey FILE`"
        } else {
            ""
        },
    }
}

/// Turns where a read stopped into the error that says why, or the end of a whole read into
/// the error for a file with nothing usable in it.
fn finish(
    path: &Path,
    reader: &Reader,
    stats: &ReadStats,
    decoded: u64,
    stopped: Option<(String, Stop)>,
) -> Result<(), FileError> {
    match stopped {
        Some((at, Stop::Truncated { detail })) => Err(FileError::Truncated {
            path: path.to_owned(),
            records: stats.records,
            at,
            detail,
        }),
        Some((at, Stop::Invalid { detail })) => Err(FileError::Corrupt {
            path: path.to_owned(),
            records: stats.records,
            at,
            detail,
        }),
        Some((at, Stop::Io(detail))) => Err(FileError::Truncated {
            path: path.to_owned(),
            records: stats.records,
            at,
            detail: format!("read error: {detail}"),
        }),
        None if stats.records == 0 => Err(FileError::Empty {
            path: path.to_owned(),
            detail: match reader {
                Reader::Pcapng(r) => format!(
                    "pcapng with {} section header(s), {} interface description(s) and no packet",
                    r.sections, r.interfaces
                ),
                Reader::Classic(_) => "a pcap file header and no packet".to_string(),
            },
        }),
        None if decoded == 0 => {
            // Every record was of one unusable link type: the open-time message fits best.
            if stats.undecodable == 0 && stats.skipped_links.len() == 1 {
                let dlt = *stats.skipped_links.keys().next().unwrap_or(&0);
                return Err(unsupported(path, dlt));
            }
            let mut detail = Vec::new();
            if stats.undecodable > 0 {
                detail.push(format!(
                    "{} too short or malformed to name a source address",
                    stats.undecodable
                ));
            }
            if !stats.skipped_links.is_empty() {
                detail.push(format!("skipped: {}", stats.skipped_summary()));
            }
            Err(FileError::NoAddresses {
                path: path.to_owned(),
                records: stats.records,
                detail: detail.join("; "),
            })
        }
        None => Ok(()),
    }
}

/// One record: capture time in ns, wire length, captured bytes.
pub(super) type Record<'a> = (i64, u32, &'a [u8]);

/// An opened capture file.
pub struct FileSource {
    path: PathBuf,
    reader: Reader,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<FileSource, FileError> {
        let reader = open_reader(path)?;
        // A classic file (or a pcapng whose first interface is) of an unusable link type is
        // refused at once; a pcapng mixing interfaces is read and its usable records counted.
        if let Some(dlt) = reader.first_linktype() {
            let all_one_link = matches!(reader, Reader::Classic(_));
            if all_one_link && LinkType::from_dlt(dlt as i32).is_none() {
                return Err(unsupported(path, dlt));
            }
        }
        Ok(FileSource {
            path: path.to_owned(),
            reader,
        })
    }

    /// The link type of the file's first interface (Ethernet when it has none yet).
    pub fn link(&self) -> LinkType {
        self.reader
            .first_linktype()
            .and_then(|d| LinkType::from_dlt(d as i32))
            .unwrap_or(LinkType::Ethernet)
    }

    /// The next record as (capture time in ns, wire length, captured bytes), for the shared
    /// capture loop (`source::FileFeed`); `Ok(None)` at the end, the reason as text where reading
    /// stopped early. A record of another link type than `link` (a pcapng mixing interfaces)
    /// comes without its bytes: the loop counts it as seen but not attributable, where replay
    /// lists it as skipped.
    pub(super) fn next_record(&mut self, link: LinkType) -> Result<Option<Record<'_>>, String> {
        match self.reader.next() {
            Next::Record {
                ts,
                wire_len,
                linktype,
                data,
            } => {
                let data: &[u8] = if LinkType::from_dlt(linktype as i32) == Some(link) {
                    data
                } else {
                    &[]
                };
                Ok(Some((ts, wire_len, data)))
            }
            Next::End => Ok(None),
            Next::Stopped { at, stop } => Err(format!("{at}: {stop:?}")),
        }
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
        let mut decoded = 0u64;
        // The last record's link type and what it maps to: one compare per record.
        let mut last_dlt = u32::MAX;
        let mut link = None;
        let stopped = loop {
            match self.reader.next() {
                Next::Record {
                    ts,
                    wire_len,
                    linktype,
                    data,
                } => {
                    stats.records += 1;
                    stats.wire_bytes += u64::from(wire_len);
                    if linktype != last_dlt {
                        last_dlt = linktype;
                        link = LinkType::from_dlt(linktype as i32);
                    }
                    let Some(link) = link else {
                        *stats.skipped_links.entry(linktype).or_default() += 1;
                        continue;
                    };
                    raw(link, ts, data);
                    if decode_into(link, ts, data, wire_len, &mut batch[n]) {
                        n += 1;
                        decoded += 1;
                    } else {
                        stats.undecodable += 1;
                    }
                }
                Next::End => break None,
                Next::Stopped { at, stop } => break Some((at, stop)),
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
        finish(&self.path, &self.reader, &stats, decoded, stopped).map(|()| stats)
    }
}

/// An opened 802.11 capture file (radiotap or bare 802.11): the `replay --survey` path.
pub struct WifiFileSource {
    path: PathBuf,
    reader: Reader,
}

impl WifiFileSource {
    pub fn open(path: &Path) -> Result<WifiFileSource, FileError> {
        let reader = open_reader(path)?;
        if let Some(dlt) = reader.first_linktype() {
            if matches!(reader, Reader::Classic(_)) && !is_wifi(dlt) {
                return Err(FileError::NotWifi {
                    path: path.to_owned(),
                    name: link_name(dlt as i32),
                    dlt: dlt as i32,
                });
            }
        }
        Ok(WifiFileSource {
            path: path.to_owned(),
            reader,
        })
    }

    /// Reads every record into `sink`, a batch at a time, like [`FileSource::run`]; records of
    /// non-802.11 interfaces (in a mixed pcapng) are skipped and counted. A truncated tail stops
    /// the read with everything before it delivered.
    pub fn run<S: WifiSink + ?Sized>(&mut self, sink: &mut S) -> Result<ReadStats, FileError> {
        let mut stats = ReadStats::default();
        let mut batch = vec![WifiFrame::EMPTY; BATCH];
        let mut n = 0;
        let mut wifi_records = 0u64;
        let mut last_dlt = u32::MAX;
        let mut link = None;
        let stopped = loop {
            match self.reader.next() {
                Next::Record {
                    ts,
                    wire_len,
                    linktype,
                    data,
                } => {
                    stats.records += 1;
                    stats.wire_bytes += u64::from(wire_len);
                    if linktype != last_dlt {
                        last_dlt = linktype;
                        link = WifiLink::from_dlt(linktype as i32);
                    }
                    let Some(link) = link else {
                        *stats.skipped_links.entry(linktype).or_default() += 1;
                        continue;
                    };
                    wifi_records += 1;
                    if ieee80211::decode_into(link, ts, data, wire_len, &mut batch[n]) {
                        n += 1;
                    } else {
                        stats.undecodable += 1;
                    }
                }
                Next::End => break None,
                Next::Stopped { at, stop } => break Some((at, stop)),
            }
            if n == BATCH {
                sink.ingest(&batch);
                n = 0;
            }
        };
        if n > 0 {
            sink.ingest(&batch[..n]);
        }
        if stopped.is_none() && wifi_records == 0 && stats.records > 0 {
            let dlt = *stats.skipped_links.keys().next().unwrap_or(&0);
            return Err(FileError::NotWifi {
                path: self.path.clone(),
                name: link_name(dlt as i32),
                dlt: dlt as i32,
            });
        }
        // A file of only unusable records is the survey's NotWifi above, not NoAddresses.
        finish(&self.path, &self.reader, &stats, 1, stopped).map(|()| stats)
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
        assert!(msg.contains("73 68 6f 70"), "{msg}");
        let p = write(dir.path(), "wifi.pcap", &pcap_bytes(1, 127));
        let msg = FileSource::open(&p).err().unwrap().to_string();
        assert!(msg.contains("needs Ethernet or Linux cooked"), "{msg}");
        assert!(msg.contains("lanmeter replay --survey"), "{msg}");
        let msg = FileSource::open(&dir.path().join("missing.pcap"))
            .err()
            .unwrap()
            .to_string();
        assert!(msg.contains("cannot read"), "{msg}");
    }
}
