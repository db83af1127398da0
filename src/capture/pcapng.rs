//! A streaming reader for pcapng, the format dumpcap, Wireshark and `editcap`/`mergecap` write.
//!
//! It owns the pcapng block layer: any number of sections (each with its own byte order), any
//! number of interfaces per section, each with its own link type, snap length, timestamp
//! resolution (`if_tsresol`) and offset (`if_tsoffset`); packets from Enhanced, Simple and the
//! obsolete Packet blocks; every other block (name resolution, statistics, custom, unknown) is
//! skipped. Like the classic reader it reads the stream front to back once through
//! [`ByteStream`], so a pipe or a gzip stream works as well as a file, and it never decodes a
//! frame: each record carries its interface's link type and the caller decides what to do with it.
//!
//! libpcap 1.10 refuses files whose interfaces differ in link type or snap length, and reports
//! the refusal as a cut-off file; this reader is why replay no longer goes through it.

use super::pcapfile::{ByteStream, Record, Stop};
use std::io::Read;

/// The section header block's type, the same in both byte orders.
pub const SHB: u32 = 0x0a0d_0d0a;
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
/// libpcap's limit on one block (its MAX_BLOCKSIZE): larger is a damaged length field.
const MAX_BLOCK: u32 = 16 * 1024 * 1024;

/// One interface of the current section.
#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: u32,
    /// 0 means "no limit".
    snaplen: u32,
    /// `if_tsresol`: the top bit chooses powers of two, else powers of ten.
    tsresol: u8,
    /// `if_tsoffset` in nanoseconds.
    offset_ns: i64,
}

pub struct PcapngReader {
    stream: ByteStream,
    big_endian: bool,
    ifaces: Vec<Iface>,
    /// Simple packet blocks carry no time: they take the last one seen.
    last_ts: i64,
    /// Sections and interfaces seen so far (for messages about empty files).
    pub sections: u32,
    pub interfaces: u32,
}

impl PcapngReader {
    /// A reader positioned at the first section header; `Ok(None)` when the stream does not start
    /// with one.
    pub fn from_reader(file: impl Read + Send + 'static) -> Result<Option<PcapngReader>, Stop> {
        let mut r = PcapngReader {
            stream: ByteStream::new(Box::new(file), 0),
            big_endian: false,
            ifaces: Vec::new(),
            last_ts: 0,
            sections: 0,
            interfaces: 0,
        };
        if !r.stream.fill(4)? || r.u32_raw_le(0) != SHB {
            return Ok(None);
        }
        Ok(Some(r))
    }

    /// Stream offset of the next block.
    pub fn offset(&self) -> u64 {
        self.stream.offset()
    }

    /// Link type of the first interface, once one has been read (after [`Self::prime`]).
    pub fn first_linktype(&self) -> Option<u32> {
        self.ifaces.first().map(|i| i.linktype)
    }

    /// Reads blocks up to the first interface description (or the first packet, or the end), so
    /// the caller learns the file's first link type before it reads records.
    pub fn prime(&mut self) -> Result<(), Stop> {
        while self.ifaces.is_empty() {
            if !self.stream.fill(8)? {
                return Ok(());
            }
            let ty = self.block_type();
            if ty != SHB && ty != IDB {
                return Ok(());
            }
            if self.step()?.is_none() && self.stream.available() == 0 {
                return Ok(());
            }
        }
        Ok(())
    }

