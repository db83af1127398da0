//! `lanmeter doctor`: checks what a working installation needs and, for each problem, says how to
//! fix it: the capture interface, capabilities, whether other devices' traffic is visible at all
//! (and the likely topology), gateway and LAN prefixes, receive offloads, the database, disk
//! space, the clock, the time zone and the dashboard port.
//!
//! It reads the host's state and listens for a few seconds; the only change it ever makes is the
//! one a person asks for with `--fix` (receive offloads off on the capture interface). The
//! verdicts are pure functions of observed facts, so they are tested without a network.

use crate::capture::live::{self, LiveConfig};
use crate::config::Config;
use crate::discovery;
use crate::model::MacAddr;
use crate::store::Store;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Linux capability numbers (linux/capability.h) of the two the capture needs.
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
/// Below this much free space the database (about 1 MB per device-year of minute rows, plus WAL)
/// and SQLite's temporary files get tight; below the hard floor writes will fail.
const DISK_WARN_BYTES: u64 = 200 * 1024 * 1024;
const DISK_FAIL_BYTES: u64 = 20 * 1024 * 1024;
/// A clock before this is certainly unset (a Pi has no RTC and may boot at its last saved time or
/// 1970 until NTP answers); history written then lands in the wrong days.
const CLOCK_FLOOR_UNIX: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

#[derive(Clone, Debug)]
pub struct DoctorOptions {
    /// Check this interface instead of the configured or default-route one.
    pub interface: Option<String>,
    /// How long to listen for other devices' traffic.
    pub listen: Duration,
    /// Turn receive offloads off on the capture interface (the only change the doctor makes).
    pub fix: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not checked, and the summary says why.
    Skip,
}

/// One check's result: what was found and, when something is wrong, what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub summary: String,
    pub fix: Option<String>,
}

impl Finding {
    fn new(check: &'static str, status: Status, summary: impl Into<String>) -> Finding {
        Finding {
            check,
            status,
            summary: summary.into(),
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = Some(fix.into());
        self
    }
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether any check failed (the command's exit status).
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.status == Status::Fail)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let tag = match f.status {
                Status::Ok => " ok ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            // Writing to a String cannot fail.
            let _ = writeln!(out, "[{tag}] {}: {}", f.check, f.summary);
            if let Some(fix) = &f.fix {
                let _ = writeln!(out, "       fix: {fix}");
            }
        }
        out
    }
}

/// Runs every check in order; later checks use what earlier ones found (the interface, the
/// gateway), and a check whose prerequisite failed says so instead of guessing.
pub fn run(cfg: &Config, opts: &DoctorOptions) -> Report {
    let mut r = Report::default();
    let (finding, iface) = check_interface(cfg, opts);
    r.findings.push(finding);
    let caps = effective_caps();
    r.findings.push(check_capabilities(caps));
    r.findings.push(check_service_user(cfg));
    let gateway = iface.as_deref().and_then(discovery::detect_gateway);
    match iface.as_deref() {
        Some(iface) => {
            r.findings
                .push(check_discovery(cfg, iface, gateway.as_ref()));
            r.findings.push(check_visibility(
                cfg,
                iface,
                gateway.as_ref().map(|g| g.mac),
                opts.listen,
            ));
            r.findings.push(check_offloads(iface, opts.fix));
        }
        None => {
            for check in ["gateway and LAN", "traffic visibility", "receive offloads"] {
                r.findings
                    .push(Finding::new(check, Status::Skip, "no capture interface"));
            }
        }
    }
    r.findings.push(check_database(cfg));
    r.findings.push(check_damage(cfg));
    r.findings.push(check_disk(&cfg.database_path()));
    r.findings.push(check_clock());
    r.findings.push(check_time_zone(cfg));
    r.findings.push(check_port(cfg));
    r.findings.push(check_coverage(cfg));
    r
}

