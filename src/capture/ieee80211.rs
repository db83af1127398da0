//! The pure 802.11 decoder for the Wi-Fi survey: a radiotap (or bare 802.11) record in, a
//! fixed-size [`WifiFrame`] summary out.
//!
//! It owns the 802.11 header layout, the management bodies of beacons, probe responses and probe
//! requests, the information elements a survey reads (SSID, DS parameter set, HT/VHT/HE
//! operation, RSN, WPA), channel and band arithmetic, and the security classification. It must
//! never allocate, panic, log, or keep anything of a data frame beyond its header: payloads are
//! not read. An element that runs past the captured bytes is ignored (and noted); a complete
//! element that is shorter than its defined form gives what it has, or nothing when its key
//! field is missing; bytes beyond a defined form are ignored.

use super::radiotap::{self, Radiotap};
use crate::model::{MacAddr, TimestampNs};
use serde::Serialize;
use std::fmt::{self, Write as _};

/// The longest SSID 802.11 allows.
pub const SSID_MAX: usize = 32;

/// An SSID exactly as sent: up to 32 arbitrary bytes (not necessarily UTF-8, possibly control
/// characters or markup). Stored losslessly; shown only through [`Ssid::display`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssid {
    len: u8,
    bytes: [u8; SSID_MAX],
}

impl Ssid {
    pub const EMPTY: Ssid = Ssid {
        len: 0,
        bytes: [0; SSID_MAX],
    };

    /// `None` when longer than 32 bytes (an oversized element, not an SSID).
    pub fn new(b: &[u8]) -> Option<Ssid> {
        if b.len() > SSID_MAX {
            return None;
        }
        let mut bytes = [0; SSID_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(Ssid {
            len: b.len() as u8,
            bytes,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// A hidden network sends an empty SSID, or its real length filled with zero bytes.
    pub fn is_hidden(&self) -> bool {
        self.as_bytes().iter().all(|&b| b == 0)
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(2 * usize::from(self.len));
        for b in self.as_bytes() {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// The safe display form: printable UTF-8 kept as is; invalid bytes as `\xNN`; control,
    /// bidirectional-override and invisible characters as `\u{NNNN}`; a backslash as `\\`, so
    /// the form is unambiguous and nothing in it can reorder, hide or break the text around it.
    /// Markup stays literal text: HTML escaping is the page's job, which sees only this form.
    pub fn display(&self) -> String {
        let mut out = String::with_capacity(usize::from(self.len) + 8);
        for chunk in self.as_bytes().utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\\' {
                    out.push_str("\\\\");
                } else {
                    crate::visible::push_char(&mut out, c);
                }
            }
            for b in chunk.invalid() {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
        out
    }
}

impl fmt::Debug for Ssid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.display())
    }
}

/// The frequency band a channel number belongs to (channel numbers repeat across bands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Band {
    #[serde(rename = "2.4GHz")]
    G2_4,
    #[serde(rename = "5GHz")]
    G5,
    #[serde(rename = "6GHz")]
    G6,
}

impl Band {
    pub fn as_str(self) -> &'static str {
        match self {
            Band::G2_4 => "2.4 GHz",
            Band::G5 => "5 GHz",
            Band::G6 => "6 GHz",
        }
    }

    /// The stored form (the serde name).
    pub fn key(self) -> &'static str {
        match self {
            Band::G2_4 => "2.4GHz",
            Band::G5 => "5GHz",
            Band::G6 => "6GHz",
        }
    }

    pub fn from_key(s: &str) -> Option<Band> {
        [Band::G2_4, Band::G5, Band::G6]
            .into_iter()
            .find(|b| b.key() == s)
    }

    /// Centre frequency of channel `ch` in this band, `None` for a number the band lacks.
    pub fn freq_of(self, ch: u8) -> Option<u16> {
        let ch16 = u16::from(ch);
        match self {
            Band::G2_4 => match ch {
                1..=13 => Some(2407 + 5 * ch16),
                14 => Some(2484),
                _ => None,
            },
            Band::G5 => (32..=177).contains(&ch).then(|| 5000 + 5 * ch16),
            // Primary channels are 1, 5, 9...; the centres of wider spans (3, 7, 11...) are
            // numbers too.
            Band::G6 => match ch {
                2 => Some(5935),
                1..=233 => Some(5950 + 5 * ch16),
                _ => None,
            },
        }
    }

    /// The band and channel number of a centre frequency.
    pub fn of_freq(mhz: u16) -> Option<(Band, u8)> {
        let ch = |base: u16| u8::try_from((mhz - base) / 5).ok();
        match mhz {
            2484 => Some((Band::G2_4, 14)),
            2412..=2472 if (mhz - 2407) % 5 == 0 => Some((Band::G2_4, ch(2407)?)),
            5935 => Some((Band::G6, 2)),
            5160..=5885 if mhz % 5 == 0 => Some((Band::G5, ch(5000)?)),
            5955..=7115 if mhz % 5 == 0 => Some((Band::G6, ch(5950)?)),
            _ => None,
        }
    }
}

