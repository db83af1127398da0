use super::*;

fn el(id: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![id, body.len() as u8];
    v.extend_from_slice(body);
    v
}

fn ht_op(primary: u8, info: u8) -> Vec<u8> {
    let mut b = vec![0u8; 22];
    b[0] = primary;
    b[1] = info;
    el(EID_HT_OP, &b)
}

/// RSN element body with the given 00-0F-AC AKM types, CCMP everywhere.
fn rsn(akms: &[u8]) -> Vec<u8> {
    let mut b = vec![1, 0, 0x00, 0x0f, 0xac, 4, 1, 0, 0x00, 0x0f, 0xac, 4];
    b.extend_from_slice(&(akms.len() as u16).to_le_bytes());
    for a in akms {
        b.extend_from_slice(&[0x00, 0x0f, 0xac, *a]);
    }
    b.extend_from_slice(&[0, 0]);
    el(EID_RSN, &b)
}

fn wpa(akm: u8) -> Vec<u8> {
    let mut b = vec![0x00, 0x50, 0xf2, 1, 1, 0, 0x00, 0x50, 0xf2, 2, 1, 0];
    b.extend_from_slice(&[0x00, 0x50, 0xf2, 2, 1, 0, 0x00, 0x50, 0xf2, akm]);
    el(EID_VENDOR, &b)
}

/// A radiotap header (flags, rate, channel, signal) + beacon with `elements`.
fn beacon(freq: u16, signal: i8, privacy: bool, elements: &[u8]) -> Vec<u8> {
    let present: u32 = 1 << 1 | 1 << 2 | 1 << 3 | 1 << 5;
    let mut f = vec![0, 0, 0, 0];
    f.extend_from_slice(&present.to_le_bytes());
    f.extend_from_slice(&[0x00, 12]);
    f.extend_from_slice(&freq.to_le_bytes());
    f.extend_from_slice(&0u16.to_le_bytes());
    f.push(signal as u8);
    let len = f.len() as u16;
    f[2..4].copy_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&[0x80, 0x00, 0, 0]);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&[0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    f.extend_from_slice(&[0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    f.extend_from_slice(&[0x10, 0x00]);
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&100u16.to_le_bytes());
    f.extend_from_slice(&(if privacy { 0x0011u16 } else { 0x0001 }).to_le_bytes());
    f.extend_from_slice(elements);
    f
}

fn decode(data: &[u8]) -> WifiFrame {
    let mut out = WifiFrame::EMPTY;
    assert!(decode_into(
        WifiLink::Radiotap,
        7,
        data,
        data.len() as u32,
        &mut out
    ));
    out
}

#[test]
fn beacon_with_ssid_channel_and_wpa2() {
    let mut e = el(0, b"home");
    e.extend(el(EID_DS, &[6]));
    e.extend(rsn(&[2]));
    let f = decode(&beacon(2437, -50, true, &e));
    assert_eq!(f.kind, Kind::Beacon);
    assert_eq!(f.bssid, MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]));
    assert_eq!(f.ssid.unwrap().as_bytes(), b"home");
    assert_eq!(f.channel, Channel::new20(Band::G2_4, 6));
    assert_eq!(f.security, Security::Wpa2Psk);
    assert_eq!(f.signal_dbm, Some(-50));
    assert!(f.airtime_us.is_some() && !f.elements_truncated);
}

#[test]
fn ssid_element_edge_cases() {
    // Hidden: empty, or zero-filled to the real length.
    let e = Elements::parse(&el(0, b""));
    assert!(e.ssid.unwrap().is_hidden());
    let e = Elements::parse(&el(0, &[0; 7]));
    assert!(e.ssid.unwrap().is_hidden() && e.ssid.unwrap().as_bytes().len() == 7);
    // Exactly 32 arbitrary bytes are an SSID.
    let raw: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0x80).collect();
    let e = Elements::parse(&el(0, &raw));
    assert_eq!(e.ssid.unwrap().as_bytes(), &raw[..]);
    // 33 bytes are not: ignored and noted, and a second SSID element does not replace it.
    let mut b = el(0, &[b'a'; 33]);
    b.extend(el(0, b"second"));
    let e = Elements::parse(&b);
    assert!(e.ssid.is_none() && e.ssid_oversized && !e.truncated);
    // Truncated: the length runs past the data.
    let mut b = el(0, b"abcdef");
    b.truncate(5);
    let e = Elements::parse(&b);
    assert!(e.ssid.is_none() && e.truncated);
    // A lone ID byte with no length.
    let mut b = el(0, b"ok");
    b.push(3);
    let e = Elements::parse(&b);
    assert_eq!(e.ssid.unwrap().as_bytes(), b"ok");
    assert!(e.truncated);
}

