//! A minimal classic-pcap writer (microsecond magic, LINKTYPE_ETHERNET) over a large `BufWriter`.
//!
//! It owns the file format only: 24-byte global header, then a 16-byte record header and the
//! captured bytes per frame. It must never decide what a frame contains or how it is counted.

use super::GenError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Little-endian classic pcap, microsecond timestamps. Microseconds (rather than the nanosecond
/// magic) so that a reader opened with either precision sees exactly the timestamps we account.
const MAGIC_US: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;
/// Largest wire length the generator writes: a GRO/TSO super-frame cannot exceed 64 KiB.
pub(crate) const MAX_WIRE_LEN: u32 = 65_535;
/// The payload the generator never captures meaningfully is written as zeros from here.
static ZEROS: [u8; MAX_WIRE_LEN as usize] = [0; MAX_WIRE_LEN as usize];

pub(crate) struct PcapWriter {
    out: BufWriter<File>,
    snaplen: u32,
    path: PathBuf,
}

impl PcapWriter {
    pub(crate) fn create(path: &Path, snaplen: u32) -> Result<PcapWriter, GenError> {
        let file = File::create(path).map_err(|source| GenError::Create {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = PcapWriter {
            // 1 MiB: large enough that a write syscall carries thousands of records.
            out: BufWriter::with_capacity(1 << 20, file),
            snaplen,
            path: path.to_path_buf(),
        };
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_US.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay 0, as every modern writer does.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.put(&h)?;
        Ok(w)
    }

    #[inline]
    fn put(&mut self, b: &[u8]) -> Result<(), GenError> {
        self.out.write_all(b).map_err(|source| GenError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// Writes one record: `caplen = min(snaplen, wire_len)` bytes, taken from `head` and then
    /// zero-filled, like a headers-only capture of a frame whose payload we never look at.
    /// `ts_us` is microseconds since the epoch and must fit the format's u32 seconds.
    #[inline]
    pub(crate) fn record(
        &mut self,
        ts_us: i64,
        wire_len: u32,
        head: &[u8],
    ) -> Result<(), GenError> {
        debug_assert!(wire_len <= MAX_WIRE_LEN && ts_us >= 0);
        let caplen = self.snaplen.min(wire_len);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&caplen.to_le_bytes());
        h[12..16].copy_from_slice(&wire_len.to_le_bytes());
        self.put(&h)?;
        let from_head = head.len().min(caplen as usize);
        self.put(&head[..from_head])?;
        let zeros = caplen as usize - from_head;
        if zeros > 0 {
            self.put(&ZEROS[..zeros])?;
        }
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<(), GenError> {
        self.out.flush().map_err(|source| GenError::Write {
            path: self.path.clone(),
            source,
        })
    }
}