/// Where a BSS operates: its primary channel and the span its channel width covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Channel {
    pub band: Band,
    /// The primary channel number (what routers and tshark call "the channel").
    pub number: u8,
    pub width_mhz: u16,
    /// Centre frequency of the whole (primary + secondary) span.
    pub center_mhz: u16,
}

impl Channel {
    /// A 20 MHz channel.
    pub fn new20(band: Band, number: u8) -> Option<Channel> {
        Some(Channel {
            band,
            number,
            width_mhz: 20,
            center_mhz: band.freq_of(number)?,
        })
    }

    pub fn primary_mhz(&self) -> u16 {
        self.band.freq_of(self.number).unwrap_or(self.center_mhz)
    }

    /// The occupied frequency range [low, high) in MHz.
    pub fn span(&self) -> (u16, u16) {
        let half = self.width_mhz / 2;
        (
            self.center_mhz.saturating_sub(half),
            self.center_mhz.saturating_add(half),
        )
    }
}

/// How a network protects itself, from the capability bit and the RSN/WPA elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Security {
    #[default]
    Open,
    /// Opportunistic Wireless Encryption ("Enhanced Open"): encrypted, no password.
    Owe,
    Wep,
    /// WPA (version 1, the vendor element) with a pre-shared key.
    WpaPsk,
    Wpa2Psk,
    /// WPA2-PSK and WPA3-SAE both offered (transition mode).
    Wpa2Wpa3,
    Wpa3Sae,
    /// 802.1X (a RADIUS server, per-user credentials), WPA or RSN.
    Enterprise,
    /// An RSN or WPA element without any key management this list knows.
    Unknown,
}

impl Security {
    pub const ALL: [Security; 9] = [
        Security::Open,
        Security::Owe,
        Security::Wep,
        Security::WpaPsk,
        Security::Wpa2Psk,
        Security::Wpa2Wpa3,
        Security::Wpa3Sae,
        Security::Enterprise,
        Security::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Security::Open => "open",
            Security::Owe => "owe",
            Security::Wep => "wep",
            Security::WpaPsk => "wpa-psk",
            Security::Wpa2Psk => "wpa2-psk",
            Security::Wpa2Wpa3 => "wpa2-wpa3",
            Security::Wpa3Sae => "wpa3-sae",
            Security::Enterprise => "enterprise",
            Security::Unknown => "unknown",
        }
    }

    pub fn from_str_opt(s: &str) -> Option<Security> {
        Security::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Which frames a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Beacon,
    ProbeResponse,
    ProbeRequest,
    /// Any other management frame (authentication, deauthentication, action...).
    Management,
    Control,
    Data,
    /// Protocol version ≠ 0 or the reserved type: heard, not understood.
    Other,
}

/// The summary of one 802.11 record: what a survey needs and nothing more. `Copy` and
/// fixed-size so a capture loop can fill a reusable batch of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WifiFrame {
    pub ts: TimestampNs,
    pub wire_len: u32,
    /// Where the radio heard it (radiotap), as opposed to where the BSS says it operates.
    pub heard_mhz: Option<u16>,
    pub signal_dbm: Option<i8>,
    pub noise_dbm: Option<i8>,
    /// Estimated time on air, from the radiotap rate.
    pub airtime_us: Option<u32>,
    /// The receiver reported a bad FCS: the contents cannot be trusted.
    pub bad_fcs: bool,
    pub kind: Kind,
    /// Address 2 (the sender), when the frame type has one.
    pub transmitter: Option<MacAddr>,
    /// Address 3 of a management frame.
    pub bssid: MacAddr,
    /// The SSID element (beacon, probe response, probe request); `None` when absent or oversized.
    pub ssid: Option<Ssid>,
    /// Where a beacon or probe response says its BSS operates.
    pub channel: Option<Channel>,
    pub security: Security,
    /// An element ran past the captured bytes (short snaplen, or a malformed frame).
    pub elements_truncated: bool,
}

