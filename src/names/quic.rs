//! The server name of a QUIC v1 connection, from the client's Initial packets (RFC 9000 §17.2.2,
//! RFC 9001 §5). Initial packets are encrypted, but with keys anyone can derive from the
//! Destination Connection ID the client chose (RFC 9001 §5.2): HKDF-SHA256 with the published
//! v1 salt gives the client's Initial secret, then its key, IV and header-protection key. The
//! header protection is removed with AES-128 (one block), the payload opened with
//! AES-128-GCM, and the CRYPTO frames carry the TLS ClientHello, read by [`super::tls`].
//!
//! A ClientHello with post-quantum key shares does not fit one Initial packet, and browsers send
//! its CRYPTO frames out of order: [`Reassembly`] keeps the fragments per connection id (a
//! fixed number of connections, a fixed number of bytes each) until the name can be read.
//!
//! Crypto is ring's (already under rustls here): `hkdf`, `aead::quic` for the header mask and
//! `aead` for AES-128-GCM. Nothing here does I/O.

use ring::aead::{self, quic};
use ring::hkdf;

/// RFC 9001 §5.2: the v1 Initial salt.
const INITIAL_SALT: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const VERSION_1: u32 = 1;
/// Bytes of the AES-GCM tag.
const TAG: usize = 16;
/// Connection ids are at most 20 bytes in v1 (RFC 9000 §17.2).
const MAX_CID: usize = 20;
/// Connections whose ClientHello is being reassembled at once.
pub const MAX_PENDING: usize = 64;
/// CRYPTO bytes kept per connection: a ClientHello is 0.3–2 KB; the SNI sits in the first few.
const MAX_CRYPTO: usize = 8192;

/// The client's Initial keys for one destination connection id.
struct Keys {
    aead: aead::LessSafeKey,
    iv: [u8; 12],
    hp: quic::HeaderProtectionKey,
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-Expand-Label of TLS 1.3 (RFC 8446 §7.1) with an empty context.
fn expand_label(prk: &hkdf::Prk, label: &[u8], out: &mut [u8]) -> Option<()> {
    let len = u16::try_from(out.len()).ok()?.to_be_bytes();
    let label_len = [u8::try_from(6 + label.len()).ok()?];
    let info: [&[u8]; 5] = [&len, &label_len, b"tls13 ", label, &[0]];
    prk.expand(&info, Len(out.len())).ok()?.fill(out).ok()
}

impl Keys {
    fn client(dcid: &[u8]) -> Option<Keys> {
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, &INITIAL_SALT).extract(dcid);
        let mut secret = [0u8; 32];
        expand_label(&initial, b"client in", &mut secret)?;
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&prk, b"quic key", &mut key)?;
        expand_label(&prk, b"quic iv", &mut iv)?;
        expand_label(&prk, b"quic hp", &mut hp)?;
        Some(Keys {
            aead: aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &key).ok()?),
            iv,
            hp: quic::HeaderProtectionKey::new(&quic::AES_128, &hp).ok()?,
        })
    }
}

/// One client Initial packet, decrypted.
#[derive(Debug, PartialEq, Eq)]
pub struct Initial {
    /// The Destination Connection ID (the key of the connection's reassembly).
    pub dcid: Vec<u8>,
    /// CRYPTO frames as (stream offset, bytes).
    pub crypto: Vec<(u64, Vec<u8>)>,
}

/// The client Initial packets of one UDP datagram (several may be coalesced, RFC 9000 §12.2),
/// decrypted with the keys of their Destination Connection ID. Anything that is not a v1
/// Initial, or does not decrypt (a server's Initial, garbage), is skipped.
pub fn initials(datagram: &[u8]) -> Vec<Initial> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while let Some((packet, next)) = split_long(rest) {
        if let Some(i) = open_initial(packet) {
            out.push(i);
        }
        rest = next;
    }
    out
}

