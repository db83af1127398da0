//! The pure radiotap decoder: the per-frame radio header a monitor-mode interface puts in front
//! of every 802.11 frame (DLT 127), reduced to the few fields a Wi-Fi survey needs.
//!
//! It owns the radiotap layout rules: chained presence bitmaps (bit 31), namespace switches
//! (bit 29 back to radiotap, bit 30 into a vendor namespace whose data it skips by its declared
//! length), natural alignment of every field relative to the start of the header, and the sizes
//! of the defined fields. It must never allocate, panic or trust a length: a field that does not
//! fit, or a field this table does not know (its size and so everything after it is unknowable),
//! ends field parsing with what was read so far, and the 802.11 frame still starts at the header
//! length the header declares.

/// What a survey keeps of one radiotap header. All fields optional: drivers send what they like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Radiotap {
    /// Bytes of radiotap header: where the 802.11 frame starts.
    pub header_len: u16,
    /// Centre frequency of the channel the frame was heard on (Channel or XChannel field).
    pub freq_mhz: Option<u16>,
    /// Channel flags (Channel field): CCK/OFDM/2 GHz/5 GHz and half/quarter rate bits.
    pub channel_flags: u16,
    /// The first dBm antenna signal (later namespaces repeat it per antenna).
    pub signal_dbm: Option<i8>,
    pub noise_dbm: Option<i8>,
    /// Legacy data rate in 500 kbit/s units.
    pub rate_500k: Option<u8>,
    /// HT MCS field: (index, bandwidth 0=20 1=40, short guard interval).
    pub mcs: Option<(u8, u8, bool)>,
    /// Flags field bit 0x10: the frame ends with a 4-byte FCS.
    pub fcs_at_end: bool,
    /// Flags field bit 0x40: the receiver says the FCS did not match.
    pub bad_fcs: bool,
    /// Flags field bit 0x02: short preamble (DSSS/CCK rates).
    pub short_preamble: bool,
    /// Field parsing stopped early: an unknown field, or a field running past the header.
    pub incomplete: bool,
}

/// Radiotap field indexes in the default namespace, with (alignment, size). Index 28 (TLVs) and
/// anything above 28 has no fixed size, so parsing stops there.
const FIELDS: [(u8, u8); 28] = [
    (8, 8),  // 0 TSFT
    (1, 1),  // 1 Flags
    (1, 1),  // 2 Rate
    (2, 4),  // 3 Channel: u16 frequency, u16 flags
    (1, 2),  // 4 FHSS
    (1, 1),  // 5 dBm antenna signal
    (1, 1),  // 6 dBm antenna noise
    (2, 2),  // 7 Lock quality
    (2, 2),  // 8 TX attenuation
    (2, 2),  // 9 dB TX attenuation
    (1, 1),  // 10 dBm TX power
    (1, 1),  // 11 Antenna
    (1, 1),  // 12 dB antenna signal
    (1, 1),  // 13 dB antenna noise
    (2, 2),  // 14 RX flags
    (2, 2),  // 15 TX flags
    (1, 1),  // 16 RTS retries
    (1, 1),  // 17 data retries
    (4, 8),  // 18 XChannel: u32 flags, u16 frequency, u8 channel, u8 max power
    (1, 3),  // 19 MCS: known, flags, index
    (4, 8),  // 20 A-MPDU status
    (2, 12), // 21 VHT
    (8, 12), // 22 timestamp
    (2, 12), // 23 HE
    (2, 12), // 24 HE-MU
    (2, 6),  // 25 HE-MU-other-user
    (1, 1),  // 26 0-length PSDU
    (2, 4),  // 27 L-SIG
];

const BIT_RADIOTAP_NS: u32 = 1 << 29;
const BIT_VENDOR_NS: u32 = 1 << 30;
const BIT_EXT: u32 = 1 << 31;

/// A header claiming more presence words than this is garbage, not a radio: real drivers use at
/// most a handful (one per antenna namespace plus vendor ones).
const MAX_PRESENCE_WORDS: usize = 32;

#[inline]
fn le16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_le_bytes([s[0], s[1]]))
}

