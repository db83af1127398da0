//! Vendor names from the IEEE OUI registry, read from the copy the system keeps up to date.
//!
//! Data source: Debian's `ieee-data` (/usr/share/ieee-data/{oui,mam,oui36}.csv: MA-L, MA-M and
//! MA-S assignments, refreshed by Debian and by its `update-oui`), else Wireshark's `manuf`
//! (libwireshark-data, the same registry merged). Chosen over the `mac_oui` crate, which embeds
//! a 6 MB CSV and parses it into memory at start (~84 MB peak RSS, twice the whole 40 MB
//! budget), and over `oui-data` (+9 MB binary, frozen at build time): here nothing is resident.
//! Lookups stream the files once per batch of MACs, keeping only the matches, so memory is the
//! size of the answer and a registry update needs no rebuild.
//!
//! Measured: one lookup batch reads the 4.3 MB of ieee-data in about 3 ms (page cache, x86).
//!
//! It must never be called per packet (a lookup reads a few MB of text) and never fails: a
//! missing or damaged file means "vendor unknown".

use super::text;
use crate::model::MacAddr;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// The IEEE registry files, most specific assignments last (longest prefix wins anyway).
pub const IEEE_DATA_FILES: &[&str] = &[
    "/usr/share/ieee-data/oui.csv",
    "/usr/share/ieee-data/mam.csv",
    "/usr/share/ieee-data/oui36.csv",
];
/// Wireshark's merged registry: the fallback when ieee-data is not installed.
pub const WIRESHARK_MANUF: &str = "/usr/share/wireshark/manuf";

/// A set of registry files to search.
#[derive(Clone, Debug)]
pub struct OuiDb {
    files: Vec<PathBuf>,
}

impl OuiDb {
    /// The system's registry: ieee-data when present, else Wireshark's manuf, else nothing.
    pub fn system() -> OuiDb {
        let ieee: Vec<PathBuf> = IEEE_DATA_FILES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .collect();
        let files = if ieee.is_empty() {
            [PathBuf::from(WIRESHARK_MANUF)]
                .into_iter()
                .filter(|p| p.is_file())
                .collect()
        } else {
            ieee
        };
        if files.is_empty() {
            tracing::warn!(
                "no OUI registry found: install the ieee-data package to see device vendors"
            );
        }
        OuiDb { files }
    }

    pub fn from_files(files: Vec<PathBuf>) -> OuiDb {
        OuiDb { files }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The vendor of every MAC in `macs` that the registry knows. Locally administered (private)
    /// and group addresses have no vendor and are skipped without reading anything.
    pub fn lookup(&self, macs: &[MacAddr]) -> HashMap<MacAddr, String> {
        let wanted: Vec<MacAddr> = macs
            .iter()
            .copied()
            .filter(|m| !m.is_locally_administered() && !m.is_group())
            .collect();
        let mut best: HashMap<MacAddr, (u8, String)> = HashMap::new();
        if wanted.is_empty() {
            return HashMap::new();
        }
        for f in &self.files {
            if let Err(err) = scan(f, &wanted, &mut best) {
                tracing::debug!(file = %f.display(), error = %err, "cannot read OUI registry");
            }
        }
        best.into_iter().map(|(m, (_, v))| (m, v)).collect()
    }
}

fn scan(
    path: &Path,
    wanted: &[MacAddr],
    best: &mut HashMap<MacAddr, (u8, String)>,
) -> std::io::Result<()> {
    // Each wanted MAC under each assignment size, so a line costs one hash lookup however many
    // MACs are asked for.
    let mut index: HashMap<(u8, u64), Vec<MacAddr>> = HashMap::new();
    for &m in wanted {
        for bits in [24u8, 28, 36] {
            index
                .entry((bits, m.to_u64() >> (48 - u32::from(bits))))
                .or_default()
                .push(m);
        }
    }
    let mut file = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(path)?);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if file.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        // Most lines match nothing: their assignment is read without touching the rest.
        if let Some(key) = ieee_key(&line)
            && !index.contains_key(&key)
        {
            continue;
        }
        let Some((bits, prefix, name)) = parse_line(line.trim_ascii_end()) else {
            continue;
        };
        let Some(macs) = index.get(&(bits, prefix)) else {
            continue;
        };
        for &m in macs {
            if best.get(&m).is_none_or(|(b, _)| *b < bits) {
                best.insert(m, (bits, text::escape(name.trim_ascii())));
            }
        }
    }
}

/// (bits, prefix) of an IEEE CSV line (`MA-L,DCA632,...`), read with no allocation or UTF-8
/// check; `None` for any other line (which then goes through [`parse_line`]).
fn ieee_key(line: &[u8]) -> Option<(u8, u64)> {
    let rest = line.strip_prefix(b"MA-")?.get(1..)?.strip_prefix(b",")?;
    let mut v = 0u64;
    let mut n = 0u8;
    for &b in rest {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'F' => b - b'A' + 10,
            b'a'..=b'f' => b - b'a' + 10,
            b',' => break,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
        n += 1;
        if n > 9 {
            return None;
        }
    }
    Some((n * 4, v))
}