impl WifiFrame {
    pub const EMPTY: WifiFrame = WifiFrame {
        ts: 0,
        wire_len: 0,
        heard_mhz: None,
        signal_dbm: None,
        noise_dbm: None,
        airtime_us: None,
        bad_fcs: false,
        kind: Kind::Other,
        transmitter: None,
        bssid: MacAddr([0; 6]),
        ssid: None,
        channel: None,
        security: Security::Open,
        elements_truncated: false,
    };
}

/// The link types the survey reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WifiLink {
    /// DLT_IEEE802_11_RADIO (127): radiotap + 802.11, what monitor-mode interfaces give.
    Radiotap,
    /// DLT_IEEE802_11 (105): bare 802.11 frames, no radio information.
    Ieee80211,
}

impl WifiLink {
    pub fn from_dlt(dlt: i32) -> Option<WifiLink> {
        match dlt {
            127 => Some(WifiLink::Radiotap),
            105 => Some(WifiLink::Ieee80211),
            _ => None,
        }
    }
}

#[inline]
fn mac_at(b: &[u8], at: usize) -> Option<MacAddr> {
    let s: [u8; 6] = b.get(at..at + 6)?.try_into().ok()?;
    Some(MacAddr(s))
}

/// Decodes one record into `out`. False when not even a radiotap header and a frame control
/// field are readable (the record then belongs to nothing; `out` holds garbage).
pub fn decode_into(
    link: WifiLink,
    ts: TimestampNs,
    data: &[u8],
    wire_len: u32,
    out: &mut WifiFrame,
) -> bool {
    *out = WifiFrame::EMPTY;
    out.ts = ts;
    out.wire_len = wire_len;
    let (rt, body) = match link {
        WifiLink::Radiotap => {
            let Some(rt) = radiotap::parse(data) else {
                return false;
            };
            (rt, &data[usize::from(rt.header_len)..])
        }
        WifiLink::Ieee80211 => (Radiotap::default(), data),
    };
    out.heard_mhz = rt.freq_mhz;
    out.signal_dbm = rt.signal_dbm;
    out.noise_dbm = rt.noise_dbm;
    out.bad_fcs = rt.bad_fcs;
    let frame_len = wire_len.saturating_sub(u32::from(rt.header_len));
    out.airtime_us = rt.airtime_us(frame_len);
    // The FCS is part of the captured bytes only when nothing was cut off.
    let full = data.len() as u64 == u64::from(wire_len);
    let frame = if rt.fcs_at_end && full {
        &body[..body.len().saturating_sub(4)]
    } else {
        body
    };
    let [fc0, fc1, ..] = *frame else {
        return false;
    };
    let ftype = (fc0 >> 2) & 0x03;
    let subtype = fc0 >> 4;
    if fc0 & 0x03 != 0 {
        out.kind = Kind::Other;
        return true;
    }
    match ftype {
        0 => decode_management(frame, subtype, fc1, rt, out),
        1 => {
            out.kind = Kind::Control;
            // ACK and CTS carry only a receiver address; the others have a transmitter at 10.
            if !matches!(subtype, 12 | 13) {
                out.transmitter = mac_at(frame, 10);
            }
        }
        2 => {
            out.kind = Kind::Data;
            out.transmitter = mac_at(frame, 10);
        }
        _ => out.kind = Kind::Other,
    }
    true
}

fn decode_management(frame: &[u8], subtype: u8, fc1: u8, rt: Radiotap, out: &mut WifiFrame) {
    out.kind = match subtype {
        4 => Kind::ProbeRequest,
        5 => Kind::ProbeResponse,
        8 => Kind::Beacon,
        _ => Kind::Management,
    };
    out.transmitter = mac_at(frame, 10);
    out.bssid = mac_at(frame, 16).unwrap_or(MacAddr([0; 6]));
    // +HTC: the Order bit in a management frame means a 4-byte HT Control field follows.
    let header = if fc1 & 0x80 != 0 { 28 } else { 24 };
    let (fixed, is_bss) = match out.kind {
        Kind::Beacon | Kind::ProbeResponse => (12, true),
        Kind::ProbeRequest => (0, false),
        _ => return,
    };
    let Some(elements) = frame.get(header + fixed..) else {
        out.elements_truncated = true;
        return;
    };
    let e = Elements::parse(elements);
    out.elements_truncated = e.truncated;
    out.ssid = e.ssid;
    if is_bss {
        // Capability information: bit 4 = privacy (WEP, or anything the elements say).
        let privacy = frame.get(header + 10).is_some_and(|cap| cap & 0x10 != 0);
        out.security = e.security(privacy);
        out.channel = e.channel(rt.freq_mhz);
    }
}

