//! Where the Pi sits and whether it sees the household's traffic: one verdict, in household
//! words, for `lanmeter doctor` (a few seconds of listening) and the running daemon (what it
//! captured in the last 30 to 60 minutes: the System page, the first-run wizard and
//! `GET /api/v1/visibility`).
//!
//! The evidence is simple: unicast frames that are neither from nor to this machine prove that
//! the capture sees other devices' conversations (a bridge, a mirror port or a hub); devices
//! sending their traffic *to* this machine while it forwards make it the router. Anything else
//! means it counts itself and nothing more, and the remedy is one of the three set-ups of
//! docs/INSTALL.md. [`verdict`] is a pure function of those facts, so its wording is tested
//! without a network; [`Tally`] collects them from decoded frames (bounded: a flood of fake
//! MACs cannot grow it), and [`Watch`] shares one tally between the capture thread and the web.

use crate::capture::FrameSink;
use crate::capture::decode::{Dest, Frame};
use crate::model::MacAddr;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Where a person finds the set-ups once the package is installed.
pub const INSTALL_DOC: &str = "/usr/share/doc/lanmeter/INSTALL.md";
/// At most this many MACs are remembered per kind: a household has far fewer, and a flood of
/// random source MACs must not grow memory (the count then reads "at least this many").
const MAX_MACS: usize = 1024;
/// The running daemon judges by the last one to two of these: a Pi moved (or a mirror port
/// switched off) shows in the verdict within this long, without a restart.
pub const WINDOW: Duration = Duration::from_secs(30 * 60);

/// What the capture observed, reduced to what the verdict needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visibility {
    pub frames: u64,
    /// Devices seen in unicast frames neither from nor to this machine (nor from the gateway):
    /// proof that the capture sees other devices' conversations (a bridge, mirror port or hub).
    pub third_party_macs: usize,
    /// Other devices (not the gateway) that sent unicast frames to this machine: the household's
    /// traffic when this machine routes, else just someone talking to it (an SSH session).
    pub talking_to_us_macs: usize,
}

/// Facts about where the interface sits, for the topology guess.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub is_bridge: bool,
    pub is_bridge_port: bool,
    pub forwarding: bool,
    pub promiscuous: bool,
}

impl Placement {
    /// The interface's facts as the kernel shows them in /sys and /proc.
    pub fn read(iface: &str, promiscuous: bool) -> Placement {
        let one = |p: String| {
            std::fs::read_to_string(p)
                .map(|s| s.trim() == "1")
                .unwrap_or(false)
        };
        Placement {
            is_bridge: Path::new(&format!("/sys/class/net/{iface}/bridge")).exists(),
            is_bridge_port: Path::new(&format!("/sys/class/net/{iface}/brport")).exists(),
            // Per interface: the capture interface's own setting is what makes it a router.
            forwarding: one(format!("/proc/sys/net/ipv4/conf/{iface}/forwarding"))
                || one(format!("/proc/sys/net/ipv6/conf/{iface}/forwarding")),
            promiscuous,
        }
    }
}

/// Everything the verdict is made from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub interface: String,
    /// How long the capture listened for `seen`.
    pub listened: Duration,
    pub seen: Visibility,
    pub placement: Placement,
    /// The share (0–1) of the bytes the router itself counted that lanmeter saw too, when the
    /// router's own counters are known; `None` until then.
    pub coverage: Option<f64>,
}

/// The likely set-up, from the facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// No frames at all.
    Silent,
    /// Only this machine's own traffic (and broadcasts).
    OnlyItself,
    /// A port of a bridge: part of the bridged traffic only.
    BridgePort,
    /// This machine bridges the LAN (access point in front of the router).
    Bridge,
    /// This machine routes the household's traffic.
    Router,
    /// A switch's mirror port or a hub.
    Mirror,
}

impl Setup {
    /// The stable name of the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Setup::Silent => "silent",
            Setup::OnlyItself => "only_itself",
            Setup::BridgePort => "bridge_port",
            Setup::Bridge => "bridge",
            Setup::Router => "router",
            Setup::Mirror => "mirror",
        }
    }
}

/// One of the three set-ups of docs/INSTALL.md, told as a remedy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remedy {
    pub title: &'static str,
    pub how: &'static str,
}