fn check_interface(cfg: &Config, opts: &DoctorOptions) -> (Finding, Option<String>) {
    const C: &str = "interface";
    let (iface, source) = match opts.interface.clone().or_else(|| cfg.interface.clone()) {
        Some(i) => (i, "configured"),
        None => {
            match discovery::default_route_interface() {
                Some(i) => (i, "default route"),
                None => {
                    return (
                    Finding::new(C, Status::Fail, "none configured and no default route to pick one from")
                        .fix("set `interface = \"eth0\"` (see `ip link`) in /etc/lanmeter/lanmeter.toml"),
                    None,
                );
                }
            }
        }
    };
    if iface == "any" {
        return (
            Finding::new(C, Status::Ok, "any (all interfaces, Linux cooked framing)"),
            Some(iface),
        );
    }
    let Some(up) = interface_up(&iface) else {
        return (
            Finding::new(
                C,
                Status::Fail,
                format!("{iface} ({source}) does not exist"),
            )
            .fix(
                "list interfaces with `ip link` and set `interface` in /etc/lanmeter/lanmeter.toml",
            ),
            None,
        );
    };
    if !up {
        return (
            Finding::new(C, Status::Fail, format!("{iface} ({source}) is down")).fix(format!(
                "sudo ip link set {iface} up (and check its cable or Wi-Fi)"
            )),
            Some(iface),
        );
    }
    (
        Finding::new(
            C,
            Status::Ok,
            format!("{iface} ({source}) exists and is up"),
        ),
        Some(iface),
    )
}

/// `Some(up)` when the interface exists, `None` when the kernel knows no such name.
fn interface_up(iface: &str) -> Option<bool> {
    nix::net::if_::if_nametoindex(iface).ok()?;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let mut up = false;
    for a in addrs.filter(|a| a.interface_name == iface) {
        up |= a.flags.contains(nix::net::if_::InterfaceFlags::IFF_UP);
    }
    Some(up)
}

/// The interface's own MAC, from its link-layer address.
fn interface_mac(iface: &str) -> Option<MacAddr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|a| a.interface_name == iface)
        .find_map(|a| a.address?.as_link_addr()?.addr())
        .map(MacAddr)
}

