//! The Host allow-list: the defence against DNS rebinding.
//!
//! A page on an attacker's site can make its own name resolve to the Pi's LAN address; the
//! browser then sends the Pi requests that it believes go to the attacker's site, with `Host:
//! evil.example` (and `Origin: http://evil.example`), and lets that page read the answers. So
//! every request must name this server: one of its own addresses, its host name (or
//! `NAME.local`), localhost, the host of `dashboard_url`, or a name in `web_host_names`, with
//! the port it serves. Anything else is refused before any route runs, `/healthz` and the
//! static files included. The Origin check for changes uses the same list.
//!
//! The machine's addresses come from the kernel (getifaddrs) and are re-read, at most every few
//! seconds, when a request names an address not known yet, so a DHCP change does not lock the
//! household out. This module never resolves a name through DNS: that is what an attacker controls.

use crate::config::{Config, split_host_port};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// How often the machine's own addresses and host name may be re-read on a miss.
const REREAD_EVERY: Duration = Duration::from_secs(5);

/// Which Host values this server answers to.
pub struct Hosts {
    /// Names from the configuration: (host, extra port besides the served one, whether the
    /// port may be left out).
    configured: Vec<(String, Option<u16>, bool)>,
    /// The address `listen` names, when it is not the wildcard.
    listen: Option<IpAddr>,
    /// The port actually served (set once the listener is bound; `listen`'s port until then).
    port: AtomicU16,
    tls: bool,
    /// A std Mutex, held only to read or swap the set, never across an await.
    own: Mutex<Own>,
}

struct Own {
    read_at: Option<Instant>,
    addrs: HashSet<IpAddr>,
    names: HashSet<String>,
}

impl Hosts {
    pub fn new(cfg: &Config, tls: bool) -> Hosts {
        let mut configured = Vec::new();
        if let Some(url) = &cfg.dashboard_url {
            let https = url.starts_with("https://");
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
            if let Some((host, port)) = split_host_port(authority) {
                let default = if https { 443 } else { 80 };
                let port = port.unwrap_or(default);
                configured.push((host, Some(port), port == default));
            }
        }
        for entry in &cfg.web_host_names {
            if let Some((host, port)) = split_host_port(entry) {
                // A bare name is what a reverse proxy forwarding `$host` sends: no port.
                let bare = port.is_none_or(|p| p == 80 || p == 443);
                configured.push((host, port, bare));
            }
        }
        let listen = Some(cfg.listen.ip().to_canonical()).filter(|ip| !ip.is_unspecified());
        let hosts = Hosts {
            configured,
            listen,
            port: AtomicU16::new(cfg.listen.port()),
            tls,
            own: Mutex::new(Own {
                read_at: None,
                addrs: HashSet::new(),
                names: HashSet::new(),
            }),
        };
        hosts.reread(true);
        hosts
    }

    /// Records the port the listener got (it differs from `listen` when that says port 0).
    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// Whether a `Host` header (or an Origin's `host[:port]`) names this server.
    pub fn allows(&self, authority: &str) -> bool {
        let Some((host, port)) = split_host_port(authority) else {
            return false;
        };
        let served = self.port();
        for (name, extra, bare) in &self.configured {
            if *name == host
                && match port {
                    None => *bare,
                    Some(p) => p == served || Some(p) == *extra,
                }
            {
                return true;
            }
        }
        // Browsers leave the port out only when it is the scheme's default.
        let default = if self.tls { 443 } else { 80 };
        if port.unwrap_or(default) != served {
            return false;
        }
        if self.is_own(&host) {
            return true;
        }
        // Not known: the machine may have a new address or name since the last reading.
        self.reread(false) && self.is_own(&host)
    }

    fn is_own(&self, host: &str) -> bool {
        if host == "localhost" || host == "localhost.localdomain" {
            return true;
        }
        let own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let ip = ip.to_canonical();
                ip.is_loopback() || Some(ip) == self.listen || own.addrs.contains(&ip)
            }
            Err(_) => own.names.contains(host),
        }
    }

    /// Reads the machine's addresses and names again, unless that was done moments ago;
    /// true when it read.
    fn reread(&self, force: bool) -> bool {
        let mut own = self.own.lock().unwrap_or_else(|p| p.into_inner());
        if !force && own.read_at.is_some_and(|t| t.elapsed() < REREAD_EVERY) {
            return false;
        }
        own.read_at = Some(Instant::now());
        own.addrs = machine_addrs();
        own.names = machine_names();
        true
    }
}

/// Every address of every interface, as the kernel lists them.
fn machine_addrs() -> HashSet<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return HashSet::new();
    };
    addrs
        .filter_map(|a| {
            let a = a.address?;
            if let Some(v4) = a.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .collect()
}

/// The host name, its first label when it is a full name, and both with `.local` (mDNS).
fn machine_names() -> HashSet<String> {
    let mut names = HashSet::new();
    let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/hostname") else {
        return names;
    };
    let full = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if full.is_empty() || full == "(none)" {
        return names;
    }
    let short = full.split('.').next().unwrap_or(&full).to_string();
    for n in [full, short] {
        names.insert(format!("{n}.local"));
        names.insert(n);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(cfg: Config) -> Hosts {
        Hosts::new(&cfg, false)
    }

    #[test]
    fn own_names_and_addresses_with_the_served_port_only() {
        let h = hosts(Config {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..Config::default()
        });
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "LOCALHOST:8080",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "localhost:8081",
            "localhost",
            "127.0.0.1.evil.example:8080",
            "8.8.8.8:8080",
            "",
            "localhost:8080/x",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
        let name = machine_names().into_iter().next();
        if let Some(n) = name {
            assert!(h.allows(&format!("{n}:8080")), "{n}");
        }
        h.set_port(9999);
        assert!(h.allows("localhost:9999") && !h.allows("localhost:8080"));
    }

    #[test]
    fn configured_names_and_their_ports() {
        let h = hosts(Config {
            listen: "127.0.0.1:8080".parse().unwrap(),
            dashboard_url: Some("https://lanmeter.example.org/".into()),
            web_host_names: vec!["pi.fritz.box".into(), "proxy.home:8443".into()],
            ..Config::default()
        });
        for ok in [
            "lanmeter.example.org",
            "lanmeter.example.org:443",
            "lanmeter.example.org:8080",
            "pi.fritz.box:8080",
            "pi.fritz.box",
            "proxy.home:8443",
            "proxy.home:8080",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["lanmeter.example.org:444", "proxy.home", "pi.fritz.box:9"] {
            assert!(!h.allows(bad), "{bad}");
        }
    }
}
