//! A pair of network namespaces joined by a veth pair: a real, private link for live tests.
//!
//! Each pair gets namespace names and a subnet made from the process id and a counter, so tests
//! running in parallel (and several test processes) never collide. Traffic stays between the two
//! namespaces. The namespaces (and with them the veth pair) are deleted on drop, panics included.
//! Needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN), as CI and the dev machines have.

#![allow(dead_code)] // Not every test module uses every helper.

use lanmeter::model::MacAddr;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT_PAIR: AtomicU32 = AtomicU32::new(0);

/// Kernel counters of one interface, as `ip -s link` reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

impl KernelCounters {
    pub fn since(self, before: KernelCounters) -> KernelCounters {
        KernelCounters {
            rx_packets: self.rx_packets - before.rx_packets,
            rx_bytes: self.rx_bytes - before.rx_bytes,
            tx_packets: self.tx_packets - before.tx_packets,
            tx_bytes: self.tx_bytes - before.tx_bytes,
        }
    }
}

pub struct NetnsPair {
    /// Namespace names (under /run/netns).
    pub a: String,
    pub b: String,
    /// Interface names inside each namespace.
    pub a_if: String,
    pub b_if: String,
    pub a_mac: MacAddr,
    pub b_mac: MacAddr,
    pub a_ip: Ipv4Addr,
    pub b_ip: Ipv4Addr,
}

/// Runs a command that must succeed; panics with its stderr otherwise.
pub fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl NetnsPair {
    /// A quiet pair: IPv6 is disabled in both namespaces so the link carries only what a test
    /// sends (no DAD, MLD or router solicitations arriving at unpredictable moments).
    pub fn new() -> NetnsPair {
        Self::build(false)
    }

    /// A pair with IPv6 on (link-local addresses, neighbour discovery), for IPv6 tests.
    pub fn new_with_ipv6() -> NetnsPair {
        Self::build(true)
    }

    fn build(ipv6: bool) -> NetnsPair {
        let pid = std::process::id();
        let n = NEXT_PAIR.fetch_add(1, Ordering::Relaxed);
        // 10.x.y.0/24 with x from the pid and y from the counter: unique per pair within a process
        // and, for 200 distinct pids mod 200, across processes.
        let x = (20 + pid % 200) as u8;
        let y = (n % 256) as u8;
        let tag = format!("{pid}-{n}");
        let pair = NetnsPair {
            a: format!("lm-{tag}-a"),
            b: format!("lm-{tag}-b"),
            a_if: "lma0".to_string(),
            b_if: "lmb0".to_string(),
            // A carries a real vendor prefix (Raspberry Pi) so vendor lookups have something to
            // find; B a locally administered one, like a phone's private address.
            a_mac: MacAddr([0xdc, 0xa6, 0x32, x, y, 0x01]),
            b_mac: MacAddr([0x02, 0x00, 0x5e, x, y, 0x02]),
            a_ip: Ipv4Addr::new(10, x, y, 1),
            b_ip: Ipv4Addr::new(10, x, y, 2),
        };
        // From here on, Drop cleans up whatever was created, even if a later step panics.
        run(&["ip", "netns", "add", &pair.a]);
        run(&["ip", "netns", "add", &pair.b]);
        for ns in [&pair.a, &pair.b] {
            if !ipv6 {
                run(&[
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ]);
            }
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        pair.create_link();
        pair
    }

    /// Creates the veth pair with its MACs and addresses and brings it up. Public so a test can
    /// delete the link and bring "the same" interface back, as an unplugged USB adapter would.
    pub fn create_link(&self) {
        // Created directly inside the namespaces, so the names never exist in the root namespace
        // and cannot collide with another pair's.
        run(&[
            "ip", "link", "add", &self.a_if, "netns", &self.a, "type", "veth", "peer", "name",
            &self.b_if, "netns", &self.b,
        ]);
        for (ns, ifname, mac, ip) in [
            (&self.a, &self.a_if, self.a_mac, self.a_ip),
            (&self.b, &self.b_if, self.b_mac, self.b_ip),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "link",
                "set",
                ifname,
                "address",
                &mac.to_string(),
            ]);
            run(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                ifname,
            ]);
            run(&["ip", "-n", ns, "link", "set", ifname, "up"]);
        }
    }

    /// Permanent neighbour entries on both ends, A's end named `a_if` (a test may have renamed
    /// it): the link then carries no ARP, only what a test sends.
    pub fn quiet_neighbours(&self, a_if: &str) {
        for (ns, ifname, ip, mac) in [
            (&self.a, a_if, self.b_ip, self.b_mac),
            (&self.b, self.b_if.as_str(), self.a_ip, self.a_mac),
        ] {
            run(&[
                "ip",
                "-n",
                ns,
                "neigh",
                "replace",
                &ip.to_string(),
                "lladdr",
                &mac.to_string(),
                "dev",
                ifname,
                "nud",
                "permanent",
            ]);
        }
    }

    /// Runs a command inside namespace `ns` and waits for it.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {ns}: {e}"))
    }

    /// Starts a command inside namespace `ns`; the caller waits for or kills it.
    pub fn spawn(&self, ns: &str, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {args:?} in {ns}: {e}"))
    }

    /// rx/tx packets and bytes of `ifname` in namespace `ns`.
    pub fn kernel_counters(&self, ns: &str, ifname: &str) -> KernelCounters {
        let out = run(&["ip", "-n", ns, "-s", "-j", "link", "show", ifname]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("`ip -s -j link` printed bad JSON: {e}"));
        let s = &v[0]["stats64"];
        let get = |dir: &str, what: &str| {
            s[dir][what]
                .as_u64()
                .unwrap_or_else(|| panic!("no stats64.{dir}.{what} in {v}"))
        };
        KernelCounters {
            rx_packets: get("rx", "packets"),
            rx_bytes: get("rx", "bytes"),
            tx_packets: get("tx", "packets"),
            tx_bytes: get("tx", "bytes"),
        }
    }

    /// Runs `f` on a fresh thread that has entered namespace `ns`: sockets (a pcap handle
    /// included) opened there stay bound to that namespace wherever they are used afterwards.
    pub fn in_ns<T: Send>(&self, ns: &str, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = std::fs::File::open(&path)
                    .unwrap_or_else(|e| panic!("cannot open {path}: {e}"));
                nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the peer.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A child process that is killed if the test ends (or panics) before it exits.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pair_is_created_reachable_and_removed() {
    let names;
    {
        let p = NetnsPair::new();
        names = (p.a.clone(), p.b.clone());
        let ping = p.exec(&p.b, &["ping", "-c", "1", "-W", "2", &p.a_ip.to_string()]);
        assert!(ping.status.success(), "B cannot ping A");
        let out = run(&["ip", "-n", &p.a, "-j", "link", "show", &p.a_if]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&p.a_mac.to_string()),
            "A's MAC was not set"
        );
        let c = p.kernel_counters(&p.a, &p.a_if);
        assert!(c.rx_packets >= 2 && c.tx_packets >= 2, "{c:?}");
        // A second pair in the same process gets different names and subnet.
        let q = NetnsPair::new();
        assert_ne!(q.a, p.a);
        assert_ne!(q.a_ip, p.a_ip);
    }
    let list = String::from_utf8_lossy(&run(&["ip", "netns", "list"]).stdout).into_owned();
    assert!(
        !list.contains(&names.0) && !list.contains(&names.1),
        "{list}"
    );
}