fn effective_caps() -> Option<u64> {
    parse_cap_eff(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// The `CapEff:` mask of a /proc/PID/status text.
fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

fn check_capabilities(caps: Option<u64>) -> Finding {
    const C: &str = "capabilities";
    let Some(caps) = caps else {
        return Finding::new(C, Status::Warn, "cannot read /proc/self/status");
    };
    let has = |bit: u32| caps & (1u64 << bit) != 0;
    match (has(CAP_NET_RAW), has(CAP_NET_ADMIN)) {
        (true, true) => Finding::new(
            C,
            Status::Ok,
            "CAP_NET_RAW and CAP_NET_ADMIN (capture and promiscuous mode)",
        ),
        (raw, _) => {
            let missing = if raw {
                "CAP_NET_ADMIN"
            } else {
                "CAP_NET_RAW and CAP_NET_ADMIN"
            };
            Finding::new(C, if raw { Status::Warn } else { Status::Fail }, format!("this process lacks {missing}, so the capture checks below cannot run fully"))
                .fix("run `sudo lanmeter doctor`; the service itself gets exactly these two from lanmeter.service (AmbientCapabilities)")
        }
    }
}

fn check_service_user(cfg: &Config) -> Finding {
    const C: &str = "service user";
    let user = match nix::unistd::User::from_name("lanmeter") {
        Ok(Some(u)) => u,
        _ => {
            return Finding::new(
                C,
                Status::Skip,
                "no `lanmeter` user (not installed from the .deb; fine for a manual run)",
            );
        }
    };
    let dir = &cfg.state_dir;
    match std::fs::metadata(dir) {
        Ok(m) if std::os::unix::fs::MetadataExt::uid(&m) == user.uid.as_raw() => {
            Finding::new(C, Status::Ok, format!("lanmeter exists and owns {}", dir.display()))
        }
        Ok(_) => Finding::new(C, Status::Fail, format!("{} is not owned by lanmeter, so the service cannot write its database", dir.display()))
            .fix(format!("sudo chown -R lanmeter:lanmeter {}", dir.display())),
        Err(_) => Finding::new(C, Status::Warn, format!("{} does not exist yet", dir.display()))
            .fix("it is created when the service starts (StateDirectory=); or `sudo install -d -o lanmeter -g lanmeter -m 0750` it"),
    }
}

fn check_discovery(cfg: &Config, iface: &str, gateway: Option<&discovery::GatewayInfo>) -> Finding {
    const C: &str = "gateway and LAN";
    let mut prefixes: Vec<String> = discovery::interface_prefixes(iface)
        .iter()
        .map(|p| p.to_string())
        .collect();
    prefixes.extend(cfg.lan_prefixes.iter().map(|p| format!("{p} (configured)")));
    let prefixes = if prefixes.is_empty() {
        "none besides the private ranges".to_string()
    } else {
        prefixes.join(", ")
    };
    match (cfg.gateway, gateway) {
        (Some(mac), _) => Finding::new(C, Status::Ok, format!("gateway {mac} (configured); LAN prefixes {prefixes}")),
        (None, Some(g)) => {
            let ips: Vec<String> = g.ipv4.map(|i| i.to_string()).into_iter().chain(g.ipv6.map(|i| i.to_string())).collect();
            Finding::new(C, Status::Ok, format!("gateway {} ({}) from the routing tables; LAN prefixes {prefixes}", g.mac, ips.join(", ")))
        }
        (None, None) => Finding::new(C, Status::Warn, format!("no gateway MAC known on {iface} yet; LAN prefixes {prefixes}"))
            .fix("lanmeter keeps looking (and infers it from traffic); if this machine has no default route on this interface (a mirror port), set `gateway = \"aa:bb:cc:dd:ee:ff\"` to the router's MAC"),
    }
}

use crate::placement::{Observed, TallySink, Watch};
pub use crate::placement::{Placement, Visibility};

fn check_visibility(
    cfg: &Config,
    iface: &str,
    gateway: Option<MacAddr>,
    listen: Duration,
) -> Finding {
    const C: &str = "traffic visibility";
    let capture = match live::open(&LiveConfig {
        interface: iface.to_string(),
        snaplen: cfg.snaplen,
        buffer_bytes: 4 * 1024 * 1024,
        promiscuous: cfg.promiscuous,
        stats_log_interval: Duration::from_secs(3600),
    }) {
        Ok(c) => c,
        Err(e) => return Finding::new(C, Status::Fail, format!("cannot capture: {e}")),
    };
    let watch = Watch::new(iface, interface_mac(iface), None);
    let sink = TallySink {
        watch: watch.clone(),
        gateway,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let thread = match capture.spawn(Box::new(sink), Arc::clone(&stop)) {
        Ok((t, _stats)) => t,
        Err(e) => {
            return Finding::new(
                C,
                Status::Fail,
                format!("cannot start the capture thread: {e}"),
            );
        }
    };
    std::thread::sleep(listen);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if thread.join().is_err() {
        return Finding::new(C, Status::Warn, "the capture thread failed while listening");
    }
    let observed = watch.observed(cfg.promiscuous);
    visibility_verdict(iface, listen, &observed.seen, observed.placement)
}

/// The placement verdict ([`crate::placement::verdict`], the one the daemon's System page and
/// API give too) as a doctor finding: listened for `listen`, without a router coverage figure.
pub fn visibility_verdict(iface: &str, listen: Duration, v: &Visibility, p: Placement) -> Finding {
    const C: &str = "traffic visibility";
    let verdict = crate::placement::verdict(&Observed {
        interface: iface.to_string(),
        listened: listen,
        seen: v.clone(),
        placement: p,
        coverage: None,
    });
    let status = if verdict.sees_household {
        Status::Ok
    } else {
        Status::Warn
    };
    let f = Finding::new(C, status, verdict.summary);
    match verdict.fix {
        Some(fix) => f.fix(fix),
        None => f,
    }
}

/// A receive offload named by `ethtool -k` and whether it is on and changeable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offload {
    pub name: String,
    pub on: bool,
    pub fixed: bool,
}

/// The GRO and LRO lines of `ethtool -k IFACE`.
pub fn parse_offloads(text: &str) -> Vec<Offload> {
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(':')?;
            if name != "generic-receive-offload" && name != "large-receive-offload" {
                return None;
            }
            let rest = rest.trim();
            Some(Offload {
                name: name.to_string(),
                on: rest.starts_with("on"),
                fixed: rest.contains("[fixed]"),
            })
        })
        .collect()
}