#[inline]
fn le32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Parses the radiotap header at the start of `data`. `None` when there is no usable header
/// (wrong version, or a declared length shorter than the fixed part or longer than the data):
/// then the 802.11 frame's start is unknown too.
pub fn parse(data: &[u8]) -> Option<Radiotap> {
    if *data.first()? != 0 {
        return None;
    }
    let len = le16(data, 2)?;
    let hdr = data.get(..usize::from(len))?;
    let mut out = Radiotap {
        header_len: len,
        ..Radiotap::default()
    };
    // The presence words: the first at offset 4, more while bit 31 is set.
    let mut words = 1;
    while le32(hdr, 4 + 4 * (words - 1))? & BIT_EXT != 0 {
        words += 1;
        if words > MAX_PRESENCE_WORDS {
            return None;
        }
    }
    let mut off = 4 + 4 * words;
    let mut in_radiotap_ns = true;
    let mut bit_base = 0usize;
    'words: for w in 0..words {
        // Every word read above was inside `hdr`.
        let Some(word) = le32(hdr, 4 + 4 * w) else {
            break;
        };
        if in_radiotap_ns {
            let mut bits = word & !(BIT_RADIOTAP_NS | BIT_VENDOR_NS | BIT_EXT);
            while bits != 0 {
                let idx = bit_base + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(&(align, size)) = FIELDS.get(idx) else {
                    out.incomplete = true;
                    break 'words;
                };
                let (align, size) = (usize::from(align), usize::from(size));
                off = off.next_multiple_of(align);
                let Some(f) = hdr.get(off..off + size) else {
                    out.incomplete = true;
                    break 'words;
                };
                out.take_field(idx, f);
                off += size;
            }
        }
        if word & BIT_RADIOTAP_NS != 0 {
            in_radiotap_ns = true;
            bit_base = 0;
        } else if word & BIT_VENDOR_NS != 0 {
            // Vendor namespace data: OUI (3), sub-namespace (1), skip length (2), then that many
            // bytes, 2-aligned. Its bitmaps describe fields only the vendor understands.
            in_radiotap_ns = false;
            bit_base = 0;
            off = off.next_multiple_of(2);
            let Some(skip) = le16(hdr, off + 4) else {
                out.incomplete = true;
                break;
            };
            off += 6 + usize::from(skip);
            if off > hdr.len() {
                out.incomplete = true;
                break;
            }
        } else {
            bit_base += 32;
        }
    }
    Some(out)
}

impl Radiotap {
    fn take_field(&mut self, idx: usize, f: &[u8]) {
        match idx {
            1 => {
                let flags = f[0];
                self.short_preamble = flags & 0x02 != 0;
                self.fcs_at_end = flags & 0x10 != 0;
                self.bad_fcs = flags & 0x40 != 0;
            }
            2 if f[0] != 0 => self.rate_500k = Some(f[0]),
            3 => {
                let freq = u16::from_le_bytes([f[0], f[1]]);
                if freq != 0 && self.freq_mhz.is_none() {
                    self.freq_mhz = Some(freq);
                }
                self.channel_flags = u16::from_le_bytes([f[2], f[3]]);
            }
            5 if self.signal_dbm.is_none() => self.signal_dbm = Some(f[0] as i8),
            6 if self.noise_dbm.is_none() => self.noise_dbm = Some(f[0] as i8),
            18 => {
                let freq = u16::from_le_bytes([f[4], f[5]]);
                if freq != 0 && self.freq_mhz.is_none() {
                    self.freq_mhz = Some(freq);
                }
            }
            19 => {
                let (known, flags, index) = (f[0], f[1], f[2]);
                // Known bits: 0x01 bandwidth, 0x02 MCS index, 0x04 guard interval. Without the
                // index there is nothing to time the frame by.
                if known & 0x02 != 0 {
                    let bw = if known & 0x01 != 0 { flags & 0x03 } else { 0 };
                    let sgi = known & 0x04 != 0 && flags & 0x04 != 0;
                    self.mcs = Some((index, bw, sgi));
                }
            }
            _ => {}
        }
    }

