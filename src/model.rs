//! Plain domain types shared by every module: MAC addresses, counters, timestamps.
//!
//! Nothing here does I/O or knows about libpcap, SQLite or HTTP.

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// An Ethernet MAC address. Kept as six bytes; `to_u64` packs it for cheap hashing on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    /// Packs the address into the low 48 bits of a u64 (big-endian order, so ordering is preserved).
    #[inline]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    #[inline]
    pub fn from_u64(v: u64) -> MacAddr {
        let b = v.to_be_bytes();
        MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// Group bit: broadcast and every multicast address.
    #[inline]
    pub fn is_group(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    #[inline]
    pub fn is_broadcast(self) -> bool {
        self.0 == [0xff; 6]
    }

    /// Locally administered: phones and laptops use these as "private"/randomized addresses.
    #[inline]
    pub fn is_locally_administered(self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not a MAC address: write six hex pairs separated by ':' or '-', e.g. aa:bb:cc:dd:ee:ff"
)]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_string());
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(err());
        }
        let mut out = [0u8; 6];
        for (o, p) in out.iter_mut().zip(parts) {
            if p.is_empty() || p.len() > 2 {
                return Err(err());
            }
            *o = u8::from_str_radix(p, 16).map_err(|_| err())?;
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Capture timestamp in nanoseconds since the Unix epoch (UTC).
pub type TimestampNs = i64;

/// Start of the minute (in seconds since the epoch) that contains `ts`. Minute boundaries are the
/// same in every time zone (all UTC offsets are whole minutes), so minute buckets are stored in UTC.
#[inline]
pub fn minute_of(ts: TimestampNs) -> i64 {
    ts.div_euclid(60_000_000_000) * 60
}

/// RFC 3339 in UTC with all nine fractional digits (`2026-03-01T00:00:00.000000000Z`): fixed
/// width, so capture timestamps print exactly and sort as text.
pub fn rfc3339(ts: TimestampNs) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(ts)) {
        Ok(t) => format!("{t:.9}"),
        // i64 nanoseconds span 1677..2262, inside jiff's range; kept total rather than panicking.
        Err(_) => format!("{ts}ns"),
    }
}

/// Per-device counters, exactly the ACCOUNTING.md quantities. `local_bytes` is derived, never stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub frames_sent: u64,
    pub frames_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub internet_upload_bytes: u64,
    pub internet_download_bytes: u64,
}

impl Counts {
    /// Everything the device sent or received that did not cross the gateway to the internet.
    pub fn local_bytes(&self) -> u64 {
        (self.bytes_sent + self.bytes_received)
            .saturating_sub(self.internet_upload_bytes + self.internet_download_bytes)
    }

    pub fn add(&mut self, o: &Counts) {
        self.frames_sent += o.frames_sent;
        self.frames_received += o.frames_received;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.internet_upload_bytes += o.internet_upload_bytes;
        self.internet_download_bytes += o.internet_download_bytes;
    }

    pub fn is_zero(&self) -> bool {
        *self == Counts::default()
    }
}

/// One device's counts within one minute, the unit the flusher writes to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinuteUsage {
    pub mac: MacAddr,
    /// Start of the minute, seconds since the epoch (UTC).
    pub minute: i64,
    pub counts: Counts,
}

