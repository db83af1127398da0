use super::*;
use crate::capture::ieee80211::WifiFrame;

pub(crate) fn frame(kind: Kind, bssid: u8, ssid: &[u8], ts_s: i64, dbm: i8) -> WifiFrame {
    WifiFrame {
        ts: ts_s * 1_000_000_000,
        wire_len: 200,
        heard_mhz: Some(2437),
        signal_dbm: Some(dbm),
        airtime_us: Some(100),
        kind,
        transmitter: Some(MacAddr([0x00, 0x11, 0x22, 0, 0, bssid])),
        bssid: MacAddr([0x00, 0x11, 0x22, 0, 0, bssid]),
        ssid: Ssid::new(ssid),
        channel: Channel::new20(Band::G2_4, 6),
        security: Security::Wpa2Psk,
        ..WifiFrame::EMPTY
    }
}

#[test]
fn aps_collect_signal_per_minute_and_reveal_hidden_names() {
    let mut c = Collector::new();
    c.add(&frame(Kind::Beacon, 1, b"", 0, -50));
    c.add(&frame(Kind::Beacon, 1, b"", 30, -60));
    c.add(&frame(Kind::ProbeResponse, 1, b"secret", 61, -40));
    c.add(&frame(Kind::Beacon, 1, b"", 62, -45));
    let ap = &c.aps[&MacAddr([0x00, 0x11, 0x22, 0, 0, 1])];
    assert!(ap.hidden);
    assert_eq!(ap.ssid.unwrap().as_bytes(), b"secret");
    assert_eq!((ap.beacons, ap.probe_responses), (3, 1));
    assert_eq!(ap.minutes.len(), 2);
    assert_eq!(ap.minutes[&0].sum_dbm, -110);
    let s = ap.signal();
    assert_eq!((s.min_dbm, s.max_dbm, s.samples), (-60, -40, 4));
    assert_eq!(s.mean_dbm(), Some(-48.75));
    assert_eq!((ap.first_seen, ap.last_seen), (0, 62_000_000_000));
}

#[test]
fn probes_channels_and_bad_checksums() {
    let mut c = Collector::new();
    let mut p = frame(Kind::ProbeRequest, 9, b"cafe", 5, -70);
    p.transmitter = Some(MacAddr([0xda, 0, 0, 0, 0, 9]));
    c.add(&p);
    c.add(&p);
    p.ssid = Ssid::new(b"");
    c.add(&p);
    let mut bad = frame(Kind::Beacon, 2, b"x", 6, -30);
    bad.bad_fcs = true;
    c.add(&bad);
    let client = &c.clients[&MacAddr([0xda, 0, 0, 0, 0, 9])];
    assert_eq!(client.probes, 3);
    assert_eq!(
        client.ssids.len(),
        1,
        "duplicates and wildcards are not listed"
    );
    assert!(c.aps.is_empty(), "a bad-FCS beacon creates no AP");
    let cell = c.channels[&(0, 2437)];
    assert_eq!(
        (cell.frames, cell.airtime_us, cell.strongest_dbm),
        (4, 400, Some(-30))
    );
    let s = c.survey();
    assert_eq!(s.channels.len(), 1);
    assert_eq!(s.channels[0].listened_us, 1_000_000);
    assert_eq!(s.channels[0].airtime_share(), Some(0.0004));
}

#[test]
fn floods_are_bounded() {
    let mut c = Collector::new();
    // A flood within one minute: the rate bound refuses what exceeds it.
    let n = MAX_NEW_CLIENTS_PER_MINUTE + 10;
    for i in 0..n {
        let mut f = frame(Kind::Beacon, 0, b"flood", 0, -50);
        f.bssid = MacAddr::from_u64(0x0011_2200_0000 + u64::from(i));
        c.add(&f);
        let mut p = frame(Kind::ProbeRequest, 0, b"x", 0, -50);
        p.transmitter = Some(MacAddr::from_u64(0x0211_2200_0000 + u64::from(i)));
        for k in 0..20u8 {
            p.ssid = Ssid::new(&[b'a' + k]);
            c.add(&p);
        }
    }
    assert_eq!(c.aps.len() as u32, MAX_NEW_APS_PER_MINUTE);
    assert_eq!(c.clients.len() as u32, MAX_NEW_CLIENTS_PER_MINUTE);
    assert_eq!(
        c.refused,
        u64::from(n - MAX_NEW_APS_PER_MINUTE) + 10 * 20,
        "each refused frame counts"
    );
    assert!(
        c.clients
            .values()
            .all(|cl| cl.ssids.len() == MAX_SSIDS_PER_CLIENT)
    );
    // A slow flood over many minutes stops at the memory bound.
    let mut c = Collector::new();
    for i in 0..(MAX_APS as u32 + 10) {
        let mut f = frame(Kind::Beacon, 0, b"slow", i64::from(i / 200) * 60, -50);
        f.bssid = MacAddr::from_u64(0x0011_2200_0000 + u64::from(i));
        c.add(&f);
    }
    assert_eq!((c.aps.len(), c.refused), (MAX_APS, 10));
}