/// One registry line: (prefix length in bits, prefix value, organisation name).
/// IEEE CSV: `MA-L,DCA632,Raspberry Pi Trading Ltd,"address"` (name possibly quoted).
/// Wireshark manuf: `DC:A6:32<TAB>Raspberr<TAB>Raspberry Pi Trading Ltd`, optionally `/28`.
fn parse_line(line: &[u8]) -> Option<(u8, u64, &[u8])> {
    if line.starts_with(b"MA-") {
        let mut it = line.splitn(3, |&b| b == b',');
        let _registry = it.next()?;
        let hex = std::str::from_utf8(it.next()?).ok()?;
        let rest = it.next()?;
        let bits = u8::try_from(hex.len() * 4).ok()?;
        if !matches!(bits, 24 | 28 | 36) {
            return None;
        }
        let prefix = u64::from_str_radix(hex, 16).ok()?;
        let name = if let Some(q) = rest.strip_prefix(b"\"") {
            // `""` inside a quoted field is a quote; names with one are rare, so the raw
            // bytes up to the closing quote are kept (escape() makes them safe regardless).
            let end = q.windows(2).position(|w| w == b"\",").unwrap_or(q.len());
            &q[..end]
        } else {
            rest.split(|&b| b == b',').next()?
        };
        return Some((bits, prefix, name));
    }
    if line.first() == Some(&b'#') {
        return None;
    }
    let mut cols = line.split(|&b| b == b'\t');
    let addr = std::str::from_utf8(cols.next()?).ok()?;
    let short = cols.next()?;
    let long = cols.next().filter(|l| !l.trim_ascii().is_empty());
    let (hexpart, bits) = match addr.split_once('/') {
        Some((a, b)) => (a, b.trim().parse::<u8>().ok()?),
        None => (addr, 24),
    };
    let digits: String = hexpart.chars().filter(char::is_ascii_hexdigit).collect();
    if !(bits == 24 || bits == 28 || bits == 36) || digits.len() * 4 < usize::from(bits) {
        return None;
    }
    let full = u64::from_str_radix(digits.get(..12).unwrap_or(&digits), 16).ok()?;
    let full_bits = (digits.len().min(12) * 4) as u32;
    let prefix = full >> (full_bits - u32::from(bits));
    Some((bits, prefix, long.unwrap_or(short)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ieee_csv_and_manuf_lines_parse() {
        let (b, p, n) =
            parse_line(b"MA-L,DCA632,Raspberry Pi Trading Ltd,\"Maurice Wilkes Building\"")
                .unwrap();
        assert_eq!((b, p, n), (24, 0xdca632, &b"Raspberry Pi Trading Ltd"[..]));
        let (b, p, n) = parse_line(b"MA-L,001122,\"Acme, Inc.\",\"x\"").unwrap();
        assert_eq!((b, p, n), (24, 0x001122, &b"Acme, Inc."[..]));
        let (b, p, _) = parse_line(b"MA-S,70B3D5F2F,TELEPLATFORMS,\"x\"").unwrap();
        assert_eq!((b, p), (36, 0x70b3d5f2f));
        let (b, p, n) = parse_line(b"DC:A6:32\tRaspberr\tRaspberry Pi Trading Ltd").unwrap();
        assert_eq!((b, p, n), (24, 0xdca632, &b"Raspberry Pi Trading Ltd"[..]));
        let (b, p, _) = parse_line(b"00:1B:C5:00:10:00/36\tOpenRBco\tOpenRB.com").unwrap();
        assert_eq!((b, p), (36, 0x001bc5001));
        assert!(parse_line(b"Registry,Assignment,Organization Name").is_none());
        assert!(parse_line(b"# comment").is_none());
        assert!(parse_line(b"\xff\xfe").is_none());
        assert_eq!(ieee_key(b"MA-L,DCA632,Raspberry"), Some((24, 0xdca632)));
        assert_eq!(ieee_key(b"MA-S,70B3D5F2F,x"), Some((36, 0x70b3d5f2f)));
        assert_eq!(ieee_key(b"DC:A6:32\tx"), None);
    }

    #[test]
    fn longest_prefix_wins_and_private_macs_have_no_vendor() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("oui.csv");
        std::fs::write(
            &f,
            "Registry,Assignment,Organization Name,Organization Address\n\
             MA-L,70B3D5,IEEE Registration Authority,\"x\"\n\
             MA-S,70B3D5F2F,TELEPLATFORMS,\"x\"\n\
             MA-L,DCA632,Raspberry Pi Trading Ltd,\"x\"\n",
        )
        .unwrap();
        let db = OuiDb::from_files(vec![f]);
        let pi: MacAddr = "dc:a6:32:01:02:03".parse().unwrap();
        let small: MacAddr = "70:b3:d5:f2:f0:01".parse().unwrap();
        let private: MacAddr = "da:a6:32:01:02:03".parse().unwrap();
        let got = db.lookup(&[pi, small, private]);
        assert_eq!(got[&pi], "Raspberry Pi Trading Ltd");
        assert_eq!(got[&small], "TELEPLATFORMS");
        assert!(!got.contains_key(&private));
    }

    #[test]
    fn the_system_registry_knows_a_raspberry_pi() {
        let db = OuiDb::system();
        assert!(
            !db.is_empty(),
            "no OUI registry: install ieee-data (`make deps-test` does)"
        );
        let pi: MacAddr = "dc:a6:32:01:02:03".parse().unwrap();
        assert!(db.lookup(&[pi])[&pi].contains("Raspberry Pi"));
    }
}
