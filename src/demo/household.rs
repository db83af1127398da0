//! The household scenario: who lives on the LAN, which flows each device has, when and how much
//! it talks, and the bookkeeping of every frame written.
//!
//! It owns the traffic model and the per-template tallies that become [`Expected`]. It must never
//! read back the file it writes: totals are booked as frames are emitted.

use super::frames::{self, Built, Dhcp, L2, Patch, Tags};
use super::locality::{Internet, Ips, Locality};
use super::pcap::{MAX_WIRE_LEN, PcapWriter};
use super::rng::Rng;
use super::{Expected, ExpectedDevice, GenError, GenOptions, MAX_DEVICES, MIN_SNAPLEN};
use crate::model::{Counts, IpPrefix, MacAddr};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Laptop,
    Desktop,
    Phone,
    Tablet,
    Watch,
    Tv,
    Stick,
    Console,
    Handheld,
    Nas,
    Printer,
    Plug,
    Speaker,
    Thermostat,
    Camera,
    Hub,
    Vacuum,
    Server,
    Reader,
}

/// Where a device's MAC comes from: a vendor OUI, or a randomized "private" address.
#[derive(Clone, Copy)]
enum MacSource {
    Oui([u8; 3]),
    Randomized,
}

/// A typical European family home. The OUIs are real vendor assignments (IEEE, as listed in
/// Wireshark's manuf); phones, tablets and the watch use locally administered random MACs as iOS
/// and Android do by default. Order matters: a small household takes the first entries.
const CATALOGUE: [(&str, Kind, MacSource); 25] = [
    (
        "MacBook Pro",
        Kind::Laptop,
        MacSource::Oui([0xf0, 0x18, 0x98]),
    ),
    (
        "Synology NAS",
        Kind::Nas,
        MacSource::Oui([0x00, 0x11, 0x32]),
    ),
    ("Mum's iPhone", Kind::Phone, MacSource::Randomized),
    (
        "Living room TV",
        Kind::Tv,
        MacSource::Oui([0x8c, 0x79, 0xf5]),
    ),
    ("Dad's Galaxy", Kind::Phone, MacSource::Randomized),
    (
        "Work laptop",
        Kind::Laptop,
        MacSource::Oui([0x3c, 0x6a, 0xa7]),
    ),
    (
        "PlayStation 5",
        Kind::Console,
        MacSource::Oui([0x00, 0xd9, 0xd1]),
    ),
    (
        "HP printer",
        Kind::Printer,
        MacSource::Oui([0x14, 0xcb, 0x19]),
    ),
    (
        "Kettle plug",
        Kind::Plug,
        MacSource::Oui([0x50, 0xc7, 0xbf]),
    ),
    (
        "Shelly plug",
        Kind::Plug,
        MacSource::Oui([0x08, 0x3a, 0x8d]),
    ),
    ("iPad", Kind::Tablet, MacSource::Randomized),
    ("Pixel", Kind::Phone, MacSource::Randomized),
    (
        "Fire TV Stick",
        Kind::Stick,
        MacSource::Oui([0x74, 0xc2, 0x46]),
    ),
    (
        "Sonos One",
        Kind::Speaker,
        MacSource::Oui([0x00, 0x0e, 0x58]),
    ),
    (
        "Raspberry Pi",
        Kind::Server,
        MacSource::Oui([0xdc, 0xa6, 0x32]),
    ),
    (
        "Nest thermostat",
        Kind::Thermostat,
        MacSource::Oui([0x18, 0xb4, 0x30]),
    ),
    (
        "Ring doorbell",
        Kind::Camera,
        MacSource::Oui([0x18, 0x7f, 0x88]),
    ),
    ("Hue bridge", Kind::Hub, MacSource::Oui([0x00, 0x17, 0x88])),
    (
        "Gaming PC",
        Kind::Desktop,
        MacSource::Oui([0x04, 0x92, 0x26]),
    ),
    ("Kindle", Kind::Reader, MacSource::Oui([0x74, 0xc2, 0x46])),
    ("Teen's iPhone", Kind::Phone, MacSource::Randomized),
    ("Apple Watch", Kind::Watch, MacSource::Randomized),
    (
        "Robot vacuum",
        Kind::Vacuum,
        MacSource::Oui([0x64, 0x90, 0xc1]),
    ),
    (
        "Nintendo Switch",
        Kind::Handheld,
        MacSource::Oui([0x98, 0x41, 0x5c]),
    ),
    ("Guest phone", Kind::Phone, MacSource::Randomized),
];
/// AVM FRITZ!Box, the most common home router where this household lives.
const ROUTER_OUI: [u8; 3] = [0x3c, 0xa6, 0x2f];

/// One catalogue entry as the dashboard demo sees it (the pcap generator keeps its own view).
pub(crate) struct CatalogueEntry {
    /// The device type word the dashboard shows (its discovery vocabulary).
    pub kind: &'static str,
    /// The vendor OUI, or `None` for a randomized (private) MAC.
    pub oui: Option<[u8; 3]>,
    /// Relative activity by day and by night (the generator's own rhythm).
    pub busyness: (f64, f64),
}

/// The household's devices in catalogue order, and the router's OUI.
pub(crate) fn catalogue() -> (Vec<CatalogueEntry>, [u8; 3]) {
    let word = |k: Kind| match k {
        Kind::Laptop => "laptop",
        Kind::Desktop => "computer",
        Kind::Phone => "phone",
        Kind::Tablet => "tablet",
        Kind::Watch => "watch",
        Kind::Tv | Kind::Stick => "tv",
        Kind::Console | Kind::Handheld => "console",
        Kind::Nas => "nas",
        Kind::Printer => "printer",
        Kind::Speaker => "speaker",
        Kind::Camera => "camera",
        Kind::Server => "server",
        Kind::Reader => "ereader",
        Kind::Plug | Kind::Thermostat | Kind::Hub | Kind::Vacuum => "iot",
    };
    let entries = CATALOGUE
        .iter()
        .map(|&(_, kind, src)| CatalogueEntry {
            kind: word(kind),
            oui: match src {
                MacSource::Oui(o) => Some(o),
                MacSource::Randomized => None,
            },
            busyness: busyness(kind),
        })
        .collect();
    (entries, ROUTER_OUI)
}

/// Share of the peak rate by hour of day (the generator's rhythm), for the dashboard demo.
pub(crate) fn hourly() -> &'static [f64; 24] {
    &HOURLY
}

/// What one burst of frames is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Act {
    Web,
    Quic,
    Stream,
    BigDownload,
    GameUdp,
    Upload,
    Iot,
    LanV4,
    LanV6,
    Print,
    Hairpin,
    Dns,
    Ping,
    PingInternet,
    Arp,
    Dhcp,
    Mdns,
    Ndp,
    Iptv,
    QinQ,
    Malformed,
    Edge,
    // The router's own.
    Ra,
    Stp,
    Ghost,
    RouterArp,
}

const ROUTER_ACTS: &[(Act, f64)] = &[
    (Act::Ra, 1.0),
    (Act::Stp, 3.0),
    (Act::Ghost, 0.5),
    (Act::RouterArp, 4.0),
];