#[test]
fn a_day_of_channel_hopping_is_counted_exactly_and_only_then_bounded() {
    let mut c = Collector::new();
    let freqs: Vec<u16> = (1..=13u16)
        .map(|n| 2407 + 5 * n)
        .chain((0..25u16).map(|i| 5180 + 20 * i))
        .chain((0..26u16).map(|i| 5955 + 20 * i))
        .collect();
    assert_eq!(freqs.len(), 64);
    let mut sent = 0u64;
    for minute in 0..1440i64 {
        for (k, &mhz) in freqs.iter().enumerate() {
            let mut p = frame(Kind::ProbeRequest, 0, b"", minute * 60 + k as i64 % 60, -60);
            p.heard_mhz = Some(mhz);
            c.add(&p);
            sent += 1;
        }
    }
    let heard: u64 = c.survey().channels.iter().map(|ch| ch.frames_heard).sum();
    assert_eq!((c.refused, c.refused_cells), (0, 0));
    assert_eq!(
        heard, sent,
        "every frame heard on a channel is in frames_heard"
    );
    // Beyond a day of 64 channels: refused and counted, never silently short.
    let mut p = frame(Kind::ProbeRequest, 0, b"", 1440 * 60, -60);
    p.heard_mhz = Some(2412);
    c.add(&p);
    assert_eq!(c.refused_cells, 1);
    // A frequency that is no channel takes no cell (and would have no report row).
    let mut odd = frame(Kind::ProbeRequest, 0, b"", 0, -60);
    odd.heard_mhz = Some(2413);
    c.add(&odd);
    assert_eq!(c.refused_cells, 1);
    assert_eq!(c.channels.len(), MAX_CHANNEL_CELLS);
}

#[test]
fn group_source_addresses_are_kept_as_ethernet_replay_keeps_them() {
    let mut c = Collector::new();
    let group = MacAddr([0x01, 0x00, 0x5e, 0, 0, 0xfb]);
    let mut p = frame(Kind::ProbeRequest, 0, b"cafe", 0, -60);
    p.transmitter = Some(group);
    c.add(&p);
    let mut b = frame(Kind::Beacon, 0, b"odd", 0, -60);
    b.bssid = MacAddr([0x03, 0, 0, 0, 0, 1]);
    c.add(&b);
    assert_eq!(c.clients[&group].probes, 1);
    assert_eq!(c.aps[&MacAddr([0x03, 0, 0, 0, 0, 1])].beacons, 1);
}

#[test]
fn survey_sorts_and_counts_overlaps() {
    let mut c = Collector::new();
    c.add(&frame(Kind::Beacon, 1, b"weak", 0, -80));
    c.add(&frame(Kind::Beacon, 2, b"strong", 0, -30));
    let mut f = frame(Kind::Beacon, 3, b"wide", 0, -60);
    f.channel = Some(Channel {
        band: Band::G2_4,
        number: 1,
        width_mhz: 40,
        center_mhz: 2422,
    });
    c.add(&f);
    let s = c.survey();
    let names: Vec<&[u8]> = s
        .aps
        .iter()
        .map(|a| a.ssid.as_ref().unwrap().as_bytes())
        .collect();
    assert_eq!(names, [&b"strong"[..], b"wide", b"weak"]);
    let ch = |n: u8| s.channels.iter().find(|c| c.number == n).unwrap();
    // The 40 MHz network on 1 (2402..2442) reaches into 6 (2427..2447).
    assert_eq!((ch(6).aps, ch(6).overlapping_aps), (2, 3));
    assert_eq!((ch(1).aps, ch(1).overlapping_aps), (1, 1));
    let json = s.to_json(Some(b"strong"));
    assert_eq!(json["access_points"][0]["ours"], true);
    assert_eq!(json["access_points"][0]["ssid"]["hex"], "7374726f6e67");
}

#[test]
fn a_frame_whose_elements_overrun_it_never_overrides_a_well_formed_one() {
    let bssid = MacAddr([0x00, 0x11, 0x22, 0, 0, 7]);
    // A broken beacon (its RSN element unreadable, so it reads as WEP) between two well-formed
    // probe responses, and last: WPA2 stays.
    let broken = |ts| WifiFrame {
        security: Security::Wep,
        elements_truncated: true,
        ..frame(Kind::Beacon, 7, b"garbl", ts, -50)
    };
    let mut c = Collector::new();
    c.add(&frame(Kind::ProbeResponse, 7, b"home", 0, -50));
    c.add(&broken(10));
    c.add(&frame(Kind::ProbeResponse, 7, b"home", 20, -50));
    c.add(&broken(30));
    let ap = &c.aps[&bssid];
    assert_eq!(ap.security, Security::Wpa2Psk);
    assert_eq!(ap.ssid.unwrap().as_bytes(), b"home");
    assert_eq!(ap.beacons, 2, "still counted as heard");
    // Heard first only through broken frames, then well-formed: the well-formed one wins.
    let mut c = Collector::new();
    c.add(&broken(0));
    assert_eq!(
        c.aps[&bssid].security,
        Security::Wep,
        "the only evidence so far"
    );
    c.add(&frame(Kind::ProbeResponse, 7, b"home", 5, -50));
    assert_eq!(c.aps[&bssid].security, Security::Wpa2Psk);
    assert_eq!(c.aps[&bssid].ssid.unwrap().as_bytes(), b"home");
}
