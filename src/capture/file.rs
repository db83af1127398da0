//! Capture files (pcap and pcapng) as a packet source: the `replay` path.
//!
//! It reads records through libpcap, decodes them with the same decoder as live capture and
//! hands batches to a [`FrameSink`]. It owns the errors a file can have (not a capture, a link
//! type accounting cannot use, a truncated tail) and must never touch the database itself.

use super::decode::{Frame, LinkType, decode};
use super::{BATCH, FrameSink};
use pcap::{Capture, Offline, Precision};
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
    cap: Capture<Offline>,
    link: LinkType,
    /// Classic pcap: where records start, to say at which byte a truncated file ends.
    classic_pcap: bool,
}

impl FileSource {
    pub fn open(path: &Path) -> Result<FileSource, FileError> {
        // Open it ourselves first: libpcap's messages for missing files are less helpful, and the
        // magic number tells whether byte offsets can be given for a truncated file.
        let mut magic = [0u8; 4];
        let mut f = std::fs::File::open(path).map_err(|source| FileError::Open {
            path: path.to_owned(),
            source,
        })?;
        let n = f.read(&mut magic).map_err(|source| FileError::Open {
            path: path.to_owned(),
            source,
        })?;
        let classic_pcap = n == 4
            && matches!(
                u32::from_le_bytes(magic),
                0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1
            );
        let cap = Capture::from_file_with_precision(path, Precision::Nano).map_err(|e| {
            FileError::NotACapture {
                path: path.to_owned(),
                detail: pcap_detail(&e),
            }
        })?;
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| FileError::UnsupportedLink {
            path: path.to_owned(),
            name: dlt.get_name().unwrap_or_else(|_| "unknown".into()),
            dlt: dlt.0,
        })?;
        Ok(FileSource {
            path: path.to_owned(),
            cap,
            link,
            classic_pcap,
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
        let link = self.link;
        let mut stats = ReadStats::default();
        let mut batch: Vec<Frame> = Vec::with_capacity(BATCH);
        // Byte offset of the next record in a classic pcap file (24-byte file header).
        let mut offset: u64 = 24;
        let end = loop {
            let packet = match self.cap.next_packet() {
                Ok(p) => p,
                Err(pcap::Error::NoMorePackets) => break None,
                Err(e) => break Some(e),
            };
            let h = packet.header;
            // time_t and suseconds_t are i64 on the 64-bit targets we ship but not on every libc.
            #[allow(clippy::unnecessary_cast)]
            let ts = (h.ts.tv_sec as i64)
                .saturating_mul(1_000_000_000)
                .saturating_add(h.ts.tv_usec as i64);
            stats.records += 1;
            stats.wire_bytes += h.len as u64;
            offset += 16 + h.caplen as u64;
            raw(link, ts, packet.data);
            match decode(link, ts, packet.data, h.len) {
                Some(f) => batch.push(f),
                None => stats.undecodable += 1,
            }
            if batch.len() == BATCH {
                sink.ingest(&batch);
                batch.clear();
                after_batch(sink);
            }
        };
        if !batch.is_empty() {
            sink.ingest(&batch);
            after_batch(sink);
        }
        match end {
            None => Ok(stats),
            Some(e) => Err(FileError::Truncated {
                path: self.path.clone(),
                records: stats.records,
                at: if self.classic_pcap {
                    format!("at byte {offset}")
                } else {
                    "inside a pcapng block".to_string()
                },
                detail: pcap_detail(&e),
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
        assert_eq!(batches, 2);
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