fn check_offloads(iface: &str, fix: bool) -> Finding {
    const C: &str = "receive offloads";
    if iface == "any" {
        return Finding::new(
            C,
            Status::Skip,
            "capture on `any`: check the real interfaces with `ethtool -k`",
        );
    }
    let out = match Command::new("ethtool").args(["-k", iface]).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            return Finding::new(
                C,
                Status::Skip,
                format!(
                    "`ethtool -k {iface}` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
            );
        }
        Err(_) => {
            return Finding::new(C, Status::Skip, "ethtool is not installed")
                .fix("sudo apt install ethtool, then run the doctor again");
        }
    };
    let on: Vec<Offload> = parse_offloads(&out).into_iter().filter(|o| o.on).collect();
    if on.is_empty() {
        return Finding::new(
            C,
            Status::Ok,
            "GRO and LRO are off: frames are counted as they were on the wire",
        );
    }
    let names: Vec<&str> = on.iter().map(|o| o.name.as_str()).collect();
    let fixed = on.iter().all(|o| o.fixed);
    let explain = format!(
        "{} on {iface}: the kernel merges received frames before capture, so frame counts are lower than on the wire (byte counts stay right)",
        names.join(" and ")
    );
    if fixed {
        return Finding::new(
            C,
            Status::Warn,
            format!("{explain}; the driver does not allow turning it off"),
        )
        .fix("nothing to do but know it: packet counts on this interface are merged counts");
    }
    let cmd = format!("ethtool -K {iface} gro off lro off");
    if fix {
        return match Command::new("ethtool").args(["-K", iface, "gro", "off", "lro", "off"]).output() {
            // ethtool exits non-zero when one of the two cannot change even though the other did.
            Ok(o) if o.status.success() || !parse_offloads(&command_text("ethtool", &["-k", iface])).iter().any(|x| x.on && !x.fixed) => {
                Finding::new(C, Status::Ok, format!("turned off: {cmd} (until reboot)"))
                    .fix(format!("to keep it, add `post-up /usr/sbin/{cmd}` to the interface's configuration (or a NetworkManager dispatcher script)"))
            }
            Ok(o) => Finding::new(C, Status::Warn, format!("{explain}; `{cmd}` failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
            Err(e) => Finding::new(C, Status::Warn, format!("{explain}; cannot run ethtool: {e}")),
        };
    }
    Finding::new(C, Status::Warn, explain)
        .fix(format!("sudo {cmd} (or `sudo lanmeter doctor --fix`)"))
}

fn command_text(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn check_database(cfg: &Config) -> Finding {
    const C: &str = "database";
    let path = cfg.database_path();
    if !path.exists() {
        // The store creates missing folders too, so what matters is the nearest one that exists.
        let dir = existing_dir(&path);
        return match nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK) {
            Ok(()) => Finding::new(C, Status::Ok, format!("{} does not exist yet; it is created at the first run ({} is writable)", path.display(), dir.display())),
            Err(e) => Finding::new(C, Status::Warn, format!("{} does not exist yet and {} is not writable by this user ({e})", path.display(), dir.display()))
                .fix("the service creates it as the lanmeter user; for a manual run choose `--db` in a writable folder"),
        };
    }
    // Read-only: doctor never upgrades the schema or writes into a file it is checking.
    let store = match Store::open_read_only(&path) {
        Ok(s) => s,
        Err(e) => return Finding::new(C, Status::Fail, e.to_string()),
    };
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    match store.quick_check() {
        Ok(problems) if problems.is_empty() => Finding::new(C, Status::Ok, format!("{} opens, schema version {}, {:.1} MB, quick_check ok", path.display(), store.schema_version().unwrap_or(-1), size as f64 / 1e6)),
        Ok(problems) => Finding::new(C, Status::Fail, format!("{} is damaged: {}", path.display(), problems.into_iter().take(3).collect::<Vec<_>>().join("; ")))
            .fix(format!("stop the service, keep a copy, then `sqlite3 {0} .recover > recovered.sql` or restore a backup (docs: backup)", path.display())),
        Err(e) => Finding::new(C, Status::Fail, e.to_string()),
    }
}

/// Damage the daemon found at start and nobody has resolved yet, with the way back.
fn check_damage(cfg: &Config) -> Finding {
    use crate::store::{backup, damage};
    const C: &str = "damage";
    let real = backup::real_path(&cfg.database_path());
    let events = damage::unresolved(&real);
    if events.is_empty() {
        return Finding::new(C, Status::Ok, "no unresolved damage of the database");
    }
    let dir = cfg.backup_dir_path();
    let offer = match backup::newest_good(&dir) {
        Ok(p) => format!("the newest good backup is {}", p.display()),
        Err(e) => e.to_string(),
    };
    Finding::new(
        C,
        Status::Fail,
        events.iter().map(|e| e.summary()).collect::<Vec<_>>().join("; "),
    )
    .fix(format!(
        "{offer}; stop the service, `lanmeter restore --list` to see every backup, then `lanmeter restore --latest-good` (or keep the current database: `lanmeter restore --dismiss-damage`); old backups are not pruned until then"
    ))
}

/// The nearest existing folder at or above `path`'s parent: where the database will live.
fn existing_dir(path: &Path) -> PathBuf {
    let mut dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    while !dir.exists() {
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
    dir
}

fn check_disk(db: &Path) -> Finding {
    const C: &str = "disk space";
    let dir = existing_dir(db);
    let st = match nix::sys::statvfs::statvfs(&dir) {
        Ok(s) => s,
        Err(e) => {
            return Finding::new(
                C,
                Status::Warn,
                format!("cannot stat {}: {e}", dir.display()),
            );
        }
    };
    // fsblkcnt_t and c_ulong are 32 bits on armhf (Raspberry Pi OS 32-bit), 64 bits here.
    #[allow(clippy::useless_conversion)]
    let free = u64::from(st.blocks_available()).saturating_mul(u64::from(st.fragment_size()));
    disk_verdict(&dir, free)
}

pub fn disk_verdict(dir: &Path, free: u64) -> Finding {
    const C: &str = "disk space";
    let mb = free / (1024 * 1024);
    let status = if free < DISK_FAIL_BYTES {
        Status::Fail
    } else if free < DISK_WARN_BYTES {
        Status::Warn
    } else {
        return Finding::new(
            C,
            Status::Ok,
            format!("{mb} MiB free for {}", dir.display()),
        );
    };
    Finding::new(C, status, format!("only {mb} MiB free for {}", dir.display()))
        .fix("free space (`sudo apt clean`, `sudo journalctl --vacuum-size=50M`) or set `database` to a larger disk")
}

fn check_clock() -> Finding {
    const C: &str = "clock";
    let now = jiff::Timestamp::now();
    if now.as_second() < CLOCK_FLOOR_UNIX {
        return Finding::new(C, Status::Fail, format!("the clock says {now}: it has not been set"))
            .fix("connect the Pi to the internet so NTP can set it (`timedatectl` shows the state), or set it with `sudo date -s`");
    }
    let synced = if Path::new("/run/systemd/timesync/synchronized").exists() {
        Some(true)
    } else {
        match command_text(
            "timedatectl",
            &["show", "--property=NTPSynchronized", "--value"],
        )
        .trim()
        {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        }
    };
    match synced {
        Some(true) => Finding::new(C, Status::Ok, format!("{now}, synchronised by NTP")),
        Some(false) => Finding::new(C, Status::Warn, format!("{now}, not synchronised: a Pi has no battery clock, so minutes may be recorded at the wrong time"))
            .fix("sudo timedatectl set-ntp true (and let the Pi reach an NTP server)"),
        None => Finding::new(C, Status::Ok, format!("{now} (synchronisation state unknown: no timedatectl here)")),
    }
}

fn check_time_zone(cfg: &Config) -> Finding {
    const C: &str = "time zone";
    let tz = cfg.time_zone();
    let name = tz.iana_name().unwrap_or("unnamed").to_string();
    if cfg.timezone.is_some() {
        return Finding::new(
            C,
            Status::Ok,
            format!("{name} (configured): days and months start at its midnight"),
        );
    }
    if name == "UTC" || name == "Etc/UTC" || name == "unnamed" {
        return Finding::new(C, Status::Warn, format!("the system's time zone is {name}: days and billing months would start at UTC midnight"))
            .fix("sudo timedatectl set-timezone Europe/Berlin (your zone), or `timezone = \"Europe/Berlin\"` in /etc/lanmeter/lanmeter.toml");
    }
    Finding::new(C, Status::Ok, format!("{name} (the system's)"))
}

fn check_port(cfg: &Config) -> Finding {
    const C: &str = "dashboard port";
    match std::net::TcpListener::bind(cfg.listen) {
        Ok(_) => Finding::new(C, Status::Ok, format!("{} is free", cfg.listen)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            port_owner_verdict(cfg.listen, &port_owners(cfg.listen.port()))
        }
        Err(e) => Finding::new(C, Status::Warn, format!("cannot bind {}: {e}", cfg.listen))
            .fix("set `listen` in /etc/lanmeter/lanmeter.toml to an address of this machine"),
    }
}

/// A TCP socket listening on the dashboard port, as the kernel lists it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortOwner {
    /// The user the socket belongs to, by name when it has one.
    pub user: Option<String>,
    pub uid: u32,
    /// The process holding it (pid, command name): found only where this user may read the
    /// process's file descriptors (as root, or the same user).
    pub process: Option<(u32, String)>,
}

/// (uid, socket inode) of every socket listening on TCP `port` in a /proc/net/tcp or tcp6 text.
pub fn parse_listeners(text: &str, port: u16) -> Vec<(u32, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *f.get(3)? == "0A").then_some(())?;
            Some((f.get(7)?.parse().ok()?, f.get(9)?.parse().ok()?))
        })
        .collect()
}