    /// Estimated time on air of an 802.11 frame of `frame_len` bytes (FCS included), from the
    /// rate the radio reported: preamble plus payload bits at that rate. `None` when the header
    /// gives no rate. This is an estimate for channel occupancy, not a PHY model.
    pub fn airtime_us(&self, frame_len: u32) -> Option<u32> {
        let bits = u64::from(frame_len) * 8;
        if let Some(r) = self.rate_500k {
            let kbps = u64::from(r) * 500;
            // 1, 2, 5.5 and 11 Mbit/s are DSSS/CCK: 192 us long or 96 us short PLCP preamble.
            // Everything else is OFDM: 20 us preamble+header, 4 us symbols carrying rate*4 bits,
            // plus the 16 service and 6 tail bits.
            return Some(if matches!(r, 2 | 4 | 11 | 22) {
                let pre = if self.short_preamble && r != 2 {
                    96
                } else {
                    192
                };
                (pre + (bits * 1000).div_ceil(kbps)) as u32
            } else {
                let per_symbol = kbps * 4 / 1000;
                (20 + 4 * (16 + bits + 6).div_ceil(per_symbol.max(1))) as u32
            });
        }
        let (index, bw, sgi) = self.mcs?;
        // HT data bits per 4 us symbol for one spatial stream at 20 MHz, MCS 0-7 (802.11-2020
        // Table 19-27); 40 MHz carries 108/52 as many; more streams scale linearly.
        const BITS_20: [u64; 8] = [26, 52, 78, 104, 156, 208, 234, 260];
        let streams = u64::from(index / 8) + 1;
        if index >= 32 {
            return None;
        }
        let mut per_symbol = BITS_20[usize::from(index % 8)] * streams;
        if bw == 1 {
            per_symbol = per_symbol * 108 / 52;
        }
        // 36 us: L-STF, L-LTF, L-SIG, HT-SIG, HT-STF, one HT-LTF (mixed format, one stream).
        let symbols = (16 + bits + 6).div_ceil(per_symbol);
        let data_us = if sgi {
            (symbols * 36).div_ceil(10)
        } else {
            symbols * 4
        };
        Some((36 + data_us) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A radiotap header with the given presence words and field bytes (already aligned).
    fn header(words: &[u32], fields: &[u8]) -> Vec<u8> {
        let len = 4 + 4 * words.len() + fields.len();
        let mut h = vec![0, 0];
        h.extend_from_slice(&(len as u16).to_le_bytes());
        for w in words {
            h.extend_from_slice(&w.to_le_bytes());
        }
        h.extend_from_slice(fields);
        h
    }

    #[test]
    fn common_fields_with_alignment_padding() {
        // TSFT (8-aligned: the data starts at 8, already aligned), Flags, Rate, Channel (2-aligned
        // at 18), signal, noise, antenna, RX flags (2-aligned: one pad byte at 25).
        let present = 1 | 1 << 1 | 1 << 2 | 1 << 3 | 1 << 5 | 1 << 6 | 1 << 11 | 1 << 14;
        let mut f = Vec::new();
        f.extend_from_slice(&10_016_360u64.to_le_bytes());
        f.push(0x10); // FCS at end
        f.push(2); // 1 Mbit/s
        f.extend_from_slice(&2412u16.to_le_bytes());
        f.extend_from_slice(&0x00a0u16.to_le_bytes());
        f.push((-22i8) as u8);
        f.push((-86i8) as u8);
        f.push(1);
        f.push(0xee); // pad
        f.extend_from_slice(&0u16.to_le_bytes());
        let h = header(&[present], &f);
        let r = parse(&h).unwrap();
        assert_eq!(r.header_len as usize, h.len());
        assert_eq!(r.freq_mhz, Some(2412));
        assert_eq!(r.signal_dbm, Some(-22));
        assert_eq!(r.noise_dbm, Some(-86));
        assert_eq!(r.rate_500k, Some(2));
        assert!(r.fcs_at_end && !r.bad_fcs && !r.incomplete);
        // tshark's wlan_radio.duration for an 81-byte frame at 1 Mbit/s, long preamble: 840 us.
        assert_eq!(r.airtime_us(81), Some(840));
    }

    #[test]
    fn extended_bitmaps_and_per_antenna_namespaces() {
        // Word 0: Flags, Channel, signal; ext + back-to-radiotap. Word 1 (radiotap ns again):
        // signal of antenna 0, antenna; ext + radiotap. Word 2: signal of antenna 1, antenna.
        let w0 = 1 << 1 | 1 << 3 | 1 << 5 | BIT_RADIOTAP_NS | BIT_EXT;
        let w1 = 1 << 5 | 1 << 11 | BIT_RADIOTAP_NS | BIT_EXT;
        let w2 = 1 << 5 | 1 << 11;
        // Fields start at 16 (4 + 3 words).
        let mut f = vec![0x00, 0xaa]; // flags, pad to 2
        f.extend_from_slice(&5180u16.to_le_bytes());
        f.extend_from_slice(&0x0140u16.to_le_bytes());
        f.push((-40i8) as u8);
        f.push((-41i8) as u8);
        f.push(0);
        f.push((-45i8) as u8);
        f.push(1);
        let r = parse(&header(&[w0, w1, w2], &f)).unwrap();
        assert_eq!(r.freq_mhz, Some(5180));
        assert_eq!(r.signal_dbm, Some(-40), "the first, combined signal wins");
        assert!(!r.incomplete);
    }

    #[test]
    fn vendor_namespace_is_skipped_by_its_length() {
        // Word 0: Flags + vendor ns next + ext. Word 1 (vendor): some bits; ext + back to radiotap.
        // Word 2 (radiotap again): Channel, signal.
        let w0 = 1 << 1 | BIT_VENDOR_NS | BIT_EXT;
        let w1 = 0x0000_0007 | BIT_RADIOTAP_NS | BIT_EXT;
        let w2 = 1 << 3 | 1 << 5;
        // Data at 16: flags(1), pad(1), vendor header at 18: OUI, subns, skip=5, then 5 bytes,
        // then Channel 2-aligned.
        let mut f = vec![0x10, 0];
        f.extend_from_slice(&[0x00, 0x11, 0x22, 0x01]);
        f.extend_from_slice(&5u16.to_le_bytes());
        f.extend_from_slice(&[9, 9, 9, 9, 9]);
        f.push(0); // pad to even
        f.extend_from_slice(&2437u16.to_le_bytes());
        f.extend_from_slice(&0x00a0u16.to_le_bytes());
        f.push((-60i8) as u8);
        let r = parse(&header(&[w0, w1, w2], &f)).unwrap();
        assert_eq!(r.freq_mhz, Some(2437));
        assert_eq!(r.signal_dbm, Some(-60));
        assert!(r.fcs_at_end && !r.incomplete);
    }

    #[test]
    fn unknown_bits_in_a_second_radiotap_word_stop_after_the_known_fields() {
        // The corpus's ieee802.11_exthdr.pcap has exactly this: word 1 continues the default
        // namespace (bits 32+), which defines nothing, so sizes are unknown from there on.
        let w0 = 1 << 3 | 1 << 5 | BIT_EXT;
        let w1 = 0x1077_01f7;
        let mut f = Vec::new();
        f.extend_from_slice(&2412u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.push((-22i8) as u8);
        let r = parse(&header(&[w0, w1], &f)).unwrap();
        assert_eq!((r.freq_mhz, r.signal_dbm), (Some(2412), Some(-22)));
        assert!(r.incomplete);
        // TLVs (bit 28) have no fixed size either.
        let r = parse(&header(&[1 << 5 | 1 << 28], &[0xc4, 1, 2, 3, 4])).unwrap();
        assert_eq!(r.signal_dbm, Some(-60));
        assert!(r.incomplete);
    }

    #[test]
    fn missing_and_truncated_fields() {
        // No fields at all: a valid header that says nothing.
        let r = parse(&header(&[0], &[])).unwrap();
        assert_eq!(
            r,
            Radiotap {
                header_len: 8,
                ..Radiotap::default()
            }
        );
        // TSFT declared but the header ends 3 bytes in.
        let r = parse(&header(&[1 | 1 << 5], &[1, 2, 3])).unwrap();
        assert!(r.incomplete && r.signal_dbm.is_none());
        // Channel needs 2-alignment padding that runs past the end.
        let r = parse(&header(&[1 << 1 | 1 << 3], &[0, 0, 0x6c, 0x09])).unwrap();
        assert!(r.incomplete && r.freq_mhz.is_none());
        // Vendor namespace whose skip length runs past the header: stops, no panic.
        let r = parse(&header(
            &[BIT_VENDOR_NS | BIT_EXT, 0],
            &[0, 0x11, 0x22, 0, 0xff, 0xff],
        ))
        .unwrap();
        assert!(r.incomplete);
    }

    #[test]
    fn unusable_headers_are_refused() {
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&[0, 0, 8]), None);
        // Version 1 does not exist.
        assert_eq!(
            parse(
                &header(&[0], &[])[..]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| if i == 0 { 1 } else { *b })
                    .collect::<Vec<_>>()
            ),
            None
        );
        // Length shorter than the fixed part, or longer than the data.
        assert_eq!(parse(&[0, 0, 4, 0, 0, 0, 0, 0]), None);
        assert_eq!(parse(&[0, 0, 200, 0, 0, 0, 0, 0]), None);
        // Presence words chained forever (every word has bit 31): refused, not looped on.
        let mut h = vec![0, 0, 0xff, 0x00];
        for _ in 0..62 {
            h.extend_from_slice(&BIT_EXT.to_le_bytes());
        }
        h.resize(255, 0);
        assert_eq!(parse(&h), None);
    }