/// The first long-header packet of `b` and what follows it.
fn split_long(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let first = *b.first()?;
    if first & 0xc0 != 0xc0 {
        return None;
    }
    let h = long_header(b)?;
    let end = h.pn_offset.checked_add(usize::try_from(h.length).ok()?)?;
    (end <= b.len()).then(|| b.split_at(end))
}

struct LongHeader {
    version: u32,
    kind: u8,
    dcid: (usize, usize),
    pn_offset: usize,
    /// The Length field: packet number and payload.
    length: u64,
}

fn long_header(b: &[u8]) -> Option<LongHeader> {
    let first = *b.first()?;
    let version = u32::from_be_bytes(b.get(1..5)?.try_into().ok()?);
    let dlen = usize::from(*b.get(5)?);
    if dlen > MAX_CID {
        return None;
    }
    let dcid = (6, 6 + dlen);
    let slen = usize::from(*b.get(dcid.1)?);
    if slen > MAX_CID {
        return None;
    }
    let mut at = dcid.1 + 1 + slen;
    let kind = (first >> 4) & 0x3;
    if version == VERSION_1 && kind == 0 {
        let (token_len, n) = varint(b.get(at..)?)?;
        at = at
            .checked_add(n)?
            .checked_add(usize::try_from(token_len).ok()?)?;
    }
    let (length, n) = varint(b.get(at..)?)?;
    Some(LongHeader {
        version,
        kind,
        dcid,
        pn_offset: at + n,
        length,
    })
}

/// Removes the protection of one v1 Initial packet and reads its frames.
fn open_initial(packet: &[u8]) -> Option<Initial> {
    let h = long_header(packet)?;
    if h.version != VERSION_1 || h.kind != 0 {
        return None;
    }
    let dcid = packet.get(h.dcid.0..h.dcid.1)?.to_vec();
    let keys = Keys::client(&dcid)?;
    let sample = packet.get(h.pn_offset + 4..h.pn_offset + 4 + 16)?;
    let mask = keys.hp.new_mask(sample).ok()?;
    let first = packet[0] ^ (mask[0] & 0x0f);
    let pn_len = usize::from(first & 0x03) + 1;
    let mut header = packet.get(..h.pn_offset + pn_len)?.to_vec();
    header[0] = first;
    let mut pn = 0u64;
    for i in 0..pn_len {
        header[h.pn_offset + i] ^= mask[1 + i];
        pn = (pn << 8) | u64::from(header[h.pn_offset + i]);
    }
    let mut payload = packet.get(h.pn_offset + pn_len..)?.to_vec();
    if payload.len() < TAG {
        return None;
    }
    // The nonce is the IV XOR the packet number, right-aligned (RFC 9001 §5.3). A client's
    // first Initials are numbered from 0, so the truncated number is the full one.
    let mut nonce = keys.iv;
    for (n, p) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= p;
    }
    let plain = keys
        .aead
        .open_in_place(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(&header),
            &mut payload,
        )
        .ok()?;
    Some(Initial {
        dcid,
        crypto: crypto_frames(plain)?,
    })
}

/// The CRYPTO frames of an Initial payload. Only the frame types allowed in Initial packets
/// (RFC 9000 §12.4) are understood; any other ends the walk with what was read.
fn crypto_frames(mut p: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    while let Some((&kind, rest)) = p.split_first() {
        p = rest;
        match kind {
            0x00 | 0x01 => {} // PADDING, PING
            0x02 | 0x03 => {
                // ACK: largest, delay, range count, first range, ranges, [ECN counts].
                let mut fields = [0u64; 4];
                for f in fields.iter_mut() {
                    let (v, n) = varint(p)?;
                    *f = v;
                    p = p.get(n..)?;
                }
                let more = 2 * fields[2] + if kind == 0x03 { 3 } else { 0 };
                for _ in 0..more.min(1024) {
                    let (_, n) = varint(p)?;
                    p = p.get(n..)?;
                }
            }
            0x06 => {
                let (offset, n) = varint(p)?;
                p = p.get(n..)?;
                let (len, n) = varint(p)?;
                p = p.get(n..)?;
                let len = usize::try_from(len).ok()?;
                out.push((offset, p.get(..len)?.to_vec()));
                p = p.get(len..)?;
            }
            _ => break,
        }
    }
    Some(out)
}

