//! The server name (SNI, RFC 6066 §3) of a TLS ClientHello: the one name a client sends in
//! clear text when it opens a TLS connection, over TCP (in TLS records) or QUIC (in CRYPTO
//! frames, [`super::quic`]). Only the `server_name` extension is read; everything else is
//! skipped by its length.
//!
//! A ClientHello may be longer than the first TCP segment (post-quantum key shares make it
//! about 1.8 KB), and the capture sees only that segment: the extensions are read as far as
//! they go, and an SNI that lies wholly in what was captured is found.

/// TLS record content type "handshake".
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;

/// The SNI of a ClientHello carried in the TLS records at the start of a TCP payload.
pub fn sni_from_records(payload: &[u8]) -> Option<String> {
    // The handshake message may be split over several records: join their fragments.
    let mut hs = Vec::new();
    let mut at = 0;
    while let Some(header) = payload.get(at..at + 5) {
        if header[0] != HANDSHAKE || header[1] != 3 {
            break;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let end = (at + 5 + len).min(payload.len());
        hs.extend_from_slice(&payload[at + 5..end]);
        at += 5 + len;
    }
    if hs.is_empty() {
        return None;
    }
    sni_from_handshake(&hs)
}

/// The SNI of the ClientHello handshake message at the start of `hs` (type, length, body);
/// the message may be cut short.
pub fn sni_from_handshake(hs: &[u8]) -> Option<String> {
    if *hs.first()? != CLIENT_HELLO {
        return None;
    }
    let declared = usize::try_from(u32::from_be_bytes([
        0,
        *hs.get(1)?,
        *hs.get(2)?,
        *hs.get(3)?,
    ]))
    .ok()?;
    let body = hs.get(4..)?;
    let body = &body[..declared.min(body.len())];
    let mut r = Reader { b: body, at: 0 };
    r.skip(2 + 32)?; // legacy_version, random
    let n = usize::from(r.u8()?);
    r.skip(n)?; // legacy_session_id
    let n = usize::from(r.u16()?);
    r.skip(n)?; // cipher_suites
    let n = usize::from(r.u8()?);
    r.skip(n)?; // legacy_compression_methods
    let n = usize::from(r.u16()?);
    let ext_end = (r.at + n).min(body.len());
    while r.at + 4 <= ext_end {
        let kind = r.u16()?;
        let len = usize::from(r.u16()?);
        if kind == EXT_SERVER_NAME {
            let data = r.take(len)?;
            return server_name(data);
        }
        r.skip(len)?;
    }
    None
}

/// The host_name entry of a server_name extension's list.
fn server_name(data: &[u8]) -> Option<String> {
    let mut r = Reader { b: data, at: 0 };
    let list = usize::from(r.u16()?);
    let list = r.take(list)?;
    let mut r = Reader { b: list, at: 0 };
    while r.at < list.len() {
        let kind = r.u8()?;
        let len = usize::from(r.u16()?);
        let name = r.take(len)?;
        if kind == HOST_NAME {
            return host_name(name);
        }
    }
    None
}

/// A host name as sent: printable ASCII, no trailing dot, lower case. Anything else (binary,
/// empty) is not a name worth keeping.
fn host_name(b: &[u8]) -> Option<String> {
    let b = b.strip_suffix(b".").unwrap_or(b);
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    Some(String::from_utf8_lossy(b).to_ascii_lowercase())
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ClientHello handshake message with a GREASE-like extension before server_name.
    pub(crate) fn client_hello(name: &str) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend([7u8; 32]);
        body.push(32);
        body.extend([9u8; 32]);
        body.extend([0, 4, 0x13, 0x01, 0x13, 0x02]);
        body.extend([1, 0]);
        let mut ext = Vec::new();
        ext.extend([0x0a, 0x0a, 0, 1, 0]);
        let n = name.len() as u16;
        ext.extend([0, 0]);
        ext.extend((n + 5).to_be_bytes());
        ext.extend((n + 3).to_be_bytes());
        ext.push(0);
        ext.extend(n.to_be_bytes());
        ext.extend(name.as_bytes());
        ext.extend([0, 43, 0, 3, 2, 3, 4]);
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        hs
    }

    fn records(hs: &[u8], split: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for part in [&hs[..split], &hs[split..]] {
            out.extend([22, 3, 1]);
            out.extend((part.len() as u16).to_be_bytes());
            out.extend(part);
        }
        out
    }

    #[test]
    fn reads_the_server_name() {
        let hs = client_hello("Shop.Example.");
        assert_eq!(sni_from_handshake(&hs).as_deref(), Some("shop.example"));
        assert_eq!(
            sni_from_records(&records(&hs, hs.len())).as_deref(),
            Some("shop.example")
        );
    }

    #[test]
    fn a_hello_split_over_two_records_is_joined() {
        let hs = client_hello("video.example");
        assert_eq!(
            sni_from_records(&records(&hs, 50)).as_deref(),
            Some("video.example")
        );
    }

    #[test]
    fn a_cut_hello_gives_the_name_only_when_it_is_all_there() {
        let hs = client_hello("a.example");
        let rec = records(&hs, hs.len());
        let name_end = rec.windows(9).position(|w| w == b"a.example").unwrap() + 9;
        for cut in 0..rec.len() {
            let got = sni_from_records(&rec[..cut]);
            if cut >= name_end {
                assert_eq!(got.as_deref(), Some("a.example"), "{cut}");
            } else {
                assert_eq!(got, None, "{cut}");
            }
        }
    }

    #[test]
    fn other_records_and_binary_names_are_ignored() {
        assert_eq!(sni_from_records(&[23, 3, 3, 0, 1, 0]), None);
        assert_eq!(sni_from_handshake(&client_hello("a\u{1}b")), None);
        let mut sh = client_hello("x.example");
        sh[0] = 2;
        assert_eq!(sni_from_handshake(&sh), None);
    }
}