/// The three set-ups in which the Pi sees the household's traffic (docs/INSTALL.md, "Where to
/// put the Pi"), in the order that asks least of a household.
pub const REMEDIES: [Remedy; 3] = [
    Remedy {
        title: "Make the Pi your Wi-Fi access point",
        how: "Plug the Pi's network cable into the router and let the Pi offer the household's Wi-Fi (turn the router's own Wi-Fi off, or give it another name). Every phone, tablet and laptop on that Wi-Fi then passes through the Pi.",
    },
    Remedy {
        title: "Make the Pi the router",
        how: "Put the Pi between the internet box and the rest of the household (a second network adapter to a switch, or the Pi's Wi-Fi as hotspot). Everything passes through it; fine up to a few hundred Mbit/s.",
    },
    Remedy {
        title: "Use a switch with a mirror port",
        how: "A \"smart\" switch (such as TP-Link TL-SG105E or Netgear GS105E) between the router and everything else copies the router's traffic to the Pi's port. Nothing else in the house changes.",
    },
];

/// The verdict on what the capture can see.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub setup: Setup,
    /// Whether lanmeter counts the household's traffic from here (not only its own).
    pub sees_household: bool,
    /// One sentence for a household: where the Pi is and what that means.
    pub headline: String,
    /// What the Pi saw, in household words with its numbers.
    pub explanation: String,
    /// What was observed, in the terms of networking (the doctor's line).
    pub summary: String,
    /// What to do, in one line (the doctor's "fix"), when something should change.
    pub fix: Option<String>,
    /// The three set-ups, when the Pi does not see the household's traffic where it is.
    pub remedies: Vec<Remedy>,
}

/// A duration as a household reads it: "5 s", "12 minutes", "3 hours".
pub fn spoken(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} minutes", s / 60),
        _ => format!("{} hours", s / 3600),
    }
}

/// A number of MACs, saying so when the bound cut it.
fn count(n: usize) -> String {
    if n >= MAX_MACS {
        format!("at least {n}")
    } else {
        n.to_string()
    }
}

fn devices(n: usize) -> String {
    match n {
        1 => "1 other device".into(),
        n => format!("{} other devices", count(n)),
    }
}