/// What the elements of one management body say, each parsed by its own function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Elements {
    pub ssid: Option<Ssid>,
    /// An SSID element longer than 32 bytes was seen (and ignored).
    pub ssid_oversized: bool,
    pub ds_channel: Option<u8>,
    pub ht: Option<HtOperation>,
    pub vht: Option<VhtOperation>,
    pub he: Option<HeOperation>,
    pub rsn: Option<Akms>,
    pub wpa: Option<Akms>,
    /// An element's length ran past the end of the bytes.
    pub truncated: bool,
}

/// Element IDs (802.11-2020 Table 9-92).
const EID_SSID: u8 = 0;
const EID_DS: u8 = 3;
const EID_RSN: u8 = 48;
const EID_HT_OP: u8 = 61;
const EID_VHT_OP: u8 = 192;
const EID_VENDOR: u8 = 221;
const EID_EXTENSION: u8 = 255;
const EXT_HE_OP: u8 = 36;

impl Elements {
    pub fn parse(mut b: &[u8]) -> Elements {
        let mut e = Elements::default();
        while !b.is_empty() {
            let [id, len, rest @ ..] = b else {
                e.truncated = true;
                break;
            };
            let Some(body) = rest.get(..usize::from(*len)) else {
                e.truncated = true;
                break;
            };
            b = &rest[usize::from(*len)..];
            // The first of each kind counts: a repeated element is malformed, and the first is
            // what every implementation reads.
            match *id {
                EID_SSID if e.ssid.is_none() && !e.ssid_oversized => {
                    e.ssid = Ssid::new(body);
                    e.ssid_oversized = e.ssid.is_none();
                }
                EID_DS if e.ds_channel.is_none() => e.ds_channel = parse_ds(body),
                EID_HT_OP if e.ht.is_none() => e.ht = HtOperation::parse(body),
                EID_VHT_OP if e.vht.is_none() => e.vht = VhtOperation::parse(body),
                EID_RSN if e.rsn.is_none() => e.rsn = Akms::parse_rsn(body),
                EID_VENDOR if e.wpa.is_none() => e.wpa = Akms::parse_wpa(body),
                EID_EXTENSION if e.he.is_none() => {
                    if let [EXT_HE_OP, he @ ..] = body {
                        e.he = HeOperation::parse(he);
                    }
                }
                _ => {}
            }
        }
        e
    }

    /// The security label: RSN wins over WPA (mixed-mode networks send both), and without
    /// either the privacy bit tells WEP from open.
    pub fn security(&self, privacy: bool) -> Security {
        if let Some(a) = self.rsn {
            return a.classify_rsn();
        }
        if let Some(a) = self.wpa {
            return a.classify_wpa();
        }
        if privacy {
            Security::Wep
        } else {
            Security::Open
        }
    }