    #[test]
    fn never_panics_on_any_prefix_or_bit_pattern() {
        let base = header(&[u32::MAX >> 1 | BIT_EXT, u32::MAX], &[0x55; 120]);
        for cut in 0..base.len() {
            let mut h = base[..cut].to_vec();
            if h.len() >= 4 {
                h[2..4].copy_from_slice(&(cut as u16).to_le_bytes());
            }
            let _ = parse(&h);
        }
        for seed in 0u32..2000 {
            let mut h = header(
                &[seed.wrapping_mul(2_654_435_761), seed.rotate_left(7)],
                &[seed as u8; 40],
            );
            h[2] = (seed % 60) as u8;
            if let Some(r) = parse(&h) {
                let _ = r.airtime_us(seed);
            }
        }
    }

    #[test]
    fn ht_mcs_airtime() {
        let r = Radiotap {
            mcs: Some((7, 0, false)),
            ..Radiotap::default()
        };
        // 1500 bytes at 65 Mbit/s: 12022 bits / 260 per symbol = 47 symbols = 188 us + 36.
        assert_eq!(r.airtime_us(1500), Some(224));
        let r = Radiotap {
            mcs: Some((40, 0, false)),
            ..Radiotap::default()
        };
        assert_eq!(r.airtime_us(1500), None);
    }
}