/// The verdict on what the capture can see, with the likely set-up and, when it sees only this
/// machine's own traffic, the three set-ups that would let it see the household's.
pub fn verdict(o: &Observed) -> Verdict {
    let (iface, v, p) = (&o.interface, &o.seen, o.placement);
    let during = spoken(o.listened);
    let mut out = if p.is_bridge_port {
        Verdict {
            setup: Setup::BridgePort,
            sees_household: false,
            headline: "The Pi listens on one port of a bridge, so it misses part of the household's traffic.".into(),
            explanation: format!("It listens on {iface}, one of the connections the Pi bridges together; traffic on the others passes it by. Choose the bridge itself (usually br0) as the interface in Settings."),
            summary: format!("{iface} is a port of a bridge: it carries only part of the bridged traffic"),
            fix: Some(format!("capture on the bridge itself (`interface = \"br0\"`, see `ls /sys/class/net/{iface}/brport/bridge -l`)")),
            remedies: Vec::new(),
        }
    } else if v.third_party_macs > 0 {
        let (setup, headline, topology) = if p.is_bridge {
            (
                Setup::Bridge,
                "The Pi is the Wi-Fi access point (a bridge) in front of your router: it sees the traffic of the devices that use it.",
                "this machine bridges the LAN (access point or bridge in front of the router)",
            )
        } else if p.forwarding {
            (
                Setup::Router,
                "The Pi is your household's router and also sees traffic between other devices.",
                "this machine routes and also sees frames between other devices",
            )
        } else {
            (
                Setup::Mirror,
                "The Pi is on a mirror port (or a hub): it sees the household's traffic.",
                "a switch's mirror port or a hub delivers other devices' frames",
            )
        };
        Verdict {
            setup,
            sees_household: true,
            headline: headline.into(),
            explanation: format!(
                "In {during} it saw {} sending traffic that was not to or from the Pi: the household's own traffic, which lanmeter counts.",
                devices(v.third_party_macs)
            ),
            summary: format!(
                "saw {} other devices' unicast traffic in {during} (traffic neither to nor from this machine; {} frames): {topology}",
                count(v.third_party_macs),
                v.frames
            ),
            fix: None,
            remedies: Vec::new(),
        }
    } else if p.forwarding && v.talking_to_us_macs > 0 {
        Verdict {
            setup: Setup::Router,
            sees_household: true,
            headline: "The Pi is your household's router: the devices' traffic passes through it."
                .into(),
            explanation: format!(
                "In {during}, {} sent their traffic through the Pi, which lanmeter counts.",
                devices(v.talking_to_us_macs)
            ),
            summary: format!(
                "this machine routes: {} sent it traffic in {during}; it counts what it forwards",
                devices(v.talking_to_us_macs)
            ),
            fix: None,
            remedies: Vec::new(),
        }
    } else if v.frames == 0 {
        Verdict {
            setup: Setup::Silent,
            sees_household: false,
            headline: "The Pi has heard nothing on its network connection yet.".into(),
            explanation: format!(
                "Nothing at all arrived on {iface} in {during}: check its cable or Wi-Fi, and that the interface in Settings is the one connected to your network."
            ),
            summary: format!("in {during} {iface} carried no frames at all"),
            fix: Some(format!(
                "check the cable or Wi-Fi of {iface}, and that `interface` in the settings names the connection to the household"
            )),
            remedies: REMEDIES.to_vec(),
        }
    } else {
        let promisc = if p.promiscuous {
            ""
        } else {
            " (and `promiscuous = false` in the config hides other devices' frames even on a mirror port: set it to true)"
        };
        Verdict {
            setup: Setup::OnlyItself,
            sees_household: false,
            headline:
                "The Pi only sees its own traffic: lanmeter would count the Pi and nothing else."
                    .into(),
            explanation: format!(
                "In {during} everything it saw was to or from the Pi itself, or sent to every device at once; {} talked to the Pi directly (such as the computer showing this page). The other devices' traffic goes straight to the router and passes the Pi by.",
                match v.talking_to_us_macs {
                    0 => "no other device".to_string(),
                    n => devices(n),
                }
            ),
            summary: format!(
                "in {during} {iface} carried only this machine's own traffic ({} frames; {} other devices talked to it directly, broadcasts aside)",
                v.frames, v.talking_to_us_macs
            ),
            fix: Some(format!(
                "put this machine where the household's traffic passes: as the Wi-Fi access point or bridge in front of the router, as the router, or on a switch port that mirrors the router's port{promisc}; exact commands in {INSTALL_DOC}"
            )),
            remedies: REMEDIES.to_vec(),
        }
    };
    if let Some(c) = o.coverage {
        out.summary.push_str(&format!(
            "; the router's own counters say lanmeter saw {:.0} % of the household's bytes",
            c * 100.0
        ));
    }
    out
}

/// The MACs seen so far, bounded; a batch costs one comparison per frame when it repeats the
/// previous frame's pair (as most frames of a conversation do).
#[derive(Debug, Default)]
pub struct Tally {
    frames: u64,
    third_party: HashSet<MacAddr>,
    talking_to_us: HashSet<MacAddr>,
    last: Option<(MacAddr, Dest)>,
}

impl Tally {
    /// Counts `frames`; `own` is this machine's MAC on the interface, `gateway` the router's.
    pub fn observe(&mut self, frames: &[Frame], own: Option<MacAddr>, gateway: Option<MacAddr>) {
        self.frames += frames.len() as u64;
        for f in frames {
            // Linux cooked capture (`any`) marks frames to this host instead of naming its MAC.
            let (dst, to_us) = match f.dst {
                Dest::Unicast(dst) => (Some(dst), false),
                Dest::CaptureHost { .. } => (None, true),
                _ => continue,
            };
            if self.last == Some((f.src, f.dst)) {
                continue;
            }
            self.last = Some((f.src, f.dst));
            let ours = |m: MacAddr| Some(m) == own;
            if ours(f.src) || Some(f.src) == gateway {
                continue;
            }
            let add = |set: &mut HashSet<MacAddr>, m: MacAddr| {
                if set.len() < MAX_MACS {
                    set.insert(m);
                }
            };
            let Some(dst) = dst.filter(|_| !to_us) else {
                add(&mut self.talking_to_us, f.src);
                continue;
            };
            if ours(dst) {
                add(&mut self.talking_to_us, f.src);
            } else {
                add(&mut self.third_party, f.src);
                if Some(dst) != gateway {
                    add(&mut self.third_party, dst);
                }
            }
        }
    }