/// A QUIC variable-length integer (RFC 9000 §16) and its length in bytes.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let n = 1usize << (first >> 6);
    let bytes = b.get(..n)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    Some((v, n))
}

/// CRYPTO stream fragments per connection until its ClientHello's SNI can be read. Bounded:
/// [`MAX_PENDING`] connections (the oldest is dropped for a new one) of [`MAX_CRYPTO`] bytes.
#[derive(Default)]
pub struct Reassembly {
    /// (client key, dcid) → the stream's first bytes, with a mask of which are filled.
    pending: Vec<Pending>,
}

struct Pending {
    key: (u64, Vec<u8>),
    bytes: Vec<u8>,
    filled: Vec<bool>,
}

/// What one datagram told about a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The SNI (the connection's entry is dropped).
    Name(String),
    /// A ClientHello without a server_name, or not a ClientHello: nothing to learn.
    NoName,
    /// More CRYPTO data is needed.
    Waiting,
}

impl Reassembly {
    /// Adds the CRYPTO frames of `initial`, sent by the client `client` (any key that tells
    /// clients apart, e.g. a hash of MAC and port), and reads the SNI once the stream's prefix
    /// holds it.
    pub fn add(&mut self, client: u64, initial: &Initial) -> Progress {
        let key = (client, initial.dcid.clone());
        let i = match self.pending.iter().position(|p| p.key == key) {
            Some(i) => i,
            None => {
                if self.pending.len() >= MAX_PENDING {
                    self.pending.remove(0);
                }
                self.pending.push(Pending {
                    key,
                    bytes: Vec::new(),
                    filled: Vec::new(),
                });
                self.pending.len() - 1
            }
        };
        let p = &mut self.pending[i];
        for (offset, data) in &initial.crypto {
            let Ok(start) = usize::try_from(*offset) else {
                continue;
            };
            if start >= MAX_CRYPTO {
                continue;
            }
            let end = (start + data.len()).min(MAX_CRYPTO);
            if p.bytes.len() < end {
                p.bytes.resize(end, 0);
                p.filled.resize(end, false);
            }
            p.bytes[start..end].copy_from_slice(&data[..end - start]);
            p.filled[start..end].iter_mut().for_each(|f| *f = true);
        }
        let prefix = p.filled.iter().take_while(|f| **f).count();
        let hs = &p.bytes[..prefix];
        let result = match super::tls::sni_from_handshake(hs) {
            Some(name) => Progress::Name(name),
            None if hs.first().is_some_and(|&t| t != 1) => Progress::NoName,
            // The whole message is there and has no name.
            None if hs.len() >= 4
                && usize::from(hs[1]) << 16 | usize::from(hs[2]) << 8 | usize::from(hs[3])
                    <= hs.len() - 4 =>
            {
                Progress::NoName
            }
            None if prefix >= MAX_CRYPTO => Progress::NoName,
            None => Progress::Waiting,
        };
        if result != Progress::Waiting {
            self.pending.remove(i);
        }
        result
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RFC 9001 Appendix A.1: the keys of DCID 0x8394c8f03e515708.
    #[test]
    fn the_rfc_9001_test_vector_keys() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        let initial = hkdf::Salt::new(hkdf::HKDF_SHA256, &INITIAL_SALT).extract(&dcid);
        let mut secret = [0u8; 32];
        expand_label(&initial, b"client in", &mut secret).unwrap();
        assert_eq!(
            hex(&secret),
            "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea"
        );
        let prk = hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, &secret);
        let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
        expand_label(&prk, b"quic key", &mut key).unwrap();
        expand_label(&prk, b"quic iv", &mut iv).unwrap();
        expand_label(&prk, b"quic hp", &mut hp).unwrap();
        assert_eq!(hex(&key), "1f369613dd76d5467730efcbe3b1a22d");
        assert_eq!(hex(&iv), "fa044b2f42a3fd3b46fb255c");
        assert_eq!(hex(&hp), "9f50449e04a0e810283a1e9933adedd2");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// Builds a protected client Initial (the inverse of [`open_initial`], for tests and the
    /// fuzz seeds): packet number `pn`, CRYPTO frames `frames`, padded to 1200 bytes.
    pub(crate) fn seal_initial(dcid: &[u8], pn: u8, frames: &[(u64, &[u8])]) -> Vec<u8> {
        let keys = Keys::client(dcid).unwrap();
        let mut payload = Vec::new();
        for (off, data) in frames {
            payload.push(0x06);
            payload.extend(encode_varint(*off));
            payload.extend(encode_varint(data.len() as u64));
            payload.extend(*data);
        }
        let mut header = vec![0xc0, 0, 0, 0, 1, dcid.len() as u8];
        header.extend(dcid);
        header.extend([0, 0]); // no source id, no token
        let pad = 1200usize.saturating_sub(header.len() + 2 + 1 + payload.len() + TAG);
        payload.extend(vec![0u8; pad]);
        let length = 1 + payload.len() + TAG;
        header.extend(((length as u16) | 0x4000).to_be_bytes());
        let pn_offset = header.len();
        header.push(pn);
        let mut nonce = keys.iv;
        nonce[11] ^= pn;
        keys.aead
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(&header),
                &mut payload,
            )
            .unwrap();
        let mut packet = header;
        packet.extend(payload);
        let mask = keys
            .hp
            .new_mask(&packet[pn_offset + 4..pn_offset + 20])
            .unwrap();
        packet[0] ^= mask[0] & 0x0f;
        packet[pn_offset] ^= mask[1];
        packet
    }

    fn encode_varint(v: u64) -> Vec<u8> {
        ((v as u32) | 0x8000_0000).to_be_bytes().to_vec()
    }

    #[test]
    fn a_sealed_initial_opens_and_gives_the_name() {
        let hello = crate::names::tls::tests::client_hello("quic.example");
        let dcid = [1, 2, 3, 4, 5, 6, 7, 8];
        let packet = seal_initial(&dcid, 0, &[(0, &hello)]);
        let got = initials(&packet);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].crypto, [(0, hello.clone())]);
        let mut r = Reassembly::default();
        assert_eq!(r.add(7, &got[0]), Progress::Name("quic.example".into()));
    }

    #[test]
    fn fragments_out_of_order_over_two_packets() {
        let hello = crate::names::tls::tests::client_hello("split.example");
        let dcid = [9; 12];
        let (a, b) = hello.split_at(40);
        let p1 = seal_initial(&dcid, 0, &[(40, b)]);
        let p2 = seal_initial(&dcid, 1, &[(0, a)]);
        let mut r = Reassembly::default();
        assert_eq!(r.add(1, &initials(&p1)[0]), Progress::Waiting);
        assert_eq!(
            r.add(1, &initials(&p2)[0]),
            Progress::Name("split.example".into())
        );
        assert!(r.pending.is_empty());
    }

    #[test]
    fn corrupt_or_foreign_packets_give_nothing() {
        let hello = crate::names::tls::tests::client_hello("x.example");
        let packet = seal_initial(&[5; 8], 0, &[(0, &hello)]);
        for i in [0usize, 5, 20, 100, packet.len() - 1] {
            let mut p = packet.clone();
            p[i] ^= 0x40;
            assert!(initials(&p).is_empty(), "byte {i}");
        }
        for cut in 0..packet.len() {
            assert!(initials(&packet[..cut]).is_empty());
        }
    }

    #[test]
    fn pending_connections_are_bounded() {
        let hello = crate::names::tls::tests::client_hello("x.example");
        let mut r = Reassembly::default();
        for i in 0..(MAX_PENDING as u64 * 3) {
            let init = Initial {
                dcid: i.to_be_bytes().to_vec(),
                crypto: vec![(10, hello[10..].to_vec())],
            };
            assert_eq!(r.add(i, &init), Progress::Waiting);
        }
        assert_eq!(r.pending.len(), MAX_PENDING);
    }
}