#[test]
fn safe_display_form_is_inert_and_unambiguous() {
    let s = |b: &[u8]| Ssid::new(b).unwrap().display();
    assert_eq!(s(b"Caf\xc3\xa9 <b>"), "Café <b>");
    assert_eq!(s(b"a\nb\x1b[31m\x00"), "a\\u{000a}b\\u{001b}[31m\\u{0000}");
    assert_eq!(s(b"\xff\xfe ok"), "\\xff\\xfe ok");
    assert_eq!(s(b"back\\slash"), "back\\\\slash");
    // Right-to-left override would make "gnp.exe" read as "exe.png".
    assert_eq!(s("x\u{202e}gnp".as_bytes()), "x\\u{202e}gnp");
    assert_eq!(s(b"\xc2\x85"), "\\u{0085}", "C1 control NEL");
    for b in 0..=255u8 {
        let d = s(&[b; 32]);
        assert!(!d.chars().any(crate::visible::is_unsafe_char), "{b}: {d:?}");
    }
    assert_eq!(Ssid::new(b"\x00ab").unwrap().to_hex(), "006162");
}

#[test]
fn ds_parameter_set_truncated_and_oversized() {
    assert_eq!(parse_ds(&[]), None);
    assert_eq!(parse_ds(&[11]), Some(11));
    assert_eq!(parse_ds(&[11, 99, 99]), Some(11), "extra bytes ignored");
    assert_eq!(parse_ds(&[0]), None);
    // Element truncated inside the frame: the channel falls back to the radio's.
    let mut b = el(EID_DS, &[6]);
    b.truncate(2);
    let e = Elements::parse(&b);
    assert!(e.truncated && e.ds_channel.is_none());
    assert_eq!(e.channel(Some(2462)), Channel::new20(Band::G2_4, 11));
}

#[test]
fn ht_operation_40_mhz_above_and_below_truncated_and_oversized() {
    let e = Elements::parse(&ht_op(36, 0x05));
    let c = e.channel(Some(5180)).unwrap();
    assert_eq!((c.number, c.width_mhz, c.center_mhz), (36, 40, 5190));
    assert_eq!(c.span(), (5170, 5210));
    let e = Elements::parse(&ht_op(11, 0x07));
    let c = e.channel(Some(2462)).unwrap();
    assert_eq!((c.number, c.width_mhz, c.center_mhz), (11, 40, 2452));
    // Offset set but the STA width bit clear: 20 MHz.
    let e = Elements::parse(&ht_op(6, 0x01));
    assert_eq!(e.channel(None).unwrap().width_mhz, 20);
    // 21 bytes: malformed, ignored.
    assert_eq!(HtOperation::parse(&[6; 21]), None);
    // Oversized: the defined fields still read.
    let mut long = vec![0u8; 40];
    long[0] = 1;
    long[1] = 0x05;
    assert_eq!(
        HtOperation::parse(&long).unwrap().secondary_offset(),
        Some(1)
    );
    // A 40 MHz span that would leave the band (channel 13 above) stays 20 MHz.
    let e = Elements::parse(&ht_op(13, 0x05));
    assert_eq!(e.channel(None).unwrap().width_mhz, 20);
}

#[test]
fn vht_operation_80_and_160_truncated_and_oversized() {
    let mut b = ht_op(36, 0x05);
    b.extend(el(EID_VHT_OP, &[1, 42, 0, 0, 0]));
    let c = Elements::parse(&b).channel(Some(5180)).unwrap();
    assert_eq!((c.number, c.width_mhz, c.center_mhz), (36, 80, 5210));
    // 160 MHz, current form (CCFS1 = centre, 8 channels from CCFS0).
    let mut b = ht_op(44, 0x05);
    b.extend(el(EID_VHT_OP, &[1, 42, 50, 0, 0, 0xde, 0xad]));
    let c = Elements::parse(&b).channel(None).unwrap();
    assert_eq!(
        (c.width_mhz, c.center_mhz, c.span()),
        (160, 5250, (5170, 5330))
    );
    // Width 0: HT decides (40 MHz here).
    let mut b = ht_op(36, 0x05);
    b.extend(el(EID_VHT_OP, &[0, 0, 0, 0, 0]));
    assert_eq!(Elements::parse(&b).channel(None).unwrap().width_mhz, 40);
    // A centre that does not cover the primary is malformed: 20 MHz, not a wrong span.
    let mut b = el(EID_DS, &[149]);
    b.extend(el(EID_VHT_OP, &[1, 42, 0, 0, 0]));
    assert_eq!(
        Elements::parse(&b).channel(Some(5745)).unwrap().width_mhz,
        20
    );
    // 4 bytes: ignored.
    assert_eq!(VhtOperation::parse(&[1, 42, 0, 0]), None);
}

