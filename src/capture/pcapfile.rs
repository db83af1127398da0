//! A reader for classic pcap files (the format tcpdump writes), used by replay in place of
//! libpcap's per-record `fread` calls, which cost more than decoding and counting together.
//!
//! It owns the classic format only: the four magic numbers (micro/nanosecond, either byte
//! order), the link type field and 16-byte record headers, read from a large buffer with no copy
//! per record. It follows libpcap's rules for what a record may be, so replay counts exactly what
//! libpcap (and tshark) would. pcapng has its own reader (`pcapng.rs`), built on this
//! one's [`ByteStream`].

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// libpcap refuses records claiming more than this (its `max_snaplen_for_dlt` for Ethernet and
/// Linux cooked framing).
const MAX_CAPLEN: u32 = 262_144;
/// Read size: large enough that refills are rare, small enough to stay in cache-friendly sizes.
const CHUNK: usize = 1 << 20;

/// One record, borrowed from the reader's buffer until the next call.
pub struct Record<'a> {
    pub ts_ns: i64,
    pub wire_len: u32,
    /// The link type of the interface the record was captured on (the FCS bits masked off).
    pub linktype: u32,
    pub data: &'a [u8],
}

/// Why reading stopped before the end of the file.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The file ends inside a record header or its data.
    Truncated {
        detail: String,
    },
    /// A record or block header no writer produces: the file is damaged there.
    Invalid {
        detail: String,
    },
    Io(String),
}

/// A byte source read through one large buffer, records borrowed from it without a copy: the
/// part the classic and the pcapng reader share. The source may be a file, a pipe, standard
/// input or a gzip stream; it is read front to back exactly once.
pub struct ByteStream {
    /// A file in production; a byte slice under the fuzzer, which must not touch the disk.
    file: Box<dyn Read + Send>,
    pub(crate) buf: Vec<u8>,
    pub(crate) pos: usize,
    pub(crate) end: usize,
    eof: bool,
    /// Stream offset of `buf[0]`.
    base: u64,
}

impl ByteStream {
    /// `base` is the stream offset of the first byte `file` yields (the header bytes its caller
    /// has already consumed).
    pub fn new(file: Box<dyn Read + Send>, base: u64) -> ByteStream {
        ByteStream {
            file,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            base,
        }
    }

    /// Stream offset of `buf[pos]`.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes available at `pos`.
    pub fn available(&self) -> usize {
        self.end - self.pos
    }

    /// Makes at least `n` bytes available at `pos`; false at the end of the stream.
    pub fn fill(&mut self, n: usize) -> Result<bool, Stop> {
        if self.end - self.pos >= n {
            return Ok(true);
        }
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        if n > self.buf.len() {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n && !self.eof {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Stop::Io(e.to_string())),
            }
        }
        Ok(self.end - self.pos >= n)
    }
}