    fn u32_raw_le(&self, at: usize) -> u32 {
        let b = &self.stream.buf[self.stream.pos + at..self.stream.pos + at + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    #[inline]
    fn u32_at(&self, at: usize) -> u32 {
        let v = self.u32_raw_le(at);
        if self.big_endian { v.swap_bytes() } else { v }
    }

    #[inline]
    fn u16_at(&self, at: usize) -> u16 {
        let b = &self.stream.buf[self.stream.pos + at..self.stream.pos + at + 2];
        let v = u16::from_le_bytes([b[0], b[1]]);
        if self.big_endian { v.swap_bytes() } else { v }
    }

    fn block_type(&self) -> u32 {
        let v = self.u32_raw_le(0);
        // The section header's type reads the same in both orders.
        if v == SHB || !self.big_endian {
            v
        } else {
            v.swap_bytes()
        }
    }

    /// The next packet record, `Ok(None)` at a clean end of the stream.
    #[inline]
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, Stop> {
        loop {
            match self.step()? {
                Some(Packet {
                    start,
                    caplen,
                    wire_len,
                    linktype,
                    ts_ns,
                }) => {
                    return Ok(Some(Record {
                        ts_ns,
                        wire_len,
                        linktype,
                        data: &self.stream.buf[start..start + caplen],
                    }));
                }
                None if self.stream.available() == 0 => return Ok(None),
                None => {}
            }
        }
    }

    /// Reads one block. A packet block gives its record's place in the buffer; every other
    /// block gives `None` (at the end of the stream too, with nothing left available).
    fn step(&mut self) -> Result<Option<Packet>, Stop> {
        let at = self.stream.offset();
        if !self.stream.fill(12)? {
            return match self.stream.available() {
                0 => Ok(None),
                k => Err(Stop::Truncated {
                    detail: format!(
                        "tried to read a 12-byte block header at byte {at}, only got {k}"
                    ),
                }),
            };
        }
        if self.u32_raw_le(0) == SHB {
            let magic = self.u32_raw_le(8);
            self.big_endian = match magic {
                BYTE_ORDER_MAGIC => false,
                m if m == BYTE_ORDER_MAGIC.swap_bytes() => true,
                m => {
                    return Err(Stop::Invalid {
                        detail: format!(
                            "section header at byte {at} has byte-order magic {m:#010x}, not 0x1a2b3c4d"
                        ),
                    });
                }
            };
            self.ifaces.clear();
            self.sections += 1;
        }
        let ty = self.block_type();
        let len = self.u32_at(4);
        if len < 12 || len % 4 != 0 || len > MAX_BLOCK {
            return Err(Stop::Invalid {
                detail: format!(
                    "block of type {ty:#x} at byte {at} claims a length of {len} bytes"
                ),
            });
        }
        let len = len as usize;
        if !self.stream.fill(len)? {
            return Err(Stop::Truncated {
                detail: format!(
                    "block of type {ty:#x} at byte {at} is {len} bytes, only {} are there",
                    self.stream.available()
                ),
            });
        }
        if self.u32_at(len - 4) != len as u32 {
            return Err(Stop::Invalid {
                detail: format!(
                    "block of type {ty:#x} at byte {at}: its trailing length {} differs from its leading length {len}",
                    self.u32_at(len - 4)
                ),
            });
        }
        let body = len - 12;
        let out = match ty {
            IDB => {
                if body < 8 {
                    return Err(invalid(ty, at, "is too short for an interface description"));
                }
                let mut iface = Iface {
                    linktype: u32::from(self.u16_at(8)),
                    snaplen: self.u32_at(12),
                    tsresol: 6,
                    offset_ns: 0,
                };
                self.read_iface_options(16, 8 + body, &mut iface);
                self.ifaces.push(iface);
                self.interfaces += 1;
                None
            }
            EPB | PB => {
                if body < 20 {
                    return Err(invalid(ty, at, "is too short for a packet block"));
                }
                let (iface_id, wire_len) = if ty == EPB {
                    (self.u32_at(8), self.u32_at(24))
                } else {
                    (u32::from(self.u16_at(8)), self.u32_at(24))
                };
                let caplen = self.u32_at(20) as usize;
                if caplen > body - 20 {
                    return Err(invalid(
                        ty,
                        at,
                        &format!("claims {caplen} captured bytes in a {len}-byte block"),
                    ));
                }
                let iface = self.iface(iface_id, ty, at)?;
                let ticks = (u64::from(self.u32_at(12)) << 32) | u64::from(self.u32_at(16));
                let ts_ns = to_ns(ticks, iface.tsresol).saturating_add(iface.offset_ns);
                self.last_ts = ts_ns;
                Some(Packet {
                    start: self.stream.pos + 28,
                    caplen: kept(caplen, iface.snaplen),
                    wire_len,
                    linktype: iface.linktype,
                    ts_ns,
                })
            }
            SPB => {
                if body < 4 {
                    return Err(invalid(ty, at, "is too short for a simple packet block"));
                }
                let iface = self.iface(0, ty, at)?;
                let wire_len = self.u32_at(8);
                // The captured length is implied: the original length cut to the snap length
                // and to what the block holds.
                let mut caplen = (body - 4).min(wire_len as usize);
                caplen = kept(caplen, iface.snaplen);
                Some(Packet {
                    start: self.stream.pos + 12,
                    caplen,
                    wire_len,
                    linktype: iface.linktype,
                    ts_ns: self.last_ts,
                })
            }
            _ => None,
        };
        self.stream.pos += len;
        Ok(out)
    }

    fn iface(&self, id: u32, ty: u32, at: u64) -> Result<Iface, Stop> {
        self.ifaces.get(id as usize).copied().ok_or_else(|| {
            invalid(
                ty,
                at,
                &format!(
                    "names interface {id}, but its section describes {} interface(s)",
                    self.ifaces.len()
                ),
            )
        })
    }

    /// Reads `if_tsresol` and `if_tsoffset` from the options between `from` and `to` (offsets
    /// in the block); a malformed option list ends the reading, keeping the defaults.
    fn read_iface_options(&self, mut from: usize, to: usize, iface: &mut Iface) {
        while from + 4 <= to {
            let code = self.u16_at(from);
            let olen = self.u16_at(from + 2) as usize;
            let value = from + 4;
            if code == 0 || value + olen > to {
                return;
            }
            match (code, olen) {
                (9, 1) => iface.tsresol = self.stream.buf[self.stream.pos + value],
                (14, 8) => {
                    let hi = u64::from(self.u32_at(value));
                    let lo = u64::from(self.u32_at(value + 4));
                    // The option is one 64-bit integer in the section's byte order.
                    let secs = if self.big_endian {
                        (hi << 32) | lo
                    } else {
                        (lo << 32) | hi
                    } as i64;
                    iface.offset_ns = secs.saturating_mul(1_000_000_000);
                }
                _ => {}
            }
            from = value + olen.div_ceil(4) * 4;
        }
    }
}

struct Packet {
    start: usize,
    caplen: usize,
    wire_len: u32,
    linktype: u32,
    ts_ns: i64,
}

fn invalid(ty: u32, at: u64, what: &str) -> Stop {
    Stop::Invalid {
        detail: format!("block of type {ty:#x} at byte {at} {what}"),
    }
}

/// Like libpcap, a record longer than its interface's snap length is cut to it.
fn kept(caplen: usize, snaplen: u32) -> usize {
    if snaplen == 0 {
        caplen
    } else {
        caplen.min(snaplen as usize)
    }
}

/// Timestamp ticks in an interface's resolution to nanoseconds.
fn to_ns(ticks: u64, tsresol: u8) -> i64 {
    let exp = u32::from(tsresol & 0x7f);
    let ns: u128 = if tsresol & 0x80 != 0 {
        (u128::from(ticks) * 1_000_000_000) >> exp.min(127)
    } else if exp <= 9 {
        u128::from(ticks) * 10u128.pow(9 - exp)
    } else {
        u128::from(ticks) / 10u128.pow((exp - 9).min(38))
    };
    i64::try_from(ns).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes pcapng blocks in either byte order (the real-tool tests are in tests/it/corpus.rs;
    /// these pin the block rules one at a time).
    struct W {
        be: bool,
        b: Vec<u8>,
    }

    impl W {
        fn u32(&self, v: u32) -> [u8; 4] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn u16(&self, v: u16) -> [u8; 2] {
            if self.be {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        }
        fn block(&mut self, ty: u32, body: &[u8]) {
            let mut body = body.to_vec();
            while body.len() % 4 != 0 {
                body.push(0);
            }
            let len = body.len() as u32 + 12;
            let ty = if ty == SHB {
                SHB.to_le_bytes()
            } else {
                self.u32(ty)
            };
            self.b.extend_from_slice(&ty);
            self.b.extend_from_slice(&self.u32(len));
            self.b.extend_from_slice(&body);
            self.b.extend_from_slice(&self.u32(len));
        }
        fn shb(&mut self) {
            let mut body = self.u32(BYTE_ORDER_MAGIC).to_vec();
            body.extend_from_slice(&self.u16(1));
            body.extend_from_slice(&self.u16(0));
            body.extend_from_slice(&[0xff; 8]);
            self.block(SHB, &body);
        }
        fn idb(&mut self, linktype: u16, snaplen: u32, tsresol: Option<u8>, offset: Option<i64>) {
            let mut body = self.u16(linktype).to_vec();
            body.extend_from_slice(&[0, 0]);
            body.extend_from_slice(&self.u32(snaplen));
            if let Some(r) = tsresol {
                body.extend_from_slice(&self.u16(9));
                body.extend_from_slice(&self.u16(1));
                body.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = offset {
                body.extend_from_slice(&self.u16(14));
                body.extend_from_slice(&self.u16(8));
                let v = if self.be {
                    o.to_be_bytes()
                } else {
                    o.to_le_bytes()
                };
                body.extend_from_slice(&v);
            }
            body.extend_from_slice(&[0, 0, 0, 0]);
            self.block(IDB, &body);
        }
        fn epb(&mut self, iface: u32, ticks: u64, data: &[u8], wire: u32) {
            let mut body = self.u32(iface).to_vec();
            body.extend_from_slice(&self.u32((ticks >> 32) as u32));
            body.extend_from_slice(&self.u32(ticks as u32));
            body.extend_from_slice(&self.u32(data.len() as u32));
            body.extend_from_slice(&self.u32(wire));
            body.extend_from_slice(data);
            self.block(EPB, &body);
        }
    }

    /// Time, wire length, link type and bytes of one record.
    type Rec = (i64, u32, u32, Vec<u8>);

    fn all(bytes: Vec<u8>) -> (Vec<Rec>, Result<(), Stop>) {
        let mut r = PcapngReader::from_reader(std::io::Cursor::new(bytes))
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        loop {
            match r.next_record() {
                Ok(Some(rec)) => {
                    out.push((rec.ts_ns, rec.wire_len, rec.linktype, rec.data.to_vec()))
                }
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    #[test]
    fn sections_interfaces_resolutions_and_byte_orders() {
        for be in [false, true] {
            let mut w = W { be, b: Vec::new() };
            w.shb();
            w.idb(1, 65535, None, None);
            w.idb(113, 128, Some(9), Some(10));
            w.block(4, &[1, 2, 3, 4]); // a name resolution block: skipped
            w.epb(0, 1_500_000, &[1; 60], 1514);
            w.epb(1, 2_000_000_000, &[2; 200], 300);
            w.shb();
            w.idb(127, 0, Some(0x80 | 10), None);
            w.epb(0, 3 << 10, &[3; 10], 10);
            let (recs, end) = all(w.b);
            end.unwrap();
            assert_eq!(recs.len(), 3);
            assert_eq!(recs[0], (1_500_000_000, 1514, 1, vec![1; 60]));
            // nanosecond resolution plus a 10 s offset; cut to the 128-byte snap length
            assert_eq!(recs[1].0, 2_000_000_000 + 10_000_000_000);
            assert_eq!((recs[1].2, recs[1].3.len()), (113, 128));
            // 2^-10 s ticks
            assert_eq!((recs[2].0, recs[2].2), (3_000_000_000, 127));
        }
    }

    #[test]
    fn damage_and_truncation_say_where() {
        let mut w = W {
            be: false,
            b: Vec::new(),
        };
        w.shb();
        w.idb(1, 0, None, None);
        let good = w.b.len();
        w.epb(0, 1, &[0; 60], 60);
        let mut cut = w.b.clone();
        cut.truncate(good + 20);
        let (recs, end) = all(cut);
        assert!(recs.is_empty());
        assert!(matches!(end, Err(Stop::Truncated { .. })), "{end:?}");
        let mut bad = w.b.clone();
        bad[good + 4..good + 8].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
        let (_, end) = all(bad);
        match end {
            Err(Stop::Invalid { detail }) => {
                assert!(detail.contains(&format!("at byte {good}")), "{detail}")
            }
            other => panic!("{other:?}"),
        }
        let mut w2 = W {
            be: false,
            b: Vec::new(),
        };
        w2.shb();
        w2.epb(3, 1, &[0; 60], 60);
        let (_, end) = all(w2.b);
        assert!(matches!(end, Err(Stop::Invalid { .. })));
    }

    #[test]
    fn not_pcapng_and_an_empty_section() {
        assert!(
            PcapngReader::from_reader(&b"\xd4\xc3\xb2\xa1rest"[..])
                .unwrap()
                .is_none()
        );
        let mut w = W {
            be: false,
            b: Vec::new(),
        };
        w.shb();
        let mut r = PcapngReader::from_reader(std::io::Cursor::new(w.b))
            .unwrap()
            .unwrap();
        r.prime().unwrap();
        assert_eq!(r.first_linktype(), None);
        assert!(r.next_record().unwrap().is_none());
        assert_eq!((r.sections, r.interfaces), (1, 0));
    }

    #[test]
    fn resolutions() {
        assert_eq!(to_ns(5, 6), 5_000);
        assert_eq!(to_ns(5, 9), 5);
        assert_eq!(to_ns(5_000, 12), 5);
        assert_eq!(to_ns(1 << 20, 0x80 | 20), 1_000_000_000);
        assert_eq!(to_ns(u64::MAX, 0), i64::MAX);
    }
}