/// Relative frequency of each kind of burst for a kind of device.
fn acts(kind: Kind) -> &'static [(Act, f64)] {
    use Act::*;
    match kind {
        Kind::Laptop => &[
            (Web, 30.0),
            (Quic, 20.0),
            (Stream, 5.0),
            (Upload, 6.0),
            (LanV4, 8.0),
            (LanV6, 4.0),
            (Print, 1.0),
            (Dns, 8.0),
            (Ping, 0.5),
            (PingInternet, 0.3),
            (Arp, 2.0),
            (Dhcp, 0.2),
            (Mdns, 2.0),
            (Ndp, 1.0),
            (Malformed, 0.05),
            (Edge, 0.1),
        ],
        Kind::Desktop => &[
            (Web, 20.0),
            (Quic, 10.0),
            (BigDownload, 8.0),
            (GameUdp, 6.0),
            (Upload, 3.0),
            (LanV4, 4.0),
            (LanV6, 2.0),
            (Dns, 6.0),
            (Arp, 2.0),
            (Dhcp, 0.1),
            (Mdns, 1.0),
            (Ndp, 1.0),
            (Edge, 0.1),
        ],
        Kind::Phone | Kind::Tablet => &[
            (Web, 25.0),
            (Quic, 30.0),
            (Stream, 6.0),
            (Upload, 4.0),
            (Hairpin, 0.5),
            (Dns, 8.0),
            (Ping, 0.2),
            (PingInternet, 0.1),
            (Arp, 2.0),
            (Dhcp, 0.3),
            (Mdns, 3.0),
            (Ndp, 1.0),
            (Malformed, 0.02),
            (Edge, 0.05),
        ],
        Kind::Watch => &[
            (Quic, 5.0),
            (Web, 3.0),
            (Dns, 2.0),
            (Arp, 1.0),
            (Mdns, 1.0),
            (Dhcp, 0.2),
        ],
        Kind::Tv => &[
            (Stream, 40.0),
            (Quic, 15.0),
            (Iptv, 10.0),
            (QinQ, 0.5),
            (Dns, 3.0),
            (Arp, 1.0),
            (Mdns, 2.0),
            (Dhcp, 0.1),
            (Ndp, 0.5),
        ],
        Kind::Stick => &[
            (Stream, 40.0),
            (Quic, 10.0),
            (Dns, 3.0),
            (Arp, 1.0),
            (Mdns, 1.0),
            (Dhcp, 0.1),
        ],
        Kind::Console | Kind::Handheld => &[
            (BigDownload, 20.0),
            (GameUdp, 20.0),
            (Web, 5.0),
            (Dns, 3.0),
            (Arp, 1.0),
            (Dhcp, 0.1),
            (Ndp, 0.5),
        ],
        Kind::Nas => &[
            (Upload, 10.0),
            (Web, 3.0),
            (Dns, 3.0),
            (Arp, 2.0),
            (Mdns, 4.0),
            (Dhcp, 0.1),
            (Ndp, 0.5),
        ],
        Kind::Printer => &[(Mdns, 5.0), (Iot, 1.0), (Dns, 1.0), (Arp, 2.0), (Dhcp, 0.2)],
        Kind::Plug | Kind::Thermostat | Kind::Hub | Kind::Vacuum => &[
            (Iot, 10.0),
            (Dns, 2.0),
            (Arp, 2.0),
            (Mdns, 1.0),
            (Dhcp, 0.2),
        ],
        Kind::Speaker => &[
            (Stream, 10.0),
            (Iot, 2.0),
            (Mdns, 4.0),
            (Dns, 2.0),
            (Arp, 1.0),
        ],
        Kind::Camera => &[
            (Upload, 20.0),
            (Iot, 2.0),
            (Dns, 2.0),
            (Arp, 1.0),
            (Dhcp, 0.1),
        ],
        Kind::Server => &[
            (Web, 3.0),
            (Dns, 3.0),
            (LanV4, 2.0),
            (Ping, 2.0),
            (PingInternet, 2.0),
            (Arp, 2.0),
            (Mdns, 1.0),
            (Ndp, 0.5),
        ],
        Kind::Reader => &[(Web, 3.0), (Dns, 1.0), (Arp, 1.0), (Dhcp, 0.1)],
    }
}

/// How busy a kind of device is by day and by night (bursts, relative).
fn busyness(kind: Kind) -> (f64, f64) {
    match kind {
        Kind::Laptop => (1.0, 0.1),
        Kind::Desktop => (0.8, 0.05),
        Kind::Phone => (0.8, 0.15),
        Kind::Tablet => (0.5, 0.05),
        Kind::Watch => (0.1, 0.05),
        Kind::Tv => (1.2, 0.05),
        Kind::Stick => (0.6, 0.02),
        // Game updates download overnight.
        Kind::Console => (0.6, 0.2),
        Kind::Handheld => (0.3, 0.02),
        // Backups run at night.
        Kind::Nas => (0.3, 0.6),
        Kind::Printer => (0.05, 0.02),
        Kind::Plug | Kind::Thermostat | Kind::Hub => (0.05, 0.05),
        Kind::Speaker => (0.3, 0.02),
        Kind::Camera => (0.3, 0.3),
        Kind::Vacuum => (0.1, 0.01),
        Kind::Server => (0.2, 0.2),
        Kind::Reader => (0.05, 0.02),
    }
}

fn dns_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Laptop | Kind::Desktop => "www.google.com",
        Kind::Phone | Kind::Tablet | Kind::Watch => "gateway.icloud.com",
        Kind::Tv | Kind::Stick => "occ-0-1234-768.1.nflxso.net",
        Kind::Console | Kind::Handheld => "gs2.ww.prod.dl.playstation.net",
        Kind::Nas => "global.synologydownload.com",
        Kind::Printer => "h10141.www1.hp.com",
        Kind::Speaker => "sonos.com",
        Kind::Camera => "fw.ring.com",
        Kind::Server => "deb.debian.org",
        Kind::Reader => "kindle-time.amazon.com",
        Kind::Plug | Kind::Thermostat | Kind::Hub | Kind::Vacuum => "devs.tplinkcloud.com",
    }
}

fn mdns_service(kind: Kind) -> &'static str {
    match kind {
        Kind::Printer => "_ipp._tcp.local",
        Kind::Tv | Kind::Stick => "_googlecast._tcp.local",
        Kind::Speaker => "_sonos._tcp.local",
        Kind::Nas => "_smb._tcp.local",
        Kind::Hub => "_hue._tcp.local",
        Kind::Laptop | Kind::Desktop => "_airplay._tcp.local",
        _ => "_companion-link._tcp.local",
    }
}

/// Where the household's internet traffic goes: real, well-known CDN and cloud addresses.
const WEB_V4: [[u8; 4]; 8] = [
    [142, 250, 185, 78],
    [17, 253, 144, 10],
    [104, 16, 132, 229],
    [151, 101, 65, 140],
    [13, 107, 42, 14],
    [157, 240, 20, 35],
    [23, 52, 161, 135],
    [52, 94, 236, 248],
];
const STREAM_V4: [[u8; 4]; 3] = [[45, 57, 90, 1], [54, 239, 28, 85], [185, 9, 188, 2]];
const CLOUD_V4: [[u8; 4]; 3] = [[3, 121, 6, 180], [52, 95, 150, 34], [35, 186, 224, 25]];
const GAME_V4: [[u8; 4]; 2] = [[69, 25, 20, 40], [146, 66, 152, 10]];
const WEB_V6: [&str; 5] = [
    "2a00:1450:4001:82a::200e",
    "2606:4700::6810:85e5",
    "2a03:2880:f12f:83:face:b00c:0:25de",
    "2620:1ec:c11::200",
    "2a02:26f0:e4::1",
];
/// The ISP's IPTV head-end and a VoD server, reached over the TV's VLAN.
const IPTV_SOURCE: [u8; 4] = [217, 0, 119, 194];
const VOD_SERVER: [u8; 4] = [217, 0, 118, 77];
const IPTV_VLAN: u16 = 8;
const QINQ_OUTER_VLAN: u16 = 100;

fn v4(o: [u8; 4]) -> Ipv4Addr {
    Ipv4Addr::from(o)
}

fn v6(s: &str) -> Ipv6Addr {
    // Only called on the string literals of this file, all valid addresses (tested).
    s.parse().unwrap_or(Ipv6Addr::UNSPECIFIED)
}

/// One MAC on the LAN.
struct Host {
    name: String,
    kind: Option<Kind>,
    mac: MacAddr,
    v4: Ipv4Addr,
    gua: Ipv6Addr,
    ll: Ipv6Addr,
}

/// A frame template and its tally.
struct Tpl {
    bytes: Vec<u8>,
    patch: Patch,
    mss: u32,
    src: u32,
    /// Unicast receiver; `None` for broadcast and multicast.
    dst: Option<u32>,
    net: Internet,
    last_payload: u32,
    /// The template of the other direction of the same TCP connection, whose sequence number
    /// this one acknowledges.
    peer: Option<u32>,
    frames: u64,
    wire_bytes: u64,
    first_us: i64,
    last_us: i64,
}

/// The two directions of a flow: `fwd` from the initiator, `rev` back to it.
#[derive(Clone, Copy)]
struct Pair {
    fwd: usize,
    rev: usize,
}

struct DevFlows {
    web: [Pair; 3],
    quic: [Pair; 2],
    stream: Pair,
    upload: Pair,
    game: Pair,
    iot: Pair,
    lan4: Option<Pair>,
    lan6: Option<Pair>,
    print: Option<Pair>,
    hairpin: Option<Pair>,
    dns4: Pair,
    dns6: Pair,
    ping4: Pair,
    ping6: Pair,
    ping_net: Pair,
    /// The device asks for the router (broadcast), the router answers (unicast).
    arp_ask: Pair,
    /// The router asks for the device (broadcast), the device answers (unicast).
    arp_asked: Pair,
    dhcp: [usize; 4],
    mdns4: usize,
    mdns6: usize,
    ndp: Pair,
    vod: Pair,
    qinq: Pair,
    malformed: Vec<usize>,
    edge: Vec<usize>,
}

