//! Device-supplied strings (host names, vendor classes, service names) made safe to keep.
//!
//! It owns the one rule for turning bytes a device announced into a stored string: capped in
//! length, lossless where possible (valid UTF-8 is kept as is; anything else is escaped as
//! `\xNN`, and a backslash as `\\`, so the original bytes can always be recovered), and never
//! interpreted. It must never drop a string because it is odd, and never unescape or render
//! markup: HTML escaping is the web layer's job, at output time.

/// The most bytes of one announced string that are kept. DNS names are at most 255 bytes on the
/// wire and DHCP options at most 255, so this keeps every legitimate value whole.
pub const MAX_TEXT_BYTES: usize = 255;

/// Escapes `raw` (at most its first [`MAX_TEXT_BYTES`] bytes) into a printable, lossless string.
///
/// Control characters (C0, DEL and C1, NUL included) and invalid UTF-8 become `\xNN` per byte,
/// so a stored name can neither break a terminal, a log line or a CSV row, nor hide a
/// difference between two names. Trailing NULs are dropped first: DHCP clients often pad names
/// with them and they carry no meaning.
pub fn escape(raw: &[u8]) -> String {
    let mut raw = &raw[..raw.len().min(MAX_TEXT_BYTES)];
    while let [rest @ .., 0] = raw {
        raw = rest;
    }
    let mut out = String::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    push_hex(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            push_hex(&mut out, b);
        }
    }
    out
}

/// The bytes an [`escape`]d string came from (for tests and for tools that need the original).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if b.get(i + 1) == Some(&b'x')
                && let Some(h) = b.get(i + 2..i + 4)
                && let Ok(h) = std::str::from_utf8(h)
                && let Ok(v) = u8::from_str_radix(h, 16)
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn push_hex(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('\\');
    out.push('x');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Lower-case hex of an opaque identifier (DHCP client id, DUID), capped at 64 bytes.
pub fn hex_id(raw: &[u8]) -> String {
    let raw = &raw[..raw.len().min(64)];
    let mut s = String::with_capacity(raw.len() * 2);
    for b in raw {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_hostile_names_are_kept_verbatim_when_valid() {
        assert_eq!(escape(b"living-room-tv"), "living-room-tv");
        // Markup and quotes are data, not code: kept as they are, escaped only when rendered.
        let s = escape(b"<script>alert(1)</script>");
        assert_eq!(s, "<script>alert(1)</script>");
        assert_eq!(escape(b"a\"b'c"), "a\"b'c");
        assert_eq!(escape("Küche 📺".as_bytes()), "Küche 📺");
    }

    #[test]
    fn nul_control_and_invalid_utf8_are_escaped_losslessly() {
        let raw = b"a\0b\x1b[31m\xff\xfe\\c\n";
        let s = escape(raw);
        assert_eq!(s, "a\\x00b\\x1b[31m\\xff\\xfe\\\\c\\x0a");
        assert_eq!(unescape(&s), raw);
        assert!(!s.chars().any(char::is_control));
        // C1 controls are control characters too.
        assert_eq!(escape("x\u{85}".as_bytes()), "x\\xc2\\x85");
        // Trailing NUL padding is dropped, embedded ones kept.
        assert_eq!(escape(b"phone\0\0"), "phone");
    }

    #[test]
    fn long_names_are_capped_at_255_bytes_without_splitting_a_byte() {
        let long = vec![b'a'; 1000];
        assert_eq!(escape(&long).len(), MAX_TEXT_BYTES);
        // A multi-byte character cut by the cap becomes escaped bytes, never a panic.
        let mut v = vec![b'a'; 254];
        v.extend_from_slice("é".as_bytes());
        let s = escape(&v);
        assert!(s.ends_with("\\xc3"), "{s}");
        assert_eq!(unescape(&s), &v[..255]);
    }

    #[test]
    fn hex_ids_are_lower_case_and_capped() {
        assert_eq!(hex_id(&[1, 0xab, 0xcd]), "01abcd");
        assert_eq!(hex_id(&[0u8; 100]).len(), 128);
    }
}