/// Reads up to `n` bytes (fewer only at the end of the stream), retrying short reads as pipes give.
pub fn read_prefix(file: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match file.read(&mut b[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    b.truncate(got);
    Ok(b)
}

pub struct ClassicReader {
    stream: ByteStream,
    swapped: bool,
    nanos: bool,
    snaplen: u32,
    /// The link type field with the FCS bits masked off.
    pub linktype: u32,
}

impl ClassicReader {
    /// Opens `path` if it is a classic pcap file; `Ok(None)` for anything else (pcapng, modified
    /// pcap, not a capture), which the caller hands to libpcap.
    pub fn open(path: &Path) -> std::io::Result<Option<ClassicReader>> {
        ClassicReader::from_reader(File::open(path)?)
    }

    /// [`ClassicReader::open`] on any byte source, positioned at the file header.
    pub fn from_reader(
        mut file: impl Read + Send + 'static,
    ) -> std::io::Result<Option<ClassicReader>> {
        let hdr = read_prefix(&mut file, 24)?;
        if hdr.len() < 24 {
            return Ok(None);
        }
        let magic = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let (swapped, nanos) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xd4c3_b2a1 => (true, false),
            0xa1b2_3c4d => (false, true),
            0x4d3c_b2a1 => (true, true),
            _ => return Ok(None),
        };
        let rd = |at: usize| {
            let v = u32::from_le_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
            if swapped { v.swap_bytes() } else { v }
        };
        let major = {
            let v = u16::from_le_bytes([hdr[4], hdr[5]]);
            if swapped { v.swap_bytes() } else { v }
        };
        // Version 2 is the format since 1998; anything older is libpcap's problem to explain.
        if major != 2 {
            return Ok(None);
        }
        // libpcap treats a zero or oversized snaplen as "the maximum".
        let snaplen = match rd(16) {
            0 => MAX_CAPLEN,
            s if s > MAX_CAPLEN => MAX_CAPLEN,
            s => s,
        };
        Ok(Some(ClassicReader {
            stream: ByteStream::new(Box::new(file), 24),
            swapped,
            nanos,
            snaplen,
            linktype: rd(20) & 0x03ff_ffff,
        }))
    }

    /// File offset of the next record.
    pub fn offset(&self) -> u64 {
        self.stream.offset()
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        let b = &self.stream.buf[at..at + 4];
        let v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if self.swapped { v.swap_bytes() } else { v }
    }

    /// The next record, `Ok(None)` at a clean end of file.
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, Stop> {
        if !self.stream.fill(16)? {
            return match self.stream.available() {
                0 => Ok(None),
                k => Err(Stop::Truncated {
                    detail: format!("tried to read 16 header bytes, only got {k}"),
                }),
            };
        }
        let p = self.stream.pos;
        let secs = self.u32_at(p) as i64;
        let frac = self.u32_at(p + 4) as i64;
        let caplen = self.u32_at(p + 8);
        let len = self.u32_at(p + 12);
        if caplen > MAX_CAPLEN {
            return Err(Stop::Invalid {
                detail: format!(
                    "invalid packet capture length {caplen}, bigger than maximum of {MAX_CAPLEN}"
                ),
            });
        }
        let stored = caplen as usize;
        if !self.stream.fill(16 + stored)? {
            return Err(Stop::Truncated {
                detail: format!(
                    "tried to read {stored} captured bytes, only got {}",
                    self.stream.available() - 16
                ),
            });
        }
        let start = self.stream.pos + 16;
        self.stream.pos = start + stored;
        // Like libpcap, a record longer than the file's snaplen is cut to it.
        let kept = stored.min(self.snaplen as usize);
        let ts_ns = secs * 1_000_000_000 + if self.nanos { frac } else { frac * 1000 };
        Ok(Some(Record {
            ts_ns,
            wire_len: len,
            linktype: self.linktype,
            data: &self.stream.buf[start..start + kept],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f
    }

    fn header(magic: u32, big_endian: bool, linktype: u32) -> Vec<u8> {
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut h = Vec::new();
        h.extend_from_slice(&w32(magic));
        h.extend_from_slice(&w16(2));
        h.extend_from_slice(&w16(4));
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&w32(65535));
        h.extend_from_slice(&w32(linktype));
        h
    }

    fn record(big_endian: bool, secs: u32, frac: u32, data: &[u8], len: u32) -> Vec<u8> {
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut r = Vec::new();
        r.extend_from_slice(&w32(secs));
        r.extend_from_slice(&w32(frac));
        r.extend_from_slice(&w32(data.len() as u32));
        r.extend_from_slice(&w32(len));
        r.extend_from_slice(data);
        r
    }

    #[test]
    fn all_four_magics_and_fcs_bits() {
        for (magic, be, nanos) in [
            (0xa1b2_c3d4u32, false, false),
            (0xa1b2_c3d4, true, false),
            (0xa1b2_3c4d, false, true),
            (0xa1b2_3c4d, true, true),
        ] {
            let mut b = header(magic, be, 1 | 0x1400_0000);
            b.extend(record(be, 10, 7, &[1, 2, 3], 1500));
            let f = file(&b);
            let mut r = ClassicReader::open(f.path()).unwrap().unwrap();
            assert_eq!(r.linktype, 1);
            let rec = r.next_record().unwrap().unwrap();
            assert_eq!(rec.wire_len, 1500);
            assert_eq!(rec.data, &[1, 2, 3]);
            assert_eq!(rec.ts_ns, 10_000_000_000 + if nanos { 7 } else { 7000 });
            assert!(r.next_record().unwrap().is_none());
        }
    }

    #[test]
    fn reads_from_memory_like_from_a_file() {
        let mut b = header(0xa1b2_c3d4, false, 1);
        b.extend(record(false, 3, 4, &[9; 60], 60));
        b.extend(record(false, 5, 6, &[8; 20], 1514));
        let mut r = ClassicReader::from_reader(std::io::Cursor::new(b))
            .unwrap()
            .unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().data, &[9; 60]);
        assert_eq!(r.next_record().unwrap().unwrap().wire_len, 1514);
        assert!(r.next_record().unwrap().is_none());
        assert!(ClassicReader::from_reader(&b"short"[..]).unwrap().is_none());
    }

    #[test]
    fn other_formats_are_not_classic() {
        let f = file(b"\x0a\x0d\x0d\x0a pcapng section header.....");
        assert!(ClassicReader::open(f.path()).unwrap().is_none());
        let f = file(b"short");
        assert!(ClassicReader::open(f.path()).unwrap().is_none());
    }

    #[test]
    fn truncation_and_bogus_lengths_stop_with_a_reason() {
        let mut b = header(0xa1b2_c3d4, false, 1);
        b.extend(record(false, 1, 0, &[0; 60], 60));
        let whole = b.len();
        b.extend(record(false, 2, 0, &[0; 60], 60));
        for cut in [whole + 5, whole + 20] {
            let f = file(&b[..cut]);
            let mut r = ClassicReader::open(f.path()).unwrap().unwrap();
            assert!(r.next_record().unwrap().is_some());
            assert_eq!(r.offset(), whole as u64);
            assert!(matches!(r.next_record(), Err(Stop::Truncated { .. })));
        }
        let mut b = header(0xa1b2_c3d4, false, 1);
        b.extend(record(false, 1, 0, &[], 60));
        b[24 + 8..24 + 12].copy_from_slice(&(MAX_CAPLEN + 1).to_le_bytes());
        let f = file(&b);
        let mut r = ClassicReader::open(f.path()).unwrap().unwrap();
        assert!(matches!(r.next_record(), Err(Stop::Invalid { .. })));
    }

    #[test]
    fn records_larger_than_the_buffer_and_across_refills() {
        let mut b = header(0xa1b2_c3d4, false, 1);
        let big = vec![7u8; 200_000];
        let mut n = 0;
        while b.len() < 3 * CHUNK {
            b.extend(record(false, n, 0, &[n as u8; 100], 100));
            n += 1;
        }
        b.extend(record(false, n, 0, &big, 200_000));
        let f = file(&b);
        let mut r = ClassicReader::open(f.path()).unwrap().unwrap();
        let mut seen = 0u32;
        while let Some(rec) = r.next_record().unwrap() {
            if seen < n {
                assert_eq!(rec.data, &[seen as u8; 100][..]);
            } else {
                assert_eq!(rec.data.len(), 65535, "cut to the file's snaplen");
            }
            seen += 1;
        }
        assert_eq!(seen, n + 1);
    }
}