/// Who listens on `port` in this network namespace: the socket's user from /proc/net/tcp{,6} and,
/// when readable, the process whose file descriptors hold the socket.
fn port_owners(port: u16) -> Vec<PortOwner> {
    let mut sockets: Vec<(u32, u64)> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| parse_listeners(&t, port))
        .collect();
    sockets.sort_unstable();
    sockets.dedup();
    let mut processes = std::collections::HashMap::new();
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for pid in procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                let Ok(link) = std::fs::read_link(fd.path()) else {
                    continue;
                };
                let inode = link
                    .to_str()
                    .and_then(|l| l.strip_prefix("socket:["))
                    .and_then(|l| l.strip_suffix(']'))
                    .and_then(|l| l.parse::<u64>().ok());
                if let Some(inode) = inode.filter(|i| sockets.iter().any(|s| s.1 == *i)) {
                    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .map(|c| c.trim().to_string())
                        .unwrap_or_default();
                    processes.entry(inode).or_insert((pid, comm));
                }
            }
        }
    }
    sockets
        .into_iter()
        .map(|(uid, inode)| PortOwner {
            user: nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name),
            uid,
            process: processes.get(&inode).cloned(),
        })
        .collect()
}

/// The verdict on a dashboard port that is already taken: fine when lanmeter itself (the
/// service's user, or a process called lanmeter) holds it, a warning naming the owner otherwise.
pub fn port_owner_verdict(listen: std::net::SocketAddr, owners: &[PortOwner]) -> Finding {
    const C: &str = "dashboard port";
    let is_lanmeter = |o: &PortOwner| {
        o.user.as_deref() == Some("lanmeter")
            || o.process.as_ref().is_some_and(|(_, c)| c == "lanmeter")
    };
    let describe = |o: &PortOwner| {
        let user = o.user.clone().unwrap_or_else(|| format!("uid {}", o.uid));
        match &o.process {
            Some((pid, comm)) => format!("{comm} (pid {pid}, user {user})"),
            None => format!("a program of user {user}"),
        }
    };
    if let Some(own) = owners.iter().find(|o| is_lanmeter(o)) {
        return Finding::new(
            C,
            Status::Ok,
            format!("{listen} is served by lanmeter: {}", describe(own)),
        );
    }
    let who = if owners.is_empty() {
        "another program (this user cannot see which)".to_string()
    } else {
        owners.iter().map(describe).collect::<Vec<_>>().join(", ")
    };
    Finding::new(C, Status::Warn, format!("{listen} is in use by {who}"))
        .fix(format!("stop that program, or choose another `listen` port in /etc/lanmeter/lanmeter.toml (`sudo ss -ltnp 'sport = :{}'` shows who listens)", listen.port()))
}