struct RouterTpls {
    ra: usize,
    stp: usize,
    ghost: usize,
    iptv: Vec<usize>,
}

/// The immutable scenario: hosts (0 = router, 1..=n devices, n+1 = departed phone) and flows.
struct Household {
    hosts: Vec<Host>,
    flows: Vec<DevFlows>,
    router: RouterTpls,
    lan: IpPrefix,
    ra_prefix: IpPrefix,
    /// Cumulative actor weights (index 0 = router, i = device i) by day and by night.
    cum_day: Vec<f64>,
    cum_night: Vec<f64>,
}

const ROUTER: usize = 0;

struct Builder<'a> {
    tpls: Vec<Tpl>,
    locality: Locality,
    hosts: &'a [Host],
    rng: Rng,
}

impl Builder<'_> {
    /// Registers a template. `expect` is what the scenario intends; ACCOUNTING.md (via `Locality`)
    /// decides, and a disagreement is a scenario bug caught by the tests.
    fn add(
        &mut self,
        b: Built,
        src: usize,
        dst: Option<usize>,
        ips: Option<Ips>,
        expect: Internet,
    ) -> usize {
        let net = self
            .locality
            .classify(src == ROUTER, dst == Some(ROUTER), dst.is_some(), ips);
        debug_assert_eq!(
            net, expect,
            "scenario intent disagrees with ACCOUNTING.md for {ips:?}"
        );
        debug_assert!(b.bytes.len() <= MAX_WIRE_LEN as usize);
        let mss = b.mss();
        self.tpls.push(Tpl {
            bytes: b.bytes,
            patch: b.patch,
            mss,
            src: src as u32,
            dst: dst.map(|d| d as u32),
            net,
            last_payload: 0,
            peer: None,
            frames: 0,
            wire_bytes: 0,
            first_us: i64::MAX,
            last_us: i64::MIN,
        });
        self.tpls.len() - 1
    }

    fn l2(&self, src: usize, dst: usize, tags: Tags) -> L2 {
        L2 {
            src: self.hosts[src].mac,
            dst: self.hosts[dst].mac,
            tags,
        }
    }

    fn port(&mut self) -> u16 {
        self.rng.range(49152, 65535) as u16
    }

    /// A TCP flow: each direction is (L2 header, sending host, receiving host); `ips` as seen
    /// by the initiator; `net` the intended class of each direction.
    fn tcp_pair(
        &mut self,
        fwd: (L2, usize, usize),
        rev: (L2, usize, usize),
        ips: Ips,
        dport: u16,
        net: (Internet, Internet),
    ) -> Pair {
        let sport = self.port();
        let (s1, s2) = (self.rng.next_u64() as u32, self.rng.next_u64() as u32);
        let f = frames::tcp(&fwd.0, ips, sport, dport, s1, s2);
        let r = frames::tcp(&rev.0, swap(ips), dport, sport, s2, s1);
        let p = Pair {
            fwd: self.add(f, fwd.1, Some(fwd.2), Some(ips), net.0),
            rev: self.add(r, rev.1, Some(rev.2), Some(swap(ips)), net.1),
        };
        self.tpls[p.fwd].peer = Some(p.rev as u32);
        self.tpls[p.rev].peer = Some(p.fwd as u32);
        p
    }

    fn udp_pair(
        &mut self,
        fwd: (L2, usize, usize),
        rev: (L2, usize, usize),
        ips: Ips,
        dport: u16,
        net: (Internet, Internet),
    ) -> Pair {
        let sport = self.port();
        let f = frames::udp(&fwd.0, ips, sport, dport, &[], false);
        let r = frames::udp(&rev.0, swap(ips), dport, sport, &[], false);
        Pair {
            fwd: self.add(f, fwd.1, Some(fwd.2), Some(ips), net.0),
            rev: self.add(r, rev.1, Some(rev.2), Some(swap(ips)), net.1),
        }
    }

    /// A device ↔ internet flow through the router.
    fn internet_tcp(&mut self, dev: usize, remote: IpAddr, dport: u16, tags: Tags) -> Pair {
        let ips = self.ips_to(dev, remote);
        let up = (self.l2(dev, ROUTER, tags), dev, ROUTER);
        let down = (self.l2(ROUTER, dev, tags), ROUTER, dev);
        self.tcp_pair(up, down, ips, dport, (Internet::Upload, Internet::Download))
    }

    fn internet_udp(&mut self, dev: usize, remote: IpAddr, dport: u16) -> Pair {
        let ips = self.ips_to(dev, remote);
        let up = (self.l2(dev, ROUTER, Tags::None), dev, ROUTER);
        let down = (self.l2(ROUTER, dev, Tags::None), ROUTER, dev);
        self.udp_pair(up, down, ips, dport, (Internet::Upload, Internet::Download))
    }

    fn ips_to(&self, dev: usize, remote: IpAddr) -> Ips {
        match remote {
            IpAddr::V4(r) => Ips::V4(self.hosts[dev].v4, r),
            IpAddr::V6(r) => Ips::V6(self.hosts[dev].gua, r),
        }
    }

    /// A request/response exchange of whole frames between a device and the router.
    fn exchange(&mut self, dev: usize, q: Built, r: Built, ips: Ips) -> Pair {
        Pair {
            fwd: self.add(q, dev, Some(ROUTER), Some(ips), Internet::None),
            rev: self.add(r, ROUTER, Some(dev), Some(swap(ips)), Internet::None),
        }
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.below(xs.len() as u64) as usize]
    }

    fn device_flows(&mut self, dev: usize, nas: Option<usize>, printer: Option<usize>) -> DevFlows {
        let h = &self.hosts[dev];
        let (kind, dev_v4, dev_gua, dev_ll, dev_mac) =
            (h.kind.unwrap_or(Kind::Phone), h.v4, h.gua, h.ll, h.mac);
        let r = &self.hosts[ROUTER];
        let (r_v4, r_gua, r_ll, r_mac) = (r.v4, r.gua, r.ll, r.mac);
        let none = Tags::None;

        let mut web = [Pair { fwd: 0, rev: 0 }; 3];
        for w in &mut web {
            let remote = v4(self.pick(&WEB_V4));
            *w = self.internet_tcp(dev, remote.into(), 443, none);
        }
        let mut quic = [Pair { fwd: 0, rev: 0 }; 2];
        for q in &mut quic {
            let remote = v6(self.pick(&WEB_V6));
            *q = self.internet_udp(dev, remote.into(), 443);
        }
        let stream_to = v4(self.pick(&STREAM_V4));
        let stream = self.internet_tcp(dev, stream_to.into(), 443, none);
        let cloud = v4(self.pick(&CLOUD_V4));
        let upload = self.internet_tcp(dev, cloud.into(), 443, none);
        let game_to = v4(self.pick(&GAME_V4));
        let game = self.internet_udp(dev, game_to.into(), 3074);
        let iot_to = v4(self.pick(&CLOUD_V4));
        let iot = self.internet_tcp(dev, iot_to.into(), 8883, none);

        let lan_partner = nas.filter(|&n| n != dev);
        let lan4 = lan_partner.map(|n| {
            let ips = Ips::V4(dev_v4, self.hosts[n].v4);
            let f = (self.l2(dev, n, none), dev, n);
            let r = (self.l2(n, dev, none), n, dev);
            self.tcp_pair(f, r, ips, 445, (Internet::None, Internet::None))
        });
        let lan6 = lan_partner.map(|n| {
            let ips = Ips::V6(dev_gua, self.hosts[n].gua);
            let f = (self.l2(dev, n, none), dev, n);
            let r = (self.l2(n, dev, none), n, dev);
            self.tcp_pair(f, r, ips, 445, (Internet::None, Internet::None))
        });
        let print = printer.filter(|&p| p != dev).map(|p| {
            let ips = Ips::V4(dev_v4, self.hosts[p].v4);
            let f = (self.l2(dev, p, none), dev, p);
            let r = (self.l2(p, dev, none), p, dev);
            self.tcp_pair(f, r, ips, 631, (Internet::None, Internet::None))
        });
        // The phone on the guest Wi-Fi reaches the NAS through the router: its frames go to the
        // router's MAC with the NAS's GUA as destination. Local only because of the RA prefix.
        let hairpin = lan_partner.map(|n| {
            let ips = Ips::V6(dev_gua, self.hosts[n].gua);
            let f = (self.l2(dev, ROUTER, none), dev, ROUTER);
            let r = (self.l2(ROUTER, n, none), ROUTER, n);
            self.tcp_pair(f, r, ips, 445, (Internet::None, Internet::None))
        });

        let name = dns_name(kind);
        let id = self.rng.next_u64() as u16;
        let sport = self.port();
        let ips4 = Ips::V4(dev_v4, r_v4);
        let q = frames::udp(
            &self.l2(dev, ROUTER, none),
            ips4,
            sport,
            53,
            &frames::dns_message(id, name, false, false),
            true,
        );
        let a = frames::udp(
            &self.l2(ROUTER, dev, none),
            swap(ips4),
            53,
            sport,
            &frames::dns_message(id, name, false, true),
            true,
        );
        let dns4 = self.exchange(dev, q, a, ips4);
        // AAAA over IPv6 to the router's GUA: a frame to the gateway MAC whose destination is
        // in the announced prefix, so it is local.
        let ips6 = Ips::V6(dev_gua, r_gua);
        let q = frames::udp(
            &self.l2(dev, ROUTER, none),
            ips6,
            sport,
            53,
            &frames::dns_message(id ^ 1, name, true, false),
            true,
        );
        let a = frames::udp(
            &self.l2(ROUTER, dev, none),
            swap(ips6),
            53,
            sport,
            &frames::dns_message(id ^ 1, name, true, true),
            true,
        );
        let dns6 = self.exchange(dev, q, a, ips6);

        let ping_id = self.rng.next_u64() as u16;
        let q = frames::echo(&self.l2(dev, ROUTER, none), ips4, false, ping_id, 1, 56);
        let a = frames::echo(
            &self.l2(ROUTER, dev, none),
            swap(ips4),
            true,
            ping_id,
            1,
            56,
        );
        let ping4 = self.exchange(dev, q, a, ips4);
        let q = frames::echo(&self.l2(dev, ROUTER, none), ips6, false, ping_id, 1, 56);
        let a = frames::echo(
            &self.l2(ROUTER, dev, none),
            swap(ips6),
            true,
            ping_id,
            1,
            56,
        );
        let ping6 = self.exchange(dev, q, a, ips6);
        let ipsn = Ips::V4(dev_v4, Ipv4Addr::new(8, 8, 8, 8));
        let q = frames::echo(&self.l2(dev, ROUTER, none), ipsn, false, ping_id, 1, 56);
        let a = frames::echo(
            &self.l2(ROUTER, dev, none),
            swap(ipsn),
            true,
            ping_id,
            1,
            56,
        );
        let ping_net = Pair {
            fwd: self.add(q, dev, Some(ROUTER), Some(ipsn), Internet::Upload),
            rev: self.add(a, ROUTER, Some(dev), Some(swap(ipsn)), Internet::Download),
        };

        let bcast = |src: MacAddr| L2 {
            src,
            dst: MacAddr::BROADCAST,
            tags: Tags::None,
        };
        let zero = MacAddr([0; 6]);
        let q = frames::arp(&bcast(dev_mac), false, (dev_mac, dev_v4), (zero, r_v4));
        let a = frames::arp(
            &self.l2(ROUTER, dev, none),
            true,
            (r_mac, r_v4),
            (dev_mac, dev_v4),
        );
        let arp_ask = Pair {
            fwd: self.add(q, dev, None, None, Internet::None),
            rev: self.add(a, ROUTER, Some(dev), None, Internet::None),
        };
        let q = frames::arp(&bcast(r_mac), false, (r_mac, r_v4), (zero, dev_v4));
        let a = frames::arp(
            &self.l2(dev, ROUTER, none),
            true,
            (dev_mac, dev_v4),
            (r_mac, r_v4),
        );
        let arp_asked = Pair {
            fwd: self.add(q, ROUTER, None, None, Internet::None),
            rev: self.add(a, dev, Some(ROUTER), None, Internet::None),
        };

        let hostname: String = self.hosts[dev]
            .name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let xid = self.rng.next_u64() as u32;
        let client_ips = Ips::V4(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
        let server_ips = Ips::V4(r_v4, dev_v4);
        let mut dhcp = [0usize; 4];
        for (slot, msg_type) in dhcp.iter_mut().zip([
            frames::DHCP_DISCOVER,
            frames::DHCP_OFFER,
            frames::DHCP_REQUEST,
            frames::DHCP_ACK,
        ]) {
            let m = Dhcp {
                msg_type,
                xid,
                client: dev_mac,
                yiaddr: dev_v4,
                server: r_v4,
                hostname: &hostname,
            };
            *slot = if msg_type == frames::DHCP_OFFER || msg_type == frames::DHCP_ACK {
                let b = frames::dhcp(&self.l2(ROUTER, dev, none), server_ips, &m);
                self.add(b, ROUTER, Some(dev), Some(server_ips), Internet::None)
            } else {
                let b = frames::dhcp(&bcast(dev_mac), client_ips, &m);
                self.add(b, dev, None, Some(client_ips), Internet::None)
            };
        }

        let svc = mdns_service(kind);
        let m4 = Ips::V4(dev_v4, Ipv4Addr::new(224, 0, 0, 251));
        let l2m4 = L2 {
            src: dev_mac,
            dst: MacAddr([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]),
            tags: none,
        };
        let b = frames::udp(&l2m4, m4, 5353, 5353, &frames::mdns_message(svc), true);
        let mdns4 = self.add(b, dev, None, Some(m4), Internet::None);
        let m6 = Ips::V6(dev_ll, v6("ff02::fb"));
        let l2m6 = L2 {
            src: dev_mac,
            dst: MacAddr([0x33, 0x33, 0x00, 0x00, 0x00, 0xfb]),
            tags: none,
        };
        let b = frames::udp(&l2m6, m6, 5353, 5353, &frames::mdns_message(svc), true);
        let mdns6 = self.add(b, dev, None, Some(m6), Internet::None);

        // Neighbor discovery of the router's GUA: NS to its solicited-node group, NA back.
        let g = r_gua.octets();
        let sn = Ipv6Addr::new(
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(g[13]),
            u16::from_be_bytes([g[14], g[15]]),
        );
        let l2ns = L2 {
            src: dev_mac,
            dst: MacAddr([0x33, 0x33, 0xff, g[13], g[14], g[15]]),
            tags: none,
        };
        let ns_ips = Ips::V6(dev_ll, sn);
        let ns = frames::neighbor(&l2ns, ns_ips, r_gua, false);
        let na_ips = Ips::V6(r_ll, dev_ll);
        let na = frames::neighbor(&self.l2(ROUTER, dev, none), na_ips, r_gua, true);
        let ndp = Pair {
            fwd: self.add(ns, dev, None, Some(ns_ips), Internet::None),
            rev: self.add(na, ROUTER, Some(dev), Some(na_ips), Internet::None),
        };

        let vod = self.internet_tcp(dev, v4(VOD_SERVER).into(), 443, Tags::Dot1q(IPTV_VLAN));
        let qinq = self.internet_tcp(
            dev,
            v4(VOD_SERVER).into(),
            8443,
            Tags::QinQ(QINQ_OUTER_VLAN, IPTV_VLAN),
        );

        let malformed = self.malformed(dev);
        let edge = self.edge(dev);
        DevFlows {
            web,
            quic,
            stream,
            upload,
            game,
            iot,
            lan4,
            lan6,
            print,
            hairpin,
            dns4,
            dns6,
            ping4,
            ping6,
            ping_net,
            arp_ask,
            arp_asked,
            dhcp,
            mdns4,
            mdns6,
            ndp,
            vod,
            qinq,
            malformed,
            edge,
        }
    }

    /// Frames whose Ethernet header is fine but whose IP part is cut short or invalid. They are
    /// counted at layer 2 and their IP addresses ignored, so they are local whatever they say.
    fn malformed(&mut self, dev: usize) -> Vec<usize> {
        let none = Tags::None;
        let public = Ipv4Addr::new(142, 250, 185, 78);
        let me = self.hosts[dev].v4;
        let up = self.l2(dev, ROUTER, none);
        let down = self.l2(ROUTER, dev, none);
        let syn = frames::ipv4_syn(me, public);
        let mut out = Vec::new();
        // Cut on the wire after 16 bytes of IPv4 header: a 30-byte runt.
        let b = frames::raw(&up, 0x0800, &syn[..16]);
        out.push(self.add(b, dev, Some(ROUTER), None, Internet::None));
        // IHL of 3 (12 bytes): not a valid IPv4 header.
        let mut bad = syn.clone();
        bad[0] = 0x43;
        let b = frames::raw(&up, 0x0800, &bad);
        out.push(self.add(b, dev, Some(ROUTER), None, Internet::None));
        // Version 6 behind the IPv4 EtherType, from the internet side.
        let mut bad = frames::ipv4_syn(public, me);
        bad[0] = 0x65;
        bad.resize(46, 0);
        let b = frames::raw(&down, 0x0800, &bad);
        out.push(self.add(b, ROUTER, Some(dev), None, Internet::None));
        // IPv6 cut after 36 bytes of its 40-byte header.
        let mut v6h = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
        v6h.extend_from_slice(&v6(WEB_V6[0]).octets());
        v6h.extend_from_slice(&self.hosts[dev].gua.octets()[..12]);
        let b = frames::raw(&down, 0x86dd, &v6h);
        out.push(self.add(b, ROUTER, Some(dev), None, Internet::None));
        // An 802.1Q tag cut after its TCI: no inner EtherType at all.
        let b = frames::raw(&up, 0x8100, &[0x00, 0x08]);
        out.push(self.add(b, dev, Some(ROUTER), None, Internet::None));
        out
    }

    /// Addresses at the edges of ACCOUNTING.md's local ranges, through the gateway: each one is
    /// local or internet by exactly one rule.
    fn edge(&mut self, dev: usize) -> Vec<usize> {
        let (me4, me6, ll) = (self.hosts[dev].v4, self.hosts[dev].gua, self.hosts[dev].ll);
        let mut targets: Vec<(IpAddr, Internet)> = Vec::new();
        for (ip, local) in [
            ([100, 64, 0, 1], true),
            ([100, 127, 255, 254], true),
            ([169, 254, 169, 254], true),
            ([172, 20, 0, 5], true),
            ([10, 8, 0, 1], true),
            ([239, 255, 255, 250], true),
            ([100, 128, 0, 1], false),
            ([172, 32, 0, 1], false),
            ([169, 255, 0, 1], false),
            ([11, 0, 0, 1], false),
            ([192, 169, 0, 1], false),
        ] {
            let net = if local {
                Internet::None
            } else {
                Internet::Upload
            };
            targets.push((v4(ip).into(), net));
        }
        for (ip, local) in [
            ("fd12:3456:789a::1", true),
            ("2001:db8:4b40:1e01::1", false),
        ] {
            let net = if local {
                Internet::None
            } else {
                Internet::Upload
            };
            targets.push((v6(ip).into(), net));
        }
        let none = Tags::None;
        let mut out = Vec::new();
        for (remote, net) in targets {
            let ips = match remote {
                IpAddr::V4(r) => Ips::V4(me4, r),
                IpAddr::V6(r) => Ips::V6(me6, r),
            };
            let sport = self.port();
            let b = frames::tcp(&self.l2(dev, ROUTER, none), ips, sport, 443, 1, 0);
            out.push(self.add(b, dev, Some(ROUTER), Some(ips), net));
        }
        // Link-local to the router's link-local address.
        let r_ll = self.hosts[ROUTER].ll;
        let ips = Ips::V6(ll, r_ll);
        let b = frames::tcp(&self.l2(dev, ROUTER, none), ips, 50123, 80, 1, 0);
        out.push(self.add(b, dev, Some(ROUTER), Some(ips), Internet::None));
        // From the ISP's CGNAT side (local) and from just outside 172.16/12 (internet).
        for (src, net) in [
            ([100, 64, 0, 1], Internet::None),
            ([172, 32, 0, 1], Internet::Download),
        ] {
            let ips = Ips::V4(v4(src), me4);
            let b = frames::tcp(&self.l2(ROUTER, dev, none), ips, 443, 50124, 1, 0);
            out.push(self.add(b, ROUTER, Some(dev), Some(ips), net));
        }
        out
    }

    fn router_tpls(&mut self, ghost: usize, ra_prefix: Ipv6Addr) -> RouterTpls {
        let r = &self.hosts[ROUTER];
        let (r_mac, r_v4, r_ll) = (r.mac, r.v4, r.ll);
        let l2ra = L2 {
            src: r_mac,
            dst: MacAddr([0x33, 0x33, 0, 0, 0, 1]),
            tags: Tags::None,
        };
        let b = frames::router_advert(&l2ra, r_ll, ra_prefix, 64);
        let ra_ips = Ips::V6(r_ll, v6("ff02::1"));
        let ra = self.add(b, ROUTER, None, Some(ra_ips), Internet::None);
        let l2stp = L2 {
            src: r_mac,
            dst: MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]),
            tags: Tags::None,
        };
        let stp = self.add(
            frames::stp_bpdu(&l2stp, r_mac),
            ROUTER,
            None,
            None,
            Internet::None,
        );
        // Linux re-validates a stale neighbour entry with unicast ARP: the departed phone keeps
        // receiving these after it left, and never answers.
        let g = &self.hosts[ghost];
        let b = frames::arp(
            &self.l2(ROUTER, ghost, Tags::None),
            false,
            (r_mac, r_v4),
            (g.mac, g.v4),
        );
        let ghost_arp = self.add(b, ROUTER, Some(ghost), None, Internet::None);
        // MagentaTV-style multicast channels on the IPTV VLAN: 7 MPEG-TS packets per datagram.
        let mut iptv = Vec::new();
        for ch in [4u8, 9, 17] {
            let group = Ipv4Addr::new(239, 35, 10, ch);
            let l2 = L2 {
                src: r_mac,
                dst: MacAddr([0x01, 0x00, 0x5e, 0x23, 0x0a, ch]),
                tags: Tags::Dot1q(IPTV_VLAN),
            };
            let ips = Ips::V4(v4(IPTV_SOURCE), group);
            let payload = [0x47u8; 1316];
            let b = frames::udp(&l2, ips, 10000, 10000, &payload, true);
            iptv.push(self.add(b, ROUTER, None, Some(ips), Internet::None));
        }
        RouterTpls {
            ra,
            stp,
            ghost: ghost_arp,
            iptv,
        }
    }
}