#[test]
fn he_operation_six_ghz_and_embedded_vht() {
    // Params: bit 17 (6 GHz info present). BSS colour, MCS set, then 6 GHz info: primary 37,
    // control width 2 (80 MHz), CCFS0 39.
    let mut he = vec![EXT_HE_OP, 0x00, 0x00, 0x02, 0x01, 0xfc, 0xff];
    he.extend_from_slice(&[37, 0x02, 39, 0, 6]);
    let e = Elements::parse(&el(EID_EXTENSION, &he));
    let c = e.channel(Some(6135)).unwrap();
    assert_eq!(
        (c.band, c.number, c.width_mhz, c.center_mhz),
        (Band::G6, 37, 80, 6145)
    );
    // Truncated 6 GHz info: the element is ignored, the radio frequency decides.
    let e = Elements::parse(&el(EID_EXTENSION, &he[..10]));
    assert!(e.he.is_none());
    assert_eq!(e.channel(Some(6135)).unwrap().band, Band::G6);
    // VHT info inside HE (bit 14) and a co-hosted BSS byte (bit 15) before the 6 GHz part.
    let he = [EXT_HE_OP, 0x00, 0xc0, 0x00, 0x01, 0xfc, 0xff, 1, 155, 0, 7];
    let mut b = el(EID_DS, &[149]);
    b.extend(el(EID_EXTENSION, &he));
    let c = Elements::parse(&b).channel(Some(5745)).unwrap();
    assert_eq!((c.width_mhz, c.center_mhz), (80, 5775));
    // Oversized HE element (trailing bytes) still reads.
    let mut long = he.to_vec();
    long.extend_from_slice(&[0xaa; 20]);
    assert!(
        Elements::parse(&el(EID_EXTENSION, &long))
            .he
            .unwrap()
            .vht
            .is_some()
    );
}

#[test]
fn security_from_rsn_and_wpa() {
    let sec = |e: Vec<u8>, privacy| Elements::parse(&e).security(privacy);
    assert_eq!(sec(vec![], false), Security::Open);
    assert_eq!(sec(vec![], true), Security::Wep);
    assert_eq!(sec(rsn(&[2]), true), Security::Wpa2Psk);
    assert_eq!(sec(rsn(&[8]), true), Security::Wpa3Sae);
    assert_eq!(sec(rsn(&[2, 8]), true), Security::Wpa2Wpa3);
    assert_eq!(sec(rsn(&[1]), true), Security::Enterprise);
    assert_eq!(sec(rsn(&[5, 2]), true), Security::Enterprise);
    assert_eq!(sec(rsn(&[18]), true), Security::Owe);
    assert_eq!(sec(rsn(&[63]), true), Security::Unknown);
    assert_eq!(sec(wpa(2), true), Security::WpaPsk);
    assert_eq!(sec(wpa(1), true), Security::Enterprise);
    let mut both = wpa(2);
    both.extend(rsn(&[2]));
    assert_eq!(sec(both, true), Security::Wpa2Psk, "RSN wins over WPA");
    // A vendor element that is not WPA is not WPA.
    assert_eq!(
        sec(el(EID_VENDOR, &[0x00, 0x50, 0xf2, 2, 1, 0]), true),
        Security::Wep
    );
}

#[test]
fn rsn_truncated_and_oversized() {
    // Ends after the group cipher: the AKM list defaults to 802.1X (802.11-2020 9.4.2.24.1).
    assert_eq!(
        Akms::parse_rsn(&[1, 0, 0x00, 0x0f, 0xac, 4])
            .unwrap()
            .classify_rsn(),
        Security::Enterprise
    );
    // AKM count says 2, one suite present: the complete one is read.
    let b = [
        1, 0, 0x00, 0x0f, 0xac, 4, 1, 0, 0x00, 0x0f, 0xac, 4, 2, 0, 0x00, 0x0f, 0xac, 8, 0x00,
    ];
    assert_eq!(
        Akms::parse_rsn(&b).unwrap().classify_rsn(),
        Security::Wpa3Sae
    );
    // Pairwise count pointing far past the end.
    let b = [1, 0, 0x00, 0x0f, 0xac, 4, 0xff, 0xff, 0x00];
    assert!(Akms::parse_rsn(&b).is_some());
    // Wrong version or no version: not an RSN element.
    assert_eq!(Akms::parse_rsn(&[2, 0]), None);
    assert_eq!(Akms::parse_rsn(&[1]), None);
    // Oversized: trailing bytes (PMKIDs, group management cipher, junk) ignored.
    let mut b = rsn(&[2]);
    b[1] += 30;
    b.extend_from_slice(&[0x77; 30]);
    assert_eq!(Elements::parse(&b).security(true), Security::Wpa2Psk);
    // Element cut by the capture: ignored, and the privacy bit says "something": WEP is what
    // the bits alone say, and the truncation is flagged.
    let mut b = rsn(&[2]);
    b.truncate(10);
    let e = Elements::parse(&b);
    assert!(e.truncated && e.rsn.is_none());
    // Foreign-OUI suites are noted, not misread.
    let b = [
        1, 0, 0x00, 0x0f, 0xac, 4, 1, 0, 0x00, 0x0f, 0xac, 4, 1, 0, 0x00, 0x40, 0x96, 0,
    ];
    let a = Akms::parse_rsn(&b).unwrap();
    assert!(a.foreign && a.classify_rsn() == Security::Unknown);
}