/// The share of the router's internet bytes the daemon saw over the last 24 hours (issue 24),
/// from what the running daemon stored; read-only like the database check.
fn check_coverage(cfg: &Config) -> Finding {
    const C: &str = "coverage";
    if cfg.router_source == crate::config::RouterSource::Off {
        return Finding::new(
            C,
            Status::Skip,
            "router_source = \"off\": the router's counters are not read",
        );
    }
    let path = cfg.database_path();
    let Ok(store) = Store::open_read_only(&path) else {
        return Finding::new(
            C,
            Status::Skip,
            "no database to read the router's counters from yet",
        );
    };
    let status = match crate::router::coverage::status(&store) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Finding::new(
                C,
                Status::Skip,
                "the daemon has not read the router's counters yet",
            )
            .fix(
                "switch on UPnP (or SNMP) on the router, see docs/INSTALL.md \"Router counters\"",
            );
        }
        Err(e) => return Finding::new(C, Status::Skip, e.to_string()),
    };
    let now = jiff::Timestamp::now();
    let from = now - jiff::SignedDuration::from_secs(86_400);
    let report = match crate::router::coverage::coverage(&store, &cfg.time_zone(), from, now) {
        Ok(r) => r,
        Err(e) => return Finding::new(C, Status::Skip, e.to_string()),
    };
    match report.percent {
        Some(p) if p >= f64::from(cfg.coverage_alert_percent) => Finding::new(
            C,
            Status::Ok,
            format!("lanmeter saw {p:.0} % of the internet traffic the router counted in the last 24 hours"),
        ),
        Some(p) => Finding::new(
            C,
            Status::Warn,
            format!("lanmeter saw only {p:.0} % of the internet traffic the router counted in the last 24 hours"),
        )
        .fix("place the Pi where it sees the household's traffic (access point or bridge, router, or mirror port: docs/INSTALL.md)"),
        None => Finding::new(
            C,
            Status::Warn,
            report
                .reason
                .or(status.message)
                .unwrap_or_else(|| "no coverage figure".into()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_eff_is_read_from_proc_status() {
        let text = "Name:\tlanmeter\nCapInh:\t0000000000000000\nCapEff:\t0000000000003000\n";
        assert_eq!(parse_cap_eff(text), Some(0x3000));
        assert_eq!(check_capabilities(Some(0x3000)).status, Status::Ok);
        assert_eq!(check_capabilities(Some(0x1000)).status, Status::Fail);
        assert_eq!(check_capabilities(Some(0x2000)).status, Status::Warn);
    }

    #[test]
    fn offloads_parse_on_off_and_fixed() {
        let text = "Features for eth0:\nrx-checksumming: on\ngeneric-receive-offload: on\nlarge-receive-offload: off [fixed]\nrx-gro-hw: off [fixed]\n";
        assert_eq!(
            parse_offloads(text),
            vec![
                Offload {
                    name: "generic-receive-offload".into(),
                    on: true,
                    fixed: false
                },
                Offload {
                    name: "large-receive-offload".into(),
                    on: false,
                    fixed: true
                },
            ]
        );
    }

    #[test]
    fn only_own_traffic_is_a_warning_with_the_topologies_as_fix() {
        let v = Visibility {
            frames: 40,
            third_party_macs: 0,
            talking_to_us_macs: 1,
        };
        let f = visibility_verdict(
            "eth0",
            Duration::from_secs(5),
            &v,
            Placement {
                promiscuous: true,
                ..Default::default()
            },
        );
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary.contains("only this machine's own traffic"),
            "{}",
            f.summary
        );
        assert!(f.fix.as_deref().unwrap().contains("mirror"));
        let not_promisc =
            visibility_verdict("eth0", Duration::from_secs(5), &v, Placement::default());
        assert!(not_promisc.fix.unwrap().contains("promiscuous = false"));
    }

    #[test]
    fn third_party_frames_or_routing_are_fine_and_name_the_topology() {
        let secs = Duration::from_secs(5);
        let seen = Visibility {
            frames: 100,
            third_party_macs: 3,
            talking_to_us_macs: 0,
        };
        let bridge = visibility_verdict(
            "br0",
            secs,
            &seen,
            Placement {
                is_bridge: true,
                ..Default::default()
            },
        );
        assert_eq!(bridge.status, Status::Ok);
        assert!(bridge.summary.contains("bridges"));
        assert!(
            visibility_verdict("eth0", secs, &seen, Placement::default())
                .summary
                .contains("mirror")
        );
        let routed = Visibility {
            frames: 100,
            third_party_macs: 0,
            talking_to_us_macs: 4,
        };
        let router = visibility_verdict(
            "eth0",
            secs,
            &routed,
            Placement {
                forwarding: true,
                ..Default::default()
            },
        );
        assert_eq!(router.status, Status::Ok);
        assert!(router.summary.contains("routes"));
        let port = visibility_verdict(
            "eth0",
            secs,
            &seen,
            Placement {
                is_bridge_port: true,
                ..Default::default()
            },
        );
        assert_eq!(port.status, Status::Warn);
    }

    #[test]
    fn listeners_are_read_from_proc_net_tcp() {
        // Two lines of a real /proc/net/tcp: a listener on 8080 (0x1F90) of uid 999, and an
        // established connection from that port, which is not a listener.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2B4 01 00000000:00000000 00:00000000 00000000   999        0 41240 1 0000000000000000 20 4 30 10 -1
";
        assert_eq!(parse_listeners(text, 8080), vec![(999, 41234)]);
        assert!(parse_listeners(text, 80).is_empty());
    }

    #[test]
    fn the_port_held_by_lanmeter_is_fine_and_another_owner_is_named() {
        let listen: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let service = PortOwner {
            user: Some("lanmeter".into()),
            uid: 999,
            process: None,
        };
        let own = port_owner_verdict(listen, &[service]);
        assert_eq!(own.status, Status::Ok);
        assert!(
            own.summary.contains("served by lanmeter"),
            "{}",
            own.summary
        );
        let manual = PortOwner {
            user: Some("root".into()),
            uid: 0,
            process: Some((42, "lanmeter".into())),
        };
        assert_eq!(port_owner_verdict(listen, &[manual]).status, Status::Ok);
        let other = PortOwner {
            user: Some("www-data".into()),
            uid: 33,
            process: Some((7, "nginx".into())),
        };
        let f = port_owner_verdict(listen, &[other]);
        assert_eq!(f.status, Status::Warn);
        assert!(
            f.summary.contains("nginx (pid 7, user www-data)"),
            "{}",
            f.summary
        );
        assert_eq!(port_owner_verdict(listen, &[]).status, Status::Warn);
    }

    #[test]
    fn disk_thresholds() {
        let d = Path::new("/var/lib/lanmeter");
        assert_eq!(disk_verdict(d, 10 * 1024 * 1024).status, Status::Fail);
        assert_eq!(disk_verdict(d, 100 * 1024 * 1024).status, Status::Warn);
        assert_eq!(disk_verdict(d, 1 << 33).status, Status::Ok);
    }

    #[test]
    fn report_fails_only_on_a_failed_check_and_prints_fixes() {
        let mut r = Report::default();
        r.findings
            .push(Finding::new("a", Status::Warn, "meh").fix("do x"));
        assert!(!r.failed());
        r.findings.push(Finding::new("b", Status::Fail, "bad"));
        assert!(r.failed());
        let text = r.render();
        assert!(text.contains("[warn] a: meh\n       fix: do x\n"), "{text}");
        assert!(text.contains("[FAIL] b: bad"));
    }
}