/// When a device was seen, for the devices table. Timestamps in ns since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting {
    pub mac: MacAddr,
    pub first_seen: TimestampNs,
    pub last_seen: TimestampNs,
    pub is_gateway: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_roundtrip_and_flags() {
        let m: MacAddr = "DA:a6:32:11:22:33".parse().unwrap();
        assert_eq!(m.to_string(), "da:a6:32:11:22:33");
        assert_eq!(MacAddr::from_u64(m.to_u64()), m);
        assert!(m.is_locally_administered());
        assert!(!m.is_group());
        assert!(MacAddr::BROADCAST.is_group());
        assert!("01:00:5e:00:00:fb".parse::<MacAddr>().unwrap().is_group());
        assert!("aa:bb:cc:dd:ee".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:fg".parse::<MacAddr>().is_err());
        assert!("aa:bb:cc:dd:ee:100".parse::<MacAddr>().is_err());
    }

    #[test]
    fn minute_floor_handles_negative_and_exact() {
        assert_eq!(minute_of(0), 0);
        assert_eq!(minute_of(59_999_999_999), 0);
        assert_eq!(minute_of(60_000_000_000), 60);
        assert_eq!(minute_of(-1), -60);
    }

    #[test]
    fn local_bytes_is_total_minus_internet() {
        let c = Counts {
            bytes_sent: 100,
            bytes_received: 50,
            internet_upload_bytes: 30,
            internet_download_bytes: 20,
            ..Default::default()
        };
        assert_eq!(c.local_bytes(), 100);
    }
}

/// An IP prefix such as `192.168.1.0/24` or `2001:db8::/64`, the unit of "what is local".
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpPrefix {
    V4 { addr: u32, len: u8 },
    V6 { addr: u128, len: u8 },
}

impl IpPrefix {
    /// Builds a prefix, zeroing host bits so equal networks compare equal.
    pub fn new(addr: std::net::IpAddr, len: u8) -> Result<IpPrefix, ParsePrefixError> {
        match addr {
            std::net::IpAddr::V4(a) if len <= 32 => Ok(IpPrefix::V4 {
                addr: u32::from(a) & mask32(len),
                len,
            }),
            std::net::IpAddr::V6(a) if len <= 128 => Ok(IpPrefix::V6 {
                addr: u128::from(a) & mask128(len),
                len,
            }),
            _ => Err(ParsePrefixError(format!("{addr}/{len}"))),
        }
    }

    #[inline]
    pub fn contains_v4(&self, ip: u32) -> bool {
        matches!(*self, IpPrefix::V4 { addr, len } if ip & mask32(len) == addr)
    }

    #[inline]
    pub fn contains_v6(&self, ip: u128) -> bool {
        matches!(*self, IpPrefix::V6 { addr, len } if ip & mask128(len) == addr)
    }
}

#[inline]
fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

#[inline]
fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpPrefix::V4 { addr, len } => write!(f, "{}/{}", std::net::Ipv4Addr::from(addr), len),
            IpPrefix::V6 { addr, len } => write!(f, "{}/{}", std::net::Ipv6Addr::from(addr), len),
        }
    }
}

impl fmt::Debug for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "'{0}' is not an IP prefix: write an address, '/' and a length, e.g. 192.168.1.0/24 or 2001:db8:1::/64"
)]
pub struct ParsePrefixError(pub String);

impl FromStr for IpPrefix {
    type Err = ParsePrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParsePrefixError(s.to_string());
        let (a, l) = s.trim().split_once('/').ok_or_else(err)?;
        let addr: std::net::IpAddr = a.parse().map_err(|_| err())?;
        let len: u8 = l.parse().map_err(|_| err())?;
        IpPrefix::new(addr, len).map_err(|_| err())
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn prefixes_parse_normalise_and_match() {
        let p: IpPrefix = "192.168.1.77/24".parse().unwrap();
        assert_eq!(p.to_string(), "192.168.1.0/24");
        assert!(p.contains_v4(u32::from(std::net::Ipv4Addr::new(192, 168, 1, 5))));
        assert!(!p.contains_v4(u32::from(std::net::Ipv4Addr::new(192, 168, 2, 5))));
        let q: IpPrefix = "2001:db8:1::/48".parse().unwrap();
        assert!(q.contains_v6(u128::from(
            "2001:db8:1:ff::1".parse::<std::net::Ipv6Addr>().unwrap()
        )));
        assert!(!q.contains_v4(0));
        let all: IpPrefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains_v4(0xdead_beef));
        assert!("10.0.0.0/33".parse::<IpPrefix>().is_err());
        assert!("10.0.0.0".parse::<IpPrefix>().is_err());
        assert!("fe80::/129".parse::<IpPrefix>().is_err());
    }
}