fn swap(ips: Ips) -> Ips {
    match ips {
        Ips::V4(s, d) => Ips::V4(d, s),
        Ips::V6(s, d) => Ips::V6(d, s),
    }
}

fn random_mac(rng: &mut Rng, source: MacSource) -> MacAddr {
    let b = rng.bytes6();
    match source {
        MacSource::Oui(o) => MacAddr([o[0], o[1], o[2], b[3], b[4], b[5]]),
        // Locally administered, unicast: what iOS/Android "private addresses" look like.
        MacSource::Randomized => MacAddr([(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]),
    }
}

fn iid(rng: &mut Rng) -> u128 {
    u128::from(rng.next_u64())
}

fn build(opts: &GenOptions, rng: &mut Rng) -> (Household, Vec<Tpl>) {
    let n = opts.devices;
    let lan_len = if n <= 230 { 24 } else { 20 };
    let lan_base = if n <= 230 {
        Ipv4Addr::new(192, 168, 178, 0)
    } else {
        Ipv4Addr::new(192, 168, 176, 0)
    };
    let lan = IpPrefix::V4 {
        addr: u32::from(lan_base),
        len: lan_len,
    };
    // A documentation prefix stands in for the ISP-delegated /64: public as far as ACCOUNTING.md is
    // concerned, local only because the router announces it.
    let ra_prefix_addr: Ipv6Addr = v6("2001:db8:4b40:1e00::");
    let ra_prefix = IpPrefix::V6 {
        addr: u128::from(ra_prefix_addr),
        len: 64,
    };
    let prefix_bits = u128::from(ra_prefix_addr);
    let link_local = 0xfe80u128 << 112;

    let mut used = std::collections::HashSet::new();
    let mut fresh_mac = |rng: &mut Rng, src: MacSource| loop {
        let m = random_mac(rng, src);
        if used.insert(m) {
            break m;
        }
    };
    let r_mac = fresh_mac(rng, MacSource::Oui(ROUTER_OUI));
    // EUI-64 link-local address, as routers still use.
    let m = r_mac.0;
    let eui = u128::from_be_bytes([
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        m[0] ^ 0x02,
        m[1],
        m[2],
        0xff,
        0xfe,
        m[3],
        m[4],
        m[5],
    ]);
    let mut hosts = vec![Host {
        name: "FRITZ!Box".to_string(),
        kind: None,
        mac: r_mac,
        v4: Ipv4Addr::new(192, 168, 178, 1),
        gua: Ipv6Addr::from(prefix_bits | 1),
        ll: Ipv6Addr::from(link_local | eui),
    }];
    let first_host = u32::from(Ipv4Addr::new(192, 168, 178, 20));
    for i in 0..n {
        let (name, kind, source) = CATALOGUE[i % CATALOGUE.len()];
        let round = i / CATALOGUE.len();
        let name = if round == 0 {
            name.to_string()
        } else {
            format!("{name} {}", round + 1)
        };
        hosts.push(Host {
            name,
            kind: Some(kind),
            mac: fresh_mac(rng, source),
            v4: Ipv4Addr::from(first_host + i as u32),
            gua: Ipv6Addr::from(prefix_bits | iid(rng)),
            ll: Ipv6Addr::from(link_local | iid(rng)),
        });
    }
    let ghost = hosts.len();
    hosts.push(Host {
        name: "Departed guest phone".to_string(),
        kind: Some(Kind::Phone),
        mac: fresh_mac(rng, MacSource::Randomized),
        v4: Ipv4Addr::from(first_host + n as u32),
        gua: Ipv6Addr::from(prefix_bits | iid(rng)),
        ll: Ipv6Addr::from(link_local | iid(rng)),
    });

    let nas = (1..=n).find(|&i| hosts[i].kind == Some(Kind::Nas));
    let printer = (1..=n).find(|&i| hosts[i].kind == Some(Kind::Printer));
    let mut b = Builder {
        tpls: Vec::new(),
        locality: Locality::new(&[lan], &[ra_prefix]),
        hosts: &hosts,
        rng: Rng::new(rng.next_u64()),
    };
    let router = b.router_tpls(ghost, ra_prefix_addr);
    let flows: Vec<DevFlows> = (1..=n).map(|d| b.device_flows(d, nas, printer)).collect();
    let tpls = b.tpls;

    let mut cum_day = Vec::with_capacity(n + 1);
    let mut cum_night = Vec::with_capacity(n + 1);
    let (mut day, mut night) = (0.0, 0.0);
    // The router's own chatter (RA, STP, ARP) does not sleep.
    let router_w = 0.05;
    day += router_w;
    night += router_w;
    cum_day.push(day);
    cum_night.push(night);
    for h in &hosts[1..=n] {
        let (d, nt) = busyness(h.kind.unwrap_or(Kind::Phone));
        day += d;
        night += nt;
        cum_day.push(day);
        cum_night.push(night);
    }
    (
        Household {
            hosts,
            flows,
            router,
            lan,
            ra_prefix,
            cum_day,
            cum_night,
        },
        tpls,
    )
}

/// Maps frame index → capture timestamp so that frames are spread over the duration with a
/// day/night rhythm: the inverse of the cumulative hourly activity curve, evaluated at
/// `(k + jitter) / n`, which is increasing in `k` by construction.
struct Clock {
    end_us: i64,
    seg_start: Vec<i64>,
    seg_len: Vec<i64>,
    cum: Vec<f64>,
    hour: Vec<u8>,
    n: f64,
    seg: usize,
    last_us: i64,
}

/// Share of the peak rate by UTC hour of day: quiet nights, a morning bump, busy evenings.
const HOURLY: [f64; 24] = [
    0.12, 0.08, 0.06, 0.05, 0.05, 0.07, 0.20, 0.45, 0.55, 0.50, 0.50, 0.55, 0.60, 0.55, 0.50, 0.55,
    0.65, 0.80, 0.95, 1.00, 1.00, 0.95, 0.70, 0.35,
];

impl Clock {
    fn new(start_us: i64, duration_secs: u64, n: u64) -> Clock {
        let end_us = start_us + duration_secs as i64 * 1_000_000;
        let hour_us = 3_600_000_000i64;
        let mut seg_start = Vec::new();
        let mut seg_len = Vec::new();
        let mut cum = vec![0.0];
        let mut hour = Vec::new();
        let mut t = start_us;
        while t < end_us {
            let next = ((t / hour_us) + 1) * hour_us;
            let stop = next.min(end_us);
            let h = ((t / hour_us) % 24) as usize;
            let weekday = ((t / 86_400_000_000) + 4) % 7; // 0 = Sunday
            let weekend = weekday == 0 || weekday == 6;
            let w = HOURLY[h]
                * if weekend && (9..18).contains(&h) {
                    1.3
                } else {
                    1.0
                };
            seg_start.push(t);
            seg_len.push(stop - t);
            let prev = cum.last().copied().unwrap_or(0.0);
            cum.push(prev + w * (stop - t) as f64);
            hour.push(h as u8);
            t = stop;
        }
        Clock {
            end_us,
            seg_start,
            seg_len,
            cum,
            hour,
            n: n.max(1) as f64,
            seg: 0,
            last_us: start_us,
        }
    }

    #[inline]
    fn at(&mut self, k: u64, rng: &mut Rng) -> i64 {
        let total = self.cum[self.cum.len() - 1];
        let target = (k as f64 + rng.unit()) / self.n * total;
        while self.seg + 1 < self.seg_start.len() && self.cum[self.seg + 1] <= target {
            self.seg += 1;
        }
        let (lo, hi) = (self.cum[self.seg], self.cum[self.seg + 1]);
        let frac = ((target - lo) / (hi - lo)).clamp(0.0, 1.0);
        let t = self.seg_start[self.seg] + (frac * self.seg_len[self.seg] as f64) as i64;
        // Float rounding at segment edges must not make time run backwards.
        let t = t.clamp(self.last_us, self.end_us - 1);
        self.last_us = t;
        t
    }

    fn is_night(&self) -> bool {
        self.hour.get(self.seg).is_some_and(|&h| h < 6)
    }
}

struct Gen {
    rng: Rng,
    clock: Clock,
    w: PcapWriter,
    tpls: Vec<Tpl>,
    k: u64,
    n: u64,
    /// [`GenOptions::handshake_percent`] as a probability.
    handshakes: f64,
}

impl Gen {
    /// Writes one frame from template `t` at wire length `len` (ignored for whole-frame
    /// templates) and books it. Does nothing once the requested number of frames is written.
    #[inline]
    fn emit(&mut self, t: usize, len: u32) -> Result<(), GenError> {
        if self.k >= self.n {
            return Ok(());
        }
        let ts = self.clock.at(self.k, &mut self.rng);
        self.k += 1;
        let ack = self.tpls[t].peer.and_then(|p| {
            let p = &self.tpls[p as usize];
            frames::next_seq(&p.bytes, p.patch, p.last_payload)
        });
        let tpl = &mut self.tpls[t];
        let len = match tpl.patch {
            Patch::Fixed => tpl.bytes.len() as u32,
            Patch::Ip { .. } => len.clamp(tpl.bytes.len() as u32, MAX_WIRE_LEN),
        };
        tpl.last_payload = frames::patch(&mut tpl.bytes, tpl.patch, len, tpl.last_payload, ack);
        self.w.record(ts, len, &tpl.bytes)?;
        tpl.frames += 1;
        tpl.wire_bytes += u64::from(len);
        if tpl.frames == 1 {
            tpl.first_us = ts;
        }
        tpl.last_us = ts;
        Ok(())
    }

    fn one(&mut self, t: usize) -> Result<(), GenError> {
        self.emit(t, 0)
    }

    fn hdr(&self, t: usize) -> u32 {
        self.tpls[t].bytes.len() as u32
    }

    /// A TCP data segment: mostly MSS-sized, some GRO/TSO super-frames, some partial.
    fn data_len(&mut self, t: usize, gro: f64) -> u32 {
        let hdr = self.hdr(t);
        let mss = self.tpls[t].mss.max(1);
        let r = self.rng.unit();
        if r < gro {
            let kmax = ((MAX_WIRE_LEN - hdr) / mss).clamp(2, 44);
            hdr + mss * self.rng.range(2, kmax)
        } else if r < gro + 0.12 {
            hdr + self.rng.range(1, mss - 1)
        } else {
            hdr + mss
        }
    }

    fn small(&mut self, t: usize, lo: u32, hi: u32) -> u32 {
        self.hdr(t) + self.rng.range(lo, hi)
    }

    /// `n` data segments on `data`, an ACK on `ack` after every second one.
    fn bulk(&mut self, data: usize, ack: usize, n: u32, gro: f64) -> Result<(), GenError> {
        for i in 0..n {
            let len = self.data_len(data, gro);
            self.emit(data, len)?;
            if i % 2 == 1 {
                self.emit(ack, 0)?;
            }
        }
        Ok(())
    }

    /// A new connection on flow `p`: the SYN (header only) and the SYN-ACK acknowledging it,
    /// each one sequence number on, so that the flow's next segments carry on from there.
    fn handshake(&mut self, p: Pair) -> Result<(), GenError> {
        for (t, flags) in [(p.fwd, 0x02u8), (p.rev, 0x12)] {
            let Patch::Ip {
                tcp_at: Some(at), ..
            } = self.tpls[t].patch
            else {
                return Ok(());
            };
            let flag_at = at as usize + 13;
            self.tpls[t].bytes[flag_at] = flags;
            self.emit(t, 0)?;
            self.tpls[t].bytes[flag_at] = 0x18;
            // SYN and SYN-ACK count one in the sequence space: the peer's ack is one on.
            self.tpls[t].last_payload = 1;
        }
        Ok(())
    }

    fn run(&mut self, h: &Household, act: Act, dev: usize) -> Result<(), GenError> {
        let f = &h.flows[dev - 1];
        match act {
            Act::Web => {
                let p = f.web[self.rng.below(3) as usize];
                if self.handshakes > 0.0 && self.rng.chance(self.handshakes) {
                    self.handshake(p)?;
                }
                if self.rng.chance(0.3) {
                    let len = self.small(p.fwd, 200, 900);
                    self.emit(p.fwd, len)?;
                }
                let n = self.rng.range(1, 24);
                self.bulk(p.rev, p.fwd, n, 0.1)?;
            }
            Act::Quic => {
                let p = f.quic[self.rng.below(2) as usize];
                for i in 0..self.rng.range(1, 30) {
                    let len = if self.rng.chance(0.05) {
                        // UDP GRO coalesces QUIC datagrams too.
                        self.hdr(p.rev) + 1350 * self.rng.range(2, 40)
                    } else {
                        self.small(p.rev, 1200, 1350)
                    };
                    self.emit(p.rev, len)?;
                    if i % 3 == 2 {
                        let len = self.small(p.fwd, 30, 60);
                        self.emit(p.fwd, len)?;
                    }
                }
            }
            Act::Stream => {
                let n = self.rng.range(20, 60);
                self.bulk(f.stream.rev, f.stream.fwd, n, 0.4)?;
            }
            Act::BigDownload => {
                let n = self.rng.range(30, 80);
                self.bulk(f.stream.rev, f.stream.fwd, n, 0.6)?;
            }
            Act::GameUdp => {
                for _ in 0..self.rng.range(2, 10) {
                    let len = self.small(f.game.fwd, 40, 200);
                    self.emit(f.game.fwd, len)?;
                    let len = self.small(f.game.rev, 40, 300);
                    self.emit(f.game.rev, len)?;
                }
            }
            Act::Upload => {
                let n = self.rng.range(5, 30);
                self.bulk(f.upload.fwd, f.upload.rev, n, 0.3)?;
            }
            Act::Iot => {
                for _ in 0..self.rng.range(1, 2) {
                    let len = self.small(f.iot.fwd, 20, 200);
                    self.emit(f.iot.fwd, len)?;
                }
                for _ in 0..self.rng.range(1, 2) {
                    let len = self.small(f.iot.rev, 0, 150);
                    self.emit(f.iot.rev, len)?;
                }
            }
            Act::LanV4 | Act::LanV6 => {
                let p = if act == Act::LanV4 { f.lan4 } else { f.lan6 };
                if let Some(p) = p {
                    let n = self.rng.range(10, 50);
                    if self.rng.chance(0.6) {
                        self.bulk(p.rev, p.fwd, n, 0.5)?;
                    } else {
                        self.bulk(p.fwd, p.rev, n, 0.5)?;
                    }
                }
            }
            Act::Print => {
                if let Some(p) = f.print {
                    let n = self.rng.range(5, 20);
                    self.bulk(p.fwd, p.rev, n, 0.0)?;
                }
            }
            Act::Hairpin => {
                if let Some(p) = f.hairpin {
                    for _ in 0..self.rng.range(1, 4) {
                        let len = self.small(p.fwd, 100, 1200);
                        // The router forwards the same IP packet: same wire length.
                        self.emit(p.fwd, len)?;
                        self.emit(p.rev, len)?;
                    }
                }
            }
            Act::Dns => {
                let p = if self.rng.chance(0.5) { f.dns4 } else { f.dns6 };
                self.one(p.fwd)?;
                self.one(p.rev)?;
            }
            Act::Ping | Act::PingInternet => {
                let p = match act {
                    Act::PingInternet => f.ping_net,
                    _ if self.rng.chance(0.5) => f.ping4,
                    _ => f.ping6,
                };
                for _ in 0..self.rng.range(1, 4) {
                    self.one(p.fwd)?;
                    self.one(p.rev)?;
                }
            }
            Act::Arp => {
                let p = if self.rng.chance(0.5) {
                    f.arp_ask
                } else {
                    f.arp_asked
                };
                self.one(p.fwd)?;
                self.one(p.rev)?;
            }
            Act::Dhcp => {
                let from = if self.rng.chance(0.3) { 0 } else { 2 };
                for &t in &f.dhcp[from..] {
                    self.one(t)?;
                }
            }
            Act::Mdns => {
                for _ in 0..self.rng.range(1, 3) {
                    let t = if self.rng.chance(0.5) {
                        f.mdns4
                    } else {
                        f.mdns6
                    };
                    self.one(t)?;
                }
            }
            Act::Ndp => {
                self.one(f.ndp.fwd)?;
                self.one(f.ndp.rev)?;
            }
            Act::Iptv => {
                let ch = h.router.iptv[self.rng.below(h.router.iptv.len() as u64) as usize];
                for _ in 0..self.rng.range(10, 40) {
                    self.one(ch)?;
                }
                if self.rng.chance(0.2) {
                    let n = self.rng.range(4, 20);
                    self.bulk(f.vod.rev, f.vod.fwd, n, 0.0)?;
                }
            }
            Act::QinQ => {
                let n = self.rng.range(2, 6);
                self.bulk(f.qinq.rev, f.qinq.fwd, n, 0.0)?;
            }
            Act::Malformed => {
                let t = f.malformed[self.rng.below(f.malformed.len() as u64) as usize];
                self.one(t)?;
            }
            Act::Edge => {
                let t = f.edge[self.rng.below(f.edge.len() as u64) as usize];
                self.one(t)?;
            }
            Act::Ra => self.one(h.router.ra)?,
            Act::Stp => self.one(h.router.stp)?,
            Act::Ghost => self.one(h.router.ghost)?,
            Act::RouterArp => {
                let p = f.arp_asked;
                self.one(p.fwd)?;
                self.one(p.rev)?;
            }
        }
        Ok(())
    }

    fn pick_act(&mut self, list: &[(Act, f64)]) -> Act {
        let total: f64 = list.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.unit() * total;
        for &(a, w) in list {
            if x < w {
                return a;
            }
            x -= w;
        }
        list[list.len() - 1].0
    }
}

/// Every kind of traffic once, right after the router's first RA, so that even a short capture
/// holds the whole mix (and every later GUA frame follows the announcement).
fn preamble(g: &mut Gen, h: &Household) -> Result<(), GenError> {
    let n = h.flows.len();
    g.run(h, Act::Ra, 1)?;
    g.run(h, Act::Stp, 1)?;
    g.run(h, Act::Ghost, 1)?;
    g.run(h, Act::RouterArp, 1)?;
    let all = [
        Act::Dhcp,
        Act::Arp,
        Act::Dns,
        Act::Ping,
        Act::PingInternet,
        Act::Mdns,
        Act::Ndp,
        Act::Web,
        Act::Quic,
        Act::Stream,
        Act::BigDownload,
        Act::GameUdp,
        Act::Upload,
        Act::Iot,
        Act::LanV4,
        Act::LanV6,
        Act::Print,
        Act::Hairpin,
        Act::Iptv,
        Act::QinQ,
        Act::Malformed,
        Act::Edge,
    ];
    for act in all {
        let who = (1..=n).find(|&d| {
            let kind = h.hosts[d].kind.unwrap_or(Kind::Phone);
            acts(kind).iter().any(|&(a, _)| a == act)
        });
        if let Some(d) = who {
            match act {
                // Every malformed and every edge frame once, not one of them at random.
                Act::Malformed | Act::Edge => {
                    let f = &h.flows[d - 1];
                    let list = if act == Act::Malformed {
                        &f.malformed
                    } else {
                        &f.edge
                    };
                    for &t in list {
                        g.one(t)?;
                    }
                }
                Act::Dns | Act::Ping => {
                    let f = &h.flows[d - 1];
                    let (a, b) = if act == Act::Dns {
                        (f.dns4, f.dns6)
                    } else {
                        (f.ping4, f.ping6)
                    };
                    for t in [a.fwd, a.rev, b.fwd, b.rev] {
                        g.one(t)?;
                    }
                }
                Act::Mdns => {
                    let f = &h.flows[d - 1];
                    g.one(f.mdns4)?;
                    g.one(f.mdns6)?;
                }
                Act::Arp => {
                    let f = &h.flows[d - 1];
                    for t in [f.arp_ask.fwd, f.arp_ask.rev] {
                        g.one(t)?;
                    }
                }
                _ => g.run(h, act, d)?,
            }
        }
    }
    // Make sure big super-frames are in even the shortest capture.
    let f = &h.flows[0];
    let len = g.hdr(f.stream.rev) + g.tpls[f.stream.rev].mss * 44;
    g.emit(f.stream.rev, len)?;
    g.emit(f.stream.fwd, 0)?;
    Ok(())
}

fn validate(opts: &GenOptions) -> Result<(), GenError> {
    let bad = |m: String| Err(GenError::Options(m));
    if opts.devices == 0 || opts.devices > MAX_DEVICES {
        return bad(format!(
            "devices is {}; choose between 1 and {MAX_DEVICES}",
            opts.devices
        ));
    }
    if opts.duration_secs == 0 {
        return bad("duration_secs is 0; give the capture at least one second".into());
    }
    if opts.handshake_percent > 100 {
        return bad(format!(
            "handshake_percent is {}; give a percentage from 0 to 100",
            opts.handshake_percent
        ));
    }
    if !(MIN_SNAPLEN..=262_144).contains(&opts.snaplen) {
        return bad(format!(
            "snaplen is {}; choose between {MIN_SNAPLEN} (headers only) and 262144",
            opts.snaplen
        ));
    }
    let end_secs = (opts.start_ns / 1_000_000_000).saturating_add(opts.duration_secs as i64);
    if opts.start_ns < 0 || end_secs >= i64::from(u32::MAX) {
        return bad(format!(
            "start_ns {} with duration {} s leaves the pcap timestamp range (1970 to 2106)",
            opts.start_ns, opts.duration_secs
        ));
    }
    Ok(())
}

pub(super) fn generate(path: &Path, opts: &GenOptions) -> Result<Expected, GenError> {
    validate(opts)?;
    let mut rng = Rng::new(opts.seed);
    let (household, tpls) = build(opts, &mut rng);
    let w = PcapWriter::create(path, opts.snaplen)?;
    let start_us = opts.start_ns.div_euclid(1000);
    let mut g = Gen {
        rng,
        clock: Clock::new(start_us, opts.duration_secs, opts.frames),
        w,
        tpls,
        k: 0,
        n: opts.frames,
        handshakes: f64::from(opts.handshake_percent) / 100.0,
    };
    preamble(&mut g, &household)?;
    let h = &household;
    while g.k < g.n {
        let cum = if g.clock.is_night() {
            &h.cum_night
        } else {
            &h.cum_day
        };
        let x = g.rng.unit() * cum[cum.len() - 1];
        let actor = cum.partition_point(|&c| c <= x).min(cum.len() - 1);
        if actor == ROUTER {
            let act = g.pick_act(ROUTER_ACTS);
            let dev = 1 + g.rng.below(h.flows.len() as u64) as usize;
            g.run(h, act, dev)?;
        } else {
            let kind = h.hosts[actor].kind.unwrap_or(Kind::Phone);
            let act = g.pick_act(acts(kind));
            g.run(h, act, actor)?;
        }
    }
    let Gen { w, tpls, .. } = g;
    w.finish()?;
    tracing::debug!(frames = opts.frames, templates = tpls.len(), path = %path.display(), "household capture written");
    Ok(tally(&household, &tpls, opts.frames))
}

/// Folds the per-template tallies into per-MAC totals, by ACCOUNTING.md.
fn tally(h: &Household, tpls: &[Tpl], frames: u64) -> Expected {
    #[derive(Clone, Copy)]
    struct Acc {
        c: Counts,
        sent: (i64, i64),
        recv: (i64, i64),
    }
    let mut acc = vec![
        Acc {
            c: Counts::default(),
            sent: (i64::MAX, i64::MIN),
            recv: (i64::MAX, i64::MIN),
        };
        h.hosts.len()
    ];
    for t in tpls.iter().filter(|t| t.frames > 0) {
        let s = &mut acc[t.src as usize];
        s.c.frames_sent += t.frames;
        s.c.bytes_sent += t.wire_bytes;
        s.sent = (s.sent.0.min(t.first_us), s.sent.1.max(t.last_us));
        if t.net == Internet::Upload {
            s.c.internet_upload_bytes += t.wire_bytes;
        }
        if let Some(d) = t.dst {
            let d = &mut acc[d as usize];
            d.c.frames_received += t.frames;
            d.c.bytes_received += t.wire_bytes;
            d.recv = (d.recv.0.min(t.first_us), d.recv.1.max(t.last_us));
            if t.net == Internet::Download {
                d.c.internet_download_bytes += t.wire_bytes;
            }
        }
    }
    let mut devices = BTreeMap::new();
    for (host, a) in h.hosts.iter().zip(&acc) {
        if a.c.frames_sent == 0 && a.c.frames_received == 0 {
            continue;
        }
        let (first, last) = if a.c.frames_sent > 0 { a.sent } else { a.recv };
        devices.insert(
            host.mac,
            ExpectedDevice {
                counts: a.c,
                first_seen_ns: first * 1000,
                last_seen_ns: last * 1000,
                name: host.name.clone(),
            },
        );
    }
    Expected {
        gateway: h.hosts[ROUTER].mac,
        lan_prefixes: vec![h.lan],
        ra_prefixes: vec![h.ra_prefix],
        frames,
        devices,
    }
}

/// Spreads the flood's MAC indices over the 47 bits of unicast MACs with a bijection, so that
/// `distinct` indices give exactly `distinct` addresses that look random.
fn flood_mac(i: u64, key: u64) -> MacAddr {
    const BITS: u32 = 47;
    const MASK: u64 = (1 << BITS) - 1;
    let mut x = (i ^ key) & MASK;
    // Odd multipliers and xor-shifts are invertible modulo 2^47.
    x = x.wrapping_mul(0x5851_f42d_4c95_7f2d | 1) & MASK;
    x ^= x >> 23;
    x = x.wrapping_mul(0x2545_f491_4f6c_dd1d | 1) & MASK;
    x ^= x >> 19;
    let first = ((x >> 40) as u8 & 0x7f) << 1;
    let b = x.to_be_bytes();
    MacAddr([first, b[3], b[4], b[5], b[6], b[7]])
}

pub(super) fn mac_flood(
    path: &Path,
    seed: u64,
    frames: u64,
    distinct: u64,
) -> Result<(), GenError> {
    if distinct == 0 || distinct > (1 << 47) {
        return Err(GenError::Options(format!(
            "distinct_macs is {distinct}; choose between 1 and 2^47"
        )));
    }
    let mut rng = Rng::new(seed);
    let key = rng.next_u64();
    let mut w = PcapWriter::create(path, MIN_SNAPLEN)?;
    let l2 = L2 {
        src: MacAddr([0x02, 0, 0, 0, 0, 1]),
        dst: MacAddr::BROADCAST,
        tags: Tags::None,
    };
    let ips = Ips::V4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut frame = frames::tcp(&l2, ips, 1024, 80, 1, 0).bytes;
    frame.resize(frame.len().max(60), 0);
    let start_us = super::DEFAULT_START_NS / 1000;
    for k in 0..frames {
        let i = if k < distinct { k } else { rng.below(distinct) };
        frame[6..12].copy_from_slice(&flood_mac(i, key).0);
        w.record(start_us + k as i64, frame.len() as u32, &frame)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_parse() {
        for s in WEB_V6 {
            assert_ne!(v6(s), Ipv6Addr::UNSPECIFIED, "{s}");
        }
        for s in [
            "ff02::fb",
            "ff02::1",
            "2001:db8:4b40:1e00::",
            "fd12:3456:789a::1",
            "2001:db8:4b40:1e01::1",
        ] {
            assert_ne!(v6(s), Ipv6Addr::UNSPECIFIED, "{s}");
        }
    }

    #[test]
    fn flood_macs_are_distinct_unicast() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            let m = flood_mac(i, 42);
            assert!(!m.is_group());
            assert!(seen.insert(m), "collision at {i}");
        }
    }

    #[test]
    fn clock_is_monotone_within_range_and_follows_the_rhythm() {
        let start = super::super::DEFAULT_START_NS / 1000;
        let n = 200_000u64;
        let mut c = Clock::new(start, 86_400, n);
        let mut rng = Rng::new(3);
        let mut last = start;
        let mut per_hour = [0u64; 24];
        for k in 0..n {
            let t = c.at(k, &mut rng);
            assert!(t >= last && t < start + 86_400_000_000);
            last = t;
            per_hour[((t - start) / 3_600_000_000) as usize] += 1;
        }
        // 2026-03-01 is a Sunday: 20:00 is busier than 03:00 by the HOURLY ratio (20x).
        assert!(per_hour[20] > 10 * per_hour[3], "{per_hour:?}");
    }
}