#[test]
fn probe_request_client_and_wildcard() {
    let mut f = beacon(2412, -70, false, &[]);
    let hdr = usize::from(u16::from_le_bytes([f[2], f[3]]));
    f[hdr] = 0x40;
    f[hdr + 10] = 0xda; // locally administered: a randomized address
    f.truncate(hdr + 24);
    f.extend(el(0, b"cafe-wifi"));
    let d = decode(&f);
    assert_eq!(d.kind, Kind::ProbeRequest);
    assert!(d.transmitter.unwrap().is_locally_administered());
    assert_eq!(d.ssid.unwrap().as_bytes(), b"cafe-wifi");
    assert_eq!(d.channel, None);
}

#[test]
fn fcs_is_stripped_only_when_the_record_is_whole() {
    let mut e = el(0, b"net");
    e.extend(el(EID_DS, &[1]));
    let mut f = beacon(2412, -40, false, &e);
    f[8] = 0x10; // radiotap Flags: FCS at end
    f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let d = decode(&f);
    assert_eq!(d.ssid.unwrap().as_bytes(), b"net");
    assert!(!d.elements_truncated, "the FCS was not read as an element");
    // Snapped short of the FCS: the element list simply ends early.
    let mut out = WifiFrame::EMPTY;
    assert!(decode_into(
        WifiLink::Radiotap,
        0,
        &f[..f.len() - 6],
        f.len() as u32,
        &mut out
    ));
    assert_eq!(out.ssid.unwrap().as_bytes(), b"net");
    assert!(out.elements_truncated);
}

#[test]
fn every_prefix_of_every_frame_decodes_without_panic() {
    let mut e = el(0, b"x");
    e.extend(el(EID_DS, &[1]));
    e.extend(ht_op(1, 5));
    e.extend(el(EID_VHT_OP, &[1, 42, 50, 0, 0]));
    e.extend(rsn(&[2, 8]));
    e.extend(wpa(2));
    e.extend(el(
        EID_EXTENSION,
        &[EXT_HE_OP, 0, 0xc0, 2, 1, 0, 0, 1, 42, 0, 9, 1, 2, 3, 4, 5],
    ));
    let f = beacon(2412, -40, true, &e);
    let mut out = WifiFrame::EMPTY;
    for cut in 0..=f.len() {
        for link in [WifiLink::Radiotap, WifiLink::Ieee80211] {
            decode_into(link, 0, &f[..cut], f.len() as u32, &mut out);
        }
    }
    // Every byte value at every position of the body.
    let mut g = f.clone();
    for i in 0..g.len() {
        for v in [0u8, 1, 0x7f, 0x80, 0xff] {
            let old = g[i];
            g[i] = v;
            decode_into(WifiLink::Radiotap, 0, &g, g.len() as u32, &mut out);
            g[i] = old;
        }
    }
}

#[test]
fn band_and_channel_arithmetic() {
    assert_eq!(Band::of_freq(2412), Some((Band::G2_4, 1)));
    assert_eq!(Band::of_freq(2484), Some((Band::G2_4, 14)));
    assert_eq!(Band::of_freq(5180), Some((Band::G5, 36)));
    assert_eq!(Band::of_freq(5825), Some((Band::G5, 165)));
    assert_eq!(Band::of_freq(5955), Some((Band::G6, 1)));
    assert_eq!(Band::of_freq(5935), Some((Band::G6, 2)));
    assert_eq!(Band::of_freq(2413), None);
    assert_eq!(Band::of_freq(0), None);
    for band in [Band::G2_4, Band::G5, Band::G6] {
        for ch in 0..=255u8 {
            if let Some(f) = band.freq_of(ch) {
                assert_eq!(Band::of_freq(f), Some((band, ch)), "{band:?} {ch}");
            }
        }
    }
}