    /// Where the BSS operates: the band from the 6 GHz information, else the frequency the
    /// radio heard it on, else the channel number; the primary channel from the DS parameter
    /// set, HT operation or 6 GHz information, else the heard frequency; the width from the
    /// widest operation element that applies.
    pub fn channel(&self, heard_mhz: Option<u16>) -> Option<Channel> {
        let heard = heard_mhz.and_then(Band::of_freq);
        if let Some(six) = self.he.and_then(|h| h.six_ghz) {
            let width = six.width_mhz();
            let center_ch = if width == 160 && six.ccfs1 != 0 {
                six.ccfs1
            } else {
                six.ccfs0
            };
            let center = Band::G6.freq_of(center_ch);
            return Channel::new20(Band::G6, six.primary).map(|c| Channel {
                width_mhz: if center.is_some() { width } else { 20 },
                center_mhz: center.unwrap_or(c.center_mhz),
                ..c
            });
        }
        let number = self
            .ds_channel
            .or(self.ht.map(|h| h.primary))
            .or(heard.map(|(_, ch)| ch))?;
        let band = match heard {
            Some((band, _)) if band.freq_of(number).is_some() => band,
            _ if number <= 14 => Band::G2_4,
            _ => Band::G5,
        };
        let base = Channel::new20(band, number)?;
        let vht = self.vht.or(self.he.and_then(|h| h.vht));
        if band == Band::G5
            && let Some((width, center_ch)) = vht.and_then(|v| v.span())
            && let Some(center_mhz) = band.freq_of(center_ch)
        {
            // A centre that does not contain the primary is malformed: keep 20 MHz.
            let c = Channel {
                width_mhz: width,
                center_mhz,
                ..base
            };
            let (lo, hi) = c.span();
            if (lo..hi).contains(&base.center_mhz) {
                return Some(c);
            }
        }
        if let Some(ht) = self.ht
            && ht.primary == number
            && let Some(offset) = ht.secondary_offset()
        {
            let center_ch = number.checked_add_signed(2 * offset)?;
            if let Some(center_mhz) = band.freq_of(center_ch) {
                return Some(Channel {
                    width_mhz: 40,
                    center_mhz,
                    ..base
                });
            }
        }
        Some(base)
    }
}

/// DS Parameter Set: one byte, the current channel. A longer element keeps its first byte.
pub fn parse_ds(body: &[u8]) -> Option<u8> {
    body.first().copied().filter(|&c| c != 0)
}

/// HT Operation (element 61, 22 bytes defined).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HtOperation {
    pub primary: u8,
    /// HT Operation Information byte 1: bits 0-1 secondary channel offset, bit 2 width.
    pub info: u8,
}

impl HtOperation {
    /// Shorter than the defined 22 bytes is malformed (the MCS set is missing): ignored, as
    /// Wireshark ignores it.
    pub fn parse(body: &[u8]) -> Option<HtOperation> {
        if body.len() < 22 || body[0] == 0 {
            return None;
        }
        Some(HtOperation {
            primary: body[0],
            info: body[1],
        })
    }

    /// +1 (secondary above) or −1 (below) channel *pairs* of 20 MHz when the BSS uses 40 MHz;
    /// returned in units of 2 channel numbers, i.e. the centre is `primary + 2 * offset`.
    pub fn secondary_offset(&self) -> Option<i8> {
        if self.info & 0x04 == 0 {
            return None;
        }
        match self.info & 0x03 {
            1 => Some(1),
            3 => Some(-1),
            _ => None,
        }
    }
}

/// VHT Operation (element 192, 5 bytes defined).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VhtOperation {
    pub width: u8,
    pub ccfs0: u8,
    pub ccfs1: u8,
}

impl VhtOperation {
    pub fn parse(body: &[u8]) -> Option<VhtOperation> {
        if body.len() < 5 {
            return None;
        }
        Some(VhtOperation {
            width: body[0],
            ccfs0: body[1],
            ccfs1: body[2],
        })
    }

    /// (width, centre channel) for 80 and 160 MHz; `None` when the HT element decides (20/40).
    /// 80+80 is counted as its primary 80 MHz segment.
    pub fn span(&self) -> Option<(u16, u8)> {
        match self.width {
            1 if self.ccfs1 == 0 => Some((80, self.ccfs0)),
            1 if self.ccfs1.abs_diff(self.ccfs0) == 8 => Some((160, self.ccfs1)),
            1 | 3 => Some((80, self.ccfs0)),
            2 => Some((160, self.ccfs0)),
            _ => None,
        }
    }
}

/// HE Operation (element extension 36): the parts that locate the BSS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeOperation {
    /// VHT Operation Information carried inside, when present.
    pub vht: Option<VhtOperation>,
    pub six_ghz: Option<SixGhzInfo>,
}

/// 6 GHz Operation Information (inside HE Operation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SixGhzInfo {
    pub primary: u8,
    pub control: u8,
    pub ccfs0: u8,
    pub ccfs1: u8,
}

impl SixGhzInfo {
    pub fn width_mhz(&self) -> u16 {
        20 << (self.control & 0x03)
    }
}