    pub fn seen(&self) -> Visibility {
        Visibility {
            frames: self.frames,
            third_party_macs: self.third_party.len(),
            talking_to_us_macs: self.talking_to_us.len(),
        }
    }

    /// What this tally and an earlier one saw together (a device in both counts once).
    fn with(&self, earlier: Option<&Tally>) -> Visibility {
        let Some(e) = earlier else {
            return self.seen();
        };
        let union = |a: &HashSet<MacAddr>, b: &HashSet<MacAddr>| a.union(b).count();
        Visibility {
            frames: self.frames + e.frames,
            third_party_macs: union(&self.third_party, &e.third_party),
            talking_to_us_macs: union(&self.talking_to_us, &e.talking_to_us),
        }
    }
}

#[derive(Debug)]
struct Watched {
    interface: String,
    own: Option<MacAddr>,
    /// The start of what the verdict covers: the previous window's start, or the current's.
    since: Instant,
    /// The start of the current window.
    current_since: Instant,
    tally: Tally,
    /// The window before the current one.
    previous: Option<Tally>,
    /// Fixed facts (the demo) instead of the host's /sys.
    placement: Option<Placement>,
}

/// One tally shared by whoever feeds it frames (the capture thread, the demo's traffic) and
/// whoever asks for the verdict (the web side). The lock is taken once per batch.
#[derive(Clone, Debug)]
pub struct Watch(Arc<Mutex<Watched>>);

impl Watch {
    /// Watches `interface`, whose own MAC is `own`; `placement` fixes the facts instead of
    /// reading them from the host (a demo has no interface of its own).
    pub fn new(interface: &str, own: Option<MacAddr>, placement: Option<Placement>) -> Watch {
        let now = Instant::now();
        Watch(Arc::new(Mutex::new(Watched {
            interface: interface.to_string(),
            own,
            since: now,
            current_since: now,
            tally: Tally::default(),
            previous: None,
            placement,
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        // A panic while counting leaves a tally that is still a fine estimate.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Capture moved to another interface: what was seen on the old one no longer says
    /// anything about the new one.
    pub fn restart(&self, interface: &str, own: Option<MacAddr>) {
        let mut w = self.lock();
        w.interface = interface.to_string();
        w.own = own;
        w.since = Instant::now();
        w.current_since = w.since;
        w.tally = Tally::default();
        w.previous = None;
    }

    pub fn observe(&self, frames: &[Frame], gateway: Option<MacAddr>) {
        self.observe_at(frames, gateway, Instant::now());
    }

    /// [`Watch::observe`] at `now`: a window of [`WINDOW`] ended makes the current tally the
    /// previous one, so the verdict covers the last one to two windows.
    fn observe_at(&self, frames: &[Frame], gateway: Option<MacAddr>, now: Instant) {
        let mut w = self.lock();
        if now.saturating_duration_since(w.current_since) >= WINDOW {
            w.previous = Some(std::mem::take(&mut w.tally));
            w.since = w.current_since;
            w.current_since = now;
        }
        let own = w.own;
        w.tally.observe(frames, own, gateway);
    }

    /// What was seen in the last one or two windows, with the interface's facts read now.
    pub fn observed(&self, promiscuous: bool) -> Observed {
        let w = self.lock();
        Observed {
            interface: w.interface.clone(),
            listened: w.since.elapsed(),
            seen: w.tally.with(w.previous.as_ref()),
            placement: w
                .placement
                .unwrap_or_else(|| Placement::read(&w.interface, promiscuous)),
            coverage: None,
        }
    }
}

/// A frame sink that only tallies (the doctor's few seconds of listening).
pub struct TallySink {
    pub watch: Watch,
    pub gateway: Option<MacAddr>,
}

impl FrameSink for TallySink {
    fn ingest(&mut self, frames: &[Frame]) {
        self.watch.observe(frames, self.gateway);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECS: Duration = Duration::from_secs(5);

    fn observed(seen: Visibility, placement: Placement) -> Observed {
        Observed {
            interface: "eth0".into(),
            listened: SECS,
            seen,
            placement,
            coverage: None,
        }
    }

    fn others(n: usize) -> Visibility {
        Visibility {
            frames: 100,
            third_party_macs: n,
            talking_to_us_macs: 0,
        }
    }

    /// The wording of every set-up, as a household reads it on the System page and in the
    /// wizard, and as the doctor prints it.
    #[test]
    fn each_setup_is_told_in_household_words() {
        let mirror = verdict(&observed(others(3), Placement::default()));
        assert_eq!(mirror.setup, Setup::Mirror);
        assert!(mirror.sees_household && mirror.remedies.is_empty() && mirror.fix.is_none());
        assert_eq!(
            mirror.headline,
            "The Pi is on a mirror port (or a hub): it sees the household's traffic."
        );
        assert_eq!(
            mirror.explanation,
            "In 5 s it saw 3 other devices sending traffic that was not to or from the Pi: the household's own traffic, which lanmeter counts."
        );
        assert!(
            mirror.summary.starts_with(
                "saw 3 other devices' unicast traffic in 5 s (traffic neither to nor from this machine; 100 frames)"
            ),
            "{}",
            mirror.summary
        );

        let bridge = verdict(&observed(
            others(1),
            Placement {
                is_bridge: true,
                ..Default::default()
            },
        ));
        assert_eq!(bridge.setup, Setup::Bridge);
        assert!(bridge.headline.contains("Wi-Fi access point (a bridge)"));
        assert!(
            bridge
                .summary
                .contains("saw 1 other devices' unicast traffic")
        );
        assert!(bridge.summary.contains("bridges the LAN"));

        let routed = Visibility {
            frames: 100,
            third_party_macs: 0,
            talking_to_us_macs: 4,
        };
        let forwarding = Placement {
            forwarding: true,
            ..Default::default()
        };
        let router = verdict(&observed(routed.clone(), forwarding));
        assert_eq!(router.setup, Setup::Router);
        assert!(router.sees_household);
        assert_eq!(
            router.headline,
            "The Pi is your household's router: the devices' traffic passes through it."
        );
        assert_eq!(
            router.explanation,
            "In 5 s, 4 other devices sent their traffic through the Pi, which lanmeter counts."
        );
        assert_eq!(
            router.summary,
            "this machine routes: 4 other devices sent it traffic in 5 s; it counts what it forwards"
        );
        let router_and_more = verdict(&observed(others(2), forwarding));
        assert_eq!(router_and_more.setup, Setup::Router);
        assert!(router_and_more.summary.contains("routes and also sees"));

        let port = verdict(&observed(
            others(3),
            Placement {
                is_bridge_port: true,
                ..Default::default()
            },
        ));
        assert_eq!(port.setup, Setup::BridgePort);
        assert!(!port.sees_household);
        assert!(port.headline.contains("one port of a bridge"));
        assert!(port.explanation.contains("usually br0"));
        assert!(port.fix.unwrap().contains("interface = \"br0\""));

        let alone = Visibility {
            frames: 40,
            third_party_macs: 0,
            talking_to_us_macs: 1,
        };
        let promisc = Placement {
            promiscuous: true,
            ..Default::default()
        };
        let only = verdict(&observed(alone.clone(), promisc));
        assert_eq!(only.setup, Setup::OnlyItself);
        assert!(!only.sees_household);
        assert_eq!(
            only.headline,
            "The Pi only sees its own traffic: lanmeter would count the Pi and nothing else."
        );
        assert!(
            only.summary.contains(
                "only this machine's own traffic (40 frames; 1 other devices talked to it directly"
            ),
            "{}",
            only.summary
        );
        let fix = only.fix.clone().unwrap();
        assert!(fix.contains("mirrors the router's port") && fix.contains(INSTALL_DOC));
        assert!(!fix.contains("promiscuous"));
        let titles: Vec<&str> = only.remedies.iter().map(|r| r.title).collect();
        assert_eq!(
            titles,
            [
                "Make the Pi your Wi-Fi access point",
                "Make the Pi the router",
                "Use a switch with a mirror port"
            ]
        );
        // Talking to it without forwarding is not routing.
        assert_eq!(verdict(&observed(routed, promisc)).setup, Setup::OnlyItself);
        let not_promisc = verdict(&observed(alone, Placement::default()));
        assert!(not_promisc.fix.unwrap().contains("promiscuous = false"));

        let silent = verdict(&observed(Visibility::default(), promisc));
        assert_eq!(silent.setup, Setup::Silent);
        assert_eq!(
            silent.headline,
            "The Pi has heard nothing on its network connection yet."
        );
        assert!(
            silent
                .explanation
                .starts_with("Nothing at all arrived on eth0 in 5 s")
        );
        assert_eq!(silent.remedies.len(), 3);
    }

    #[test]
    fn a_coverage_figure_is_added_to_the_summary_when_known() {
        let mut o = observed(others(3), Placement::default());
        o.coverage = Some(0.42);
        assert!(
            verdict(&o).summary.ends_with(
                "the router's own counters say lanmeter saw 42 % of the household's bytes"
            )
        );
    }

    #[test]
    fn durations_are_spoken() {
        assert_eq!(spoken(Duration::from_secs(5)), "5 s");
        assert_eq!(spoken(Duration::from_secs(600)), "10 minutes");
        assert_eq!(spoken(Duration::from_secs(3 * 3600 + 5)), "3 hours");
    }

    fn frame(src: [u8; 6], dst: [u8; 6]) -> Frame {
        Frame {
            src: MacAddr(src),
            dst: Dest::Unicast(MacAddr(dst)),
            wire_len: 60,
            ..Frame::EMPTY
        }
    }

    #[test]
    fn the_tally_counts_other_devices_conversations_and_who_talks_to_us() {
        let (own, gw, a, b, c) = (
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 9],
            [2, 0, 0, 0, 0, 0xa],
            [2, 0, 0, 0, 0, 0xb],
            [2, 0, 0, 0, 0, 0xc],
        );
        let mut t = Tally::default();
        let frames = [
            frame(own, gw), // our own traffic
            frame(gw, own),
            frame(gw, a),  // the router to a device: not proof of anything
            frame(a, gw),  // a device to the router, seen here: a counts
            frame(a, gw),  // repeated pair
            frame(b, c),   // two devices talking: both count
            frame(c, own), // c talks to us
            Frame {
                src: MacAddr(b),
                dst: Dest::Group,
                ..Frame::EMPTY
            },
        ];
        t.observe(&frames, Some(MacAddr(own)), Some(MacAddr(gw)));
        assert_eq!(
            t.seen(),
            Visibility {
                frames: 8,
                third_party_macs: 3,
                talking_to_us_macs: 1,
            }
        );
    }

    /// A Pi taken off a mirror port: after two windows of its own traffic only, the verdict
    /// says so without a restart; within them, both windows count (a device seen in both once).
    #[test]
    fn the_watch_judges_by_the_last_windows() {
        let (own, gw, a, b) = (
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 9],
            [2, 0, 0, 0, 0, 0xa],
            [2, 0, 0, 0, 0, 0xb],
        );
        let w = Watch::new("eth0", Some(MacAddr(own)), Some(Placement::default()));
        let t0 = Instant::now();
        let gateway = Some(MacAddr(gw));
        w.observe_at(&[frame(a, gw), frame(b, gw)], gateway, t0);
        w.observe_at(&[frame(a, gw)], gateway, t0 + WINDOW);
        let o = w.observed(true);
        assert_eq!(o.seen.third_party_macs, 2, "{o:?}");
        assert_eq!(o.seen.frames, 3);
        assert_eq!(verdict(&o).setup, Setup::Mirror);
        w.observe_at(&[frame(own, gw), frame(gw, own)], gateway, t0 + WINDOW * 2);
        assert_eq!(
            w.observed(true).seen.third_party_macs,
            1,
            "a, in the previous window"
        );
        w.observe_at(&[frame(own, gw)], gateway, t0 + WINDOW * 3);
        let o = w.observed(true);
        assert_eq!(o.seen.third_party_macs, 0);
        assert_eq!(verdict(&o).setup, Setup::OnlyItself);
    }

    #[test]
    fn the_tally_is_bounded() {
        let mut t = Tally::default();
        let frames: Vec<Frame> = (0..3000u32)
            .map(|i| {
                let b = i.to_be_bytes();
                frame([2, 1, b[0], b[1], b[2], b[3]], [2, 0, 0, 0, 0, 9])
            })
            .collect();
        t.observe(&frames, None, Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(t.seen().third_party_macs, MAX_MACS);
        assert!(
            verdict(&observed(t.seen(), Placement::default()))
                .summary
                .contains("at least 1024 other devices'"),
        );
    }
}