impl HeOperation {
    /// `body` starts after the extension ID: HE Operation Parameters (3), BSS colour (1),
    /// basic HE-MCS and NSS set (2), then the optional parts the parameters announce.
    pub fn parse(body: &[u8]) -> Option<HeOperation> {
        let params = u32::from_le_bytes([*body.first()?, *body.get(1)?, *body.get(2)?, 0]);
        let mut at = 6;
        let mut he = HeOperation {
            vht: None,
            six_ghz: None,
        };
        if params & (1 << 14) != 0 {
            let v = body.get(at..at + 3)?;
            he.vht = VhtOperation::parse(&[v[0], v[1], v[2], 0, 0]);
            at += 3;
        }
        if params & (1 << 15) != 0 {
            at += 1;
        }
        if params & (1 << 17) != 0 {
            let s = body.get(at..at + 5)?;
            he.six_ghz = (s[0] != 0).then_some(SixGhzInfo {
                primary: s[0],
                control: s[1],
                ccfs0: s[2],
                ccfs1: s[3],
            });
        }
        Some(he)
    }
}

/// The key management suites (AKMs) an RSN or WPA element offers, as a bit set of the suite
/// types under the element's own OUI (00-0F-AC for RSN, 00-50-F2 for WPA).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Akms {
    /// Bit n set: suite type n (n < 64).
    pub types: u64,
    /// Suites under another OUI (vendor-specific key management).
    pub foreign: bool,
}

const OUI_RSN: [u8; 3] = [0x00, 0x0f, 0xac];
const OUI_MS: [u8; 3] = [0x00, 0x50, 0xf2];

impl Akms {
    /// RSN element: version (2), group cipher (4), pairwise count + suites, AKM count + suites,
    /// capabilities... Fields may end early; per 802.11-2020 §9.4.2.24 a missing AKM list means
    /// 802.1X. A count larger than the suites present reads the complete ones.
    pub fn parse_rsn(body: &[u8]) -> Option<Akms> {
        let version = u16::from_le_bytes([*body.first()?, *body.get(1)?]);
        if version != 1 {
            return None;
        }
        Some(
            Akms::suites_after_ciphers(&body[2..], OUI_RSN).unwrap_or(Akms {
                types: 1 << 1,
                foreign: false,
            }),
        )
    }

    /// WPA vendor element: OUI 00-50-F2, type 1, then the RSN layout from the version on.
    pub fn parse_wpa(body: &[u8]) -> Option<Akms> {
        let [a, b, c, 1, v0, v1, rest @ ..] = body else {
            return None;
        };
        if [*a, *b, *c] != OUI_MS || u16::from_le_bytes([*v0, *v1]) != 1 {
            return None;
        }
        Some(Akms::suites_after_ciphers(rest, OUI_MS).unwrap_or(Akms {
            types: 1 << 1,
            foreign: false,
        }))
    }

    /// The AKM list after group cipher and pairwise list; `None` when the element ends first.
    fn suites_after_ciphers(b: &[u8], oui: [u8; 3]) -> Option<Akms> {
        let mut at = 4;
        let pairwise = usize::from(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]));
        at += 2 + 4 * pairwise;
        let count = usize::from(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]));
        at += 2;
        let mut a = Akms::default();
        for suite in b.get(at..)?.chunks_exact(4).take(count) {
            if suite[..3] == oui && suite[3] < 64 {
                a.types |= 1 << suite[3];
            } else {
                a.foreign = true;
            }
        }
        Some(a)
    }

    fn has(&self, types: &[u8]) -> bool {
        types.iter().any(|&t| self.types & (1 << t) != 0)
    }

    fn classify_rsn(&self) -> Security {
        // 00-0F-AC suite types (802.11-2020 Table 9-151): 1, 3, 5, 11, 12, 13 use 802.1X;
        // 2, 4, 6 a PSK; 8, 9, 24, 25 SAE; 18 OWE.
        let enterprise = self.has(&[1, 3, 5, 11, 12, 13, 22, 23]);
        let psk = self.has(&[2, 4, 6, 19, 20]);
        let sae = self.has(&[8, 9, 24, 25]);
        match (enterprise, psk, sae) {
            (true, _, _) => Security::Enterprise,
            (_, true, true) => Security::Wpa2Wpa3,
            (_, false, true) => Security::Wpa3Sae,
            (_, true, false) => Security::Wpa2Psk,
            _ if self.has(&[18]) => Security::Owe,
            _ => Security::Unknown,
        }
    }

    fn classify_wpa(&self) -> Security {
        if self.has(&[1]) {
            Security::Enterprise
        } else if self.has(&[2]) {
            Security::WpaPsk
        } else {
            Security::Unknown
        }
    }
}

#[cfg(test)]
mod tests;
