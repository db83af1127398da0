//! Per-device names (issue 29): the names `lanmeter names` reads from captures equal tshark's
//! (an independent dissector), on the DNS captures of tcpdump's corpus and on a capture of real
//! clients (glibc's resolver over UDP and over TCP, `openssl s_client`) made here; and the
//! daemon, with `per_device_services` on, learns (client MAC, server IP) → name from dnsmasq's
//! answers and from the ClientHello, live, in network namespaces. Live too: after curl fetches
//! a few MB over TLS from a server at a public address (so internet traffic, through the
//! router's MAC), the device's top service is that server's name with exactly the bytes tshark
//! counts on the same link, and its services add up to its internet bytes. The corpus holds no
//! TLS ClientHello and no QUIC Initial; Debian 12 has no QUIC client (its curl lacks HTTP/3), so
//! QUIC is checked by the unit tests (RFC 9001's key vectors, sealed and reopened Initials) only.

use crate::daemon::PATIENCE;
use crate::netns::{KillOnDrop, run};
use crate::{LANMETER, hermetic, pcap_corpus};
use lanmeter::store::Store;
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The corpus files tshark finds DNS answers in (udp source port 53), malformed ones included.
const DNS_FILES: &[&str] = &[
    "dns_udp.pcap",
    "dns_udp_2.pcap",
    "dnssec.pcap",
    "edns-opts.pcap",
    "dns-uri.pcap",
    "dns-badlabel.pcap",
    "dns_fwdptr.pcap",
    "dns-zlip-1.pcap",
];

/// Record types whose owner names lanmeter reads from the answer section.
const TYPES: &[&str] = &["1", "5", "28", "64", "65"];

/// tshark's (SNI names, DNS answer names) of a file. DNS: standard no-error responses from port
/// 53 (UDP or TCP) with one question; of each, the owner names of the answer section's A, AAAA, CNAME, SVCB
/// and HTTPS records (`dns.resp.*` lists answers first, so the first `dns.count.answers`).
fn tshark_names(file: &Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = run(&[
        "tshark",
        "-r",
        file.to_str().unwrap(),
        "-o",
        "tls.desegment_ssl_records:FALSE",
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=|",
        "-E",
        "separator=\t",
        "-e",
        "tls.handshake.extensions_server_name",
        "-e",
        "udp.srcport",
        "-e",
        "dns.flags.response",
        "-e",
        "dns.flags.opcode",
        "-e",
        "dns.flags.rcode",
        "-e",
        "dns.count.queries",
        "-e",
        "dns.count.answers",
        "-e",
        "dns.resp.name",
        "-e",
        "dns.resp.type",
        "-e",
        "tcp.srcport",
    ]);
    let (mut sni, mut dns) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        for n in f[0].split('|').filter(|n| !n.is_empty()) {
            sni.insert(n.to_ascii_lowercase());
        }
        let first = |s: &str| s.split('|').next().unwrap_or("").to_string();
        // From port 53 over UDP, or over TCP (tshark reassembles RFC 7766's framing).
        if f.len() < 10
            || (first(f[1]) != "53" && first(f[9]) != "53")
            || f[2] != "1"
            || f[3] != "0"
            || f[4] != "0"
            || f[5] != "1"
        {
            continue;
        }
        let n: usize = f[6].parse().unwrap_or(0);
        for (name, t) in f[7].split('|').zip(f[8].split('|')).take(n) {
            if TYPES.contains(&t) {
                dns.insert(name.to_ascii_lowercase());
            }
        }
    }
    (sni, dns)
}

/// lanmeter's (SNI names, DNS answer names) of a file.
fn lanmeter_names(file: &Path) -> (BTreeSet<String>, BTreeSet<String>, serde_json::Value) {
    let out = run(&[LANMETER, "names", file.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sni = v["hellos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect();
    let dns = v["dns"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["response"]["answer_names"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    (sni, dns, v)
}

#[test]
fn dns_names_equal_tsharks_on_the_corpus() {
    let dir = pcap_corpus().join("tcpdump");
    let mut nonempty = 0;
    for f in DNS_FILES {
        let path = dir.join(f);
        let (t_sni, t_dns) = tshark_names(&path);
        let (l_sni, l_dns, _) = lanmeter_names(&path);
        eprintln!("{f}: tshark dns {t_dns:?} sni {t_sni:?}; lanmeter dns {l_dns:?} sni {l_sni:?}");
        assert_eq!(l_dns, t_dns, "{f}: DNS answer names");
        assert_eq!(l_sni, t_sni, "{f}: SNI names");
        nonempty += usize::from(!t_dns.is_empty());
    }
    assert!(nonempty >= 4, "only {nonempty} files had DNS answers");
}

/// Client, router (dnsmasq) and "internet" (openssl s_server) namespaces: the client reaches
/// the server at [`SERVER`], a documentation address (not private, so its traffic is internet
/// traffic: it crosses the router's MAC to a non-local IP), as `shop.example` through dnsmasq.
/// Processes are fields before the namespaces so that they stop before those go.
struct Lab {
    _dnsmasq: KillOnDrop,
    _server: KillOnDrop,
    client_mac: &'static str,
    router_mac: &'static str,
    /// The client namespace (lanmeter and tcpdump run there, on `h0`).
    h: String,
    dir: tempfile::TempDir,
    _net: Net,
}

/// The TLS server's address in the "internet" namespace (TEST-NET-1, RFC 5737).
const SERVER: &str = "192.0.2.10";
/// What dnsmasq answers for r7.googlevideo.com (looked up, never fetched).
const OTHER_IP: &str = "192.0.2.77";
/// What dnsmasq answers for a Steam download host, asked over TCP (glibc's `use-vc`).
const TCP_IP: &str = "192.0.2.88";
/// The file the server hands out for the bytes test: a few MB.
const BLOB_BYTES: usize = 4 << 20;

struct Net {
    ns: [String; 3],
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.ns {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.ns[0]));
    }
}

fn net_exec(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `openssl s_client` to shop.example with its SNI, one HTTP/1.0 GET; what it printed.
fn fetch(ns: &str) -> String {
    use std::io::Write;
    let mut client = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "openssl",
            "s_client",
            "-connect",
            "shop.example:443",
        ])
        // Until the server closes: without it s_client may leave at its stdin's end, before
        // the answer arrives.
        .args(["-servername", "shop.example", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _ = client
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET /hello.txt HTTP/1.0\r\n\r\n");
    String::from_utf8_lossy(&client.wait_with_output().unwrap().stdout).into_owned()
}

fn ip_in(ns: &str, args: &[&str]) {
    let mut a = vec!["ip", "-n", ns];
    a.extend(args);
    run(&a);
}

/// Starts `cmd` with its stderr collected line by line.
fn logged(cmd: &mut Command) -> (KillOnDrop, Arc<Mutex<Vec<String>>>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    (KillOnDrop(child), log)
}

fn wait_for(log: &Mutex<Vec<String>>, needle: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !log.lock().unwrap().iter().any(|l| l.contains(needle)) {
        assert!(
            Instant::now() < deadline,
            "never logged {needle:?}:\n{}",
            log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// lanmeter (`per_device_services` on) and tcpdump (the oracle's copy) on the client's link.
struct Capturing {
    daemon: KillOnDrop,
    daemon_log: Arc<Mutex<Vec<String>>>,
    tcpdump: KillOnDrop,
    tcpdump_log: Arc<Mutex<Vec<String>>>,
    db: std::path::PathBuf,
    pcap: std::path::PathBuf,
}

impl Lab {
    /// The three namespaces, dnsmasq and s_server, both answering; `kind` keeps the namespace
    /// names of tests running side by side in one process apart.
    fn new(kind: &str) -> Lab {
        let pid = std::process::id();
        let tag = format!("lmn{kind}-{pid}");
        let x = 100 + pid % 100;
        let (lan, up) = (format!("10.{x}.77"), format!("10.{x}.78"));
        let net = Net {
            ns: [format!("{tag}-h"), format!("{tag}-r"), format!("{tag}-i")],
        };
        let [h, r, i] = &net.ns;
        for ns in &net.ns {
            run(&["ip", "netns", "add", ns]);
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
            ip_in(ns, &["link", "set", "lo", "up"]);
        }
        run(&[
            "ip", "link", "add", "h0", "netns", h, "type", "veth", "peer", "name", "r0", "netns", r,
        ]);
        run(&[
            "ip", "link", "add", "r1", "netns", r, "type", "veth", "peer", "name", "i0", "netns", i,
        ]);
        let (client_mac, router_mac) = ("dc:a6:32:4e:77:01", "02:4c:4d:77:00:01");
        ip_in(h, &["link", "set", "h0", "address", client_mac]);
        ip_in(r, &["link", "set", "r0", "address", router_mac]);
        for (ns, dev, addr) in [
            (h, "h0", format!("{lan}.2/24")),
            (r, "r0", format!("{lan}.1/24")),
            (r, "r1", format!("{up}.1/24")),
            (i, "i0", format!("{up}.2/24")),
            (i, "i0", format!("{SERVER}/32")),
        ] {
            ip_in(ns, &["addr", "add", &addr, "dev", dev]);
            ip_in(ns, &["link", "set", dev, "up"]);
        }
        ip_in(h, &["route", "add", "default", "via", &format!("{lan}.1")]);
        ip_in(i, &["route", "add", "default", "via", &format!("{up}.1")]);
        ip_in(
            r,
            &[
                "route",
                "add",
                &format!("{SERVER}/32"),
                "via",
                &format!("{up}.2"),
            ],
        );
        run(&[
            "ip",
            "netns",
            "exec",
            r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let etc = Path::new("/etc/netns").join(h);
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {lan}.1\n")).unwrap();
        let dnsmasq = KillOnDrop(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    r,
                    "dnsmasq",
                    "--keep-in-foreground",
                    "--no-resolv",
                ])
                .args([
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--bind-interfaces",
                    "--pid-file",
                ])
                .arg(format!("--listen-address={lan}.1"))
                .arg(format!("--address=/shop.example/{SERVER}"))
                .arg(format!("--address=/r7.googlevideo.com/{OTHER_IP}"))
                .arg(format!("--address=/cache1.steamcontent.com/{TCP_IP}"))
                .arg("--address=/ready.example/198.51.100.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq (Debian package dnsmasq-base) must be installed"),
        );
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (key, cert) = (d.join("k.pem"), d.join("c.pem"));
        run(&[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=shop.example",
            "-days",
            "1",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        // `-WWW` serves the files of its working directory: a small page and a few MB.
        let www = d.join("www");
        std::fs::create_dir(&www).unwrap();
        std::fs::write(www.join("hello.txt"), "hello\n").unwrap();
        let blob: Vec<u8> = (0..BLOB_BYTES).map(|n| (n % 251) as u8).collect();
        std::fs::write(www.join("blob"), blob).unwrap();
        let server = KillOnDrop(
            Command::new("ip")
                .args([
                    "netns", "exec", i, "openssl", "s_server", "-quiet", "-WWW", "-accept", "443",
                ])
                .args([
                    "-cert",
                    cert.to_str().unwrap(),
                    "-key",
                    key.to_str().unwrap(),
                ])
                .current_dir(&www)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Both ready before any capture starts. The lookup also leaves the router in the
        // client's ARP table, where lanmeter finds its gateway at start.
        let deadline = Instant::now() + PATIENCE;
        while !String::from_utf8_lossy(
            &net_exec(h, &["getent", "ahostsv4", "ready.example"]).stdout,
        )
        .contains("198.51.100.1")
        {
            assert!(Instant::now() < deadline, "dnsmasq never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
        while !String::from_utf8_lossy(&net_exec(i, &["ss", "-Hltn", "sport = :443"]).stdout)
            .contains("LISTEN")
        {
            assert!(Instant::now() < deadline, "s_server never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Lab {
            _dnsmasq: dnsmasq,
            _server: server,
            client_mac,
            router_mac,
            h: h.clone(),
            dir,
            _net: net,
        }
    }

    /// Starts lanmeter and tcpdump on the client's link; returns once both capture.
    fn capture(&self) -> Capturing {
        let d = self.dir.path();
        let cfg = d.join("lanmeter.toml");
        let db = d.join("x.db");
        std::fs::write(
            &cfg,
            format!(
                "state_dir = {:?}\nlisten = \"127.0.0.1:0\"\narp_sweep_interval_secs = 0\n\
                 discovery = false\nper_device_services = true\n",
                d.display().to_string()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.h, LANMETER, "--config"])
            .arg(&cfg)
            .args(["run", "--interface", "h0", "--db"])
            .arg(&db);
        let (daemon, daemon_log) = logged(
            hermetic(&mut cmd)
                .env("LANMETER_FLUSH_INTERVAL_SECS", "1")
                .env("RUST_LOG", "info"),
        );
        // A full snaplen and a buffer for 64 KB (GRO) frames at veth speed: none dropped;
        // immediate mode, or the last frames wait in a ring block for its timeout and are
        // lost when tcpdump stops.
        let pcap = d.join("h0.pcap");
        let (tcpdump, tcpdump_log) = logged(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.h,
                    "tcpdump",
                    "--immediate-mode",
                    "-U",
                ])
                .args(["-s", "0", "-B", "65536", "-i", "h0", "-w"])
                .arg(&pcap),
        );
        // A lookup before both captures are open would be missed: wait until each says it is.
        wait_for(&daemon_log, "per-device services: learning names");
        wait_for(&tcpdump_log, "listening on");
        Capturing {
            daemon,
            daemon_log,
            tcpdump,
            tcpdump_log,
            db,
            pcap,
        }
    }
}

impl Capturing {
    /// Stops tcpdump once the last frames of what just ran have reached its file (it has
    /// stopped growing: a busy machine may leave tcpdump behind the wire for a while), and
    /// checks that it wrote every frame the kernel passed it.
    fn stop_tcpdump(&mut self) {
        let size = || std::fs::metadata(&self.pcap).map_or(0, |m| m.len());
        let mut last = (size(), Instant::now());
        while last.1.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(100));
            if size() != last.0 {
                last = (size(), Instant::now());
            }
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.tcpdump.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.tcpdump.0.wait().unwrap();
        // Its last words: "N packets captured", "N packets received by filter", "0 packets
        // dropped by kernel" (the reader thread may still be collecting them).
        let count = |log: &[String], what: &str| {
            log.iter()
                .find(|l| l.ends_with(what))
                .and_then(|l| l.split(' ').next()?.parse::<u64>().ok())
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = self.tcpdump_log.lock().unwrap().clone();
            let (captured, received, dropped) = (
                count(&log, "packets captured"),
                count(&log, "packets received by filter"),
                count(&log, "packets dropped by kernel"),
            );
            if let (Some(c), Some(r), Some(d)) = (captured, received, dropped) {
                assert!(
                    c == r && d == 0,
                    "tcpdump missed frames, the oracle would be short: {}",
                    log.join("\n")
                );
                return;
            }
            assert!(Instant::now() < deadline, "tcpdump: {}", log.join("\n"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_daemon_learns_names_from_dns_answers_and_client_hellos() {
    let started = Instant::now();
    let lab = Lab::new("n");
    let h = lab.h.as_str();
    let mut cap = lab.capture();
    // A name only looked up (DNS), and a name looked up and fetched over TLS (DNS, then SNI).
    let out = net_exec(h, &["getent", "ahostsv4", "r7.googlevideo.com"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(OTHER_IP));
    // glibc's resolver over TCP (`options use-vc`): dnsmasq answers with RFC 7766 framing.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            h,
            "getent",
            "ahostsv4",
            "cache1.steamcontent.com",
        ])
        .env("RES_OPTIONS", "use-vc")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(TCP_IP));
    let page = fetch(h);
    assert!(
        page.contains("HTTP/1.0 200"),
        "the TLS fetch failed: {page}"
    );
    let want = [
        (SERVER, "shop.example", "shop.example", "tls"),
        (OTHER_IP, "r7.googlevideo.com", "YouTube", "dns"),
        (TCP_IP, "cache1.steamcontent.com", "Steam", "dns"),
    ];
    let deadline = Instant::now() + PATIENCE;
    let rows = loop {
        let rows = Store::open(&cap.db).unwrap().device_names().unwrap();
        let got: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .filter(|r| r.mac.to_string() == lab.client_mac)
            .map(|r| {
                (
                    r.remote_ip.as_str(),
                    r.name.as_str(),
                    r.service.as_str(),
                    r.source.as_str(),
                )
            })
            .collect();
        if want.iter().all(|w| got.contains(w)) {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "names never stored: {rows:?}\n{}",
            cap.daemon_log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("stored: {rows:?}");
    cap.stop_tcpdump();
    // The same link through `lanmeter names` and tshark.
    let (t_sni, t_dns) = tshark_names(&cap.pcap);
    let (l_sni, l_dns, v) = lanmeter_names(&cap.pcap);
    assert_eq!(l_sni, t_sni);
    assert_eq!(l_dns, t_dns);
    assert!(
        t_sni.contains("shop.example")
            && t_dns.contains("r7.googlevideo.com")
            && t_dns.contains("cache1.steamcontent.com"),
        "{t_sni:?} {t_dns:?}"
    );
    // That answer did come over TCP.
    let tcp = run(&[
        "tshark",
        "-r",
        cap.pcap.to_str().unwrap(),
        "-Y",
        "tcp.srcport == 53 && dns.flags.response == 1",
        "-T",
        "fields",
        "-e",
        "dns.qry.name",
    ]);
    assert!(
        String::from_utf8_lossy(&tcp.stdout).contains("cache1.steamcontent.com"),
        "no DNS answer over TCP on the link"
    );
    let learned = v["learned"].to_string();
    assert!(
        learned.contains(&format!("\"remote_ip\":\"{SERVER}\"")),
        "{learned}"
    );
    eprintln!("live names test: {:?}", started.elapsed());
}

#[test]
fn the_devices_top_service_is_the_fetched_name_with_the_bytes_tshark_counts() {
    let started = Instant::now();
    let lab = Lab::new("b");
    let h = lab.h.as_str();
    let hour = |t: i64| t - t.rem_euclid(3600);
    let from = hour(jiff::Timestamp::now().as_second());
    // The daemon starts before the router is in the client's ARP table, as on a box whose
    // first packet to it comes later: it must find the gateway within seconds, or the
    // server's bytes would be counted with no remote ("other").
    ip_in(h, &["neigh", "flush", "dev", "h0"]);
    let mut cap = lab.capture();
    wait_for(&cap.daemon_log, "gateway=not yet known");
    let out = net_exec(h, &["getent", "ahostsv4", "ready.example"]);
    assert!(out.status.success());
    let detected = Instant::now();
    wait_for(&cap.daemon_log, "gateway detected");
    eprintln!("gateway detected after {:?}", detected.elapsed());
    // The system resolver (glibc → dnsmasq) and curl's SNI name the server; a few MB come down.
    let out = net_exec(
        h,
        &[
            "curl",
            "-sSk",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{remote_ip}",
            "https://shop.example/blob",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{BLOB_BYTES} {SERVER}"),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    cap.stop_tcpdump();
    // tshark's bytes per (device, remote) for the internet traffic on the link (endpoints.rs's
    // oracle: frame lengths, ACCOUNTING.md §3's rule against the router's MAC).
    let oracle = crate::endpoints::oracle(&cap.pcap, lab.router_mac);
    let want = oracle
        .get(&(lab.client_mac.to_string(), SERVER.to_string()))
        .copied()
        .unwrap_or_default();
    let want_internet = oracle
        .iter()
        .filter(|((mac, _), _)| mac == lab.client_mac)
        .fold((0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1));
    assert!(
        want.1 > BLOB_BYTES as u64,
        "tshark: {oracle:?} {}",
        cap.tcpdump_log.lock().unwrap().join("\n")
    );
    // The product's reading, once the flushes have caught up with the wire.
    let deadline = Instant::now() + PATIENCE;
    let (services, internet) = loop {
        let to = hour(jiff::Timestamp::now().as_second()) + 3600;
        let store = Store::open(&cap.db).unwrap();
        let id = store
            .list_devices()
            .unwrap()
            .into_iter()
            .find(|d| d.mac.to_string() == lab.client_mac)
            .map(|d| d.id);
        let services = match id {
            Some(id) => store.device_services(id, from, to).unwrap(),
            None => Vec::new(),
        };
        let (usage, _) = store
            .usage_by_device(
                &jiff::tz::TimeZone::UTC,
                jiff::Timestamp::from_second(from).unwrap(),
                jiff::Timestamp::from_second(to).unwrap(),
            )
            .unwrap();
        let internet = usage
            .iter()
            .find(|u| u.mac.to_string() == lab.client_mac)
            .map(|u| {
                (
                    u.counts.internet_upload_bytes,
                    u.counts.internet_download_bytes,
                )
            })
            .unwrap_or_default();
        // Names reach the database on their own flush, maybe after the bytes.
        let top = services
            .first()
            .map(|s| (s.service.as_deref(), s.bytes_up, s.bytes_down));
        if top == Some((Some("shop.example"), want.0, want.1)) && internet == want_internet {
            break (services, internet);
        }
        assert!(
            Instant::now() < deadline,
            "lanmeter {services:?} (internet {internet:?}) never matched tshark's {want:?} \
             (internet {want_internet:?}):\n{}",
            cap.daemon_log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "lanmeter: {services:?}, internet {internet:?}; tshark: {want:?} to/from {SERVER}, \
         internet {want_internet:?}"
    );
    let top = &services[0];
    assert_eq!(top.service.as_deref(), Some("shop.example"), "{services:?}");
    assert_eq!(top.names, ["shop.example"]);
    // Entries plus "other" are the device's internet bytes of the same hours.
    let sum = services
        .iter()
        .fold((0, 0), |a, s| (a.0 + s.bytes_up, a.1 + s.bytes_down));
    assert_eq!(sum, internet, "{services:?}");
    drop(cap.daemon);
    // The same capture read offline (`lanmeter replay --endpoints`) agrees with tshark too.
    let (compared, _) = crate::endpoints::compare(&cap.pcap, true);
    assert!(compared >= 1);
    eprintln!("live services test: {:?}", started.elapsed());
}

#[test]
fn with_the_setting_off_nothing_is_captured_or_stored() {
    // The same daemon start as above minus the setting: the names thread never starts, and
    // the table stays empty however much DNS and TLS crosses the link.
    let pair = crate::netns::NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("lanmeter.toml");
    let db = dir.path().join("x.db");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\nlisten = \"127.0.0.1:0\"\narp_sweep_interval_secs = 0\ndiscovery = false\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &pair.a, LANMETER, "--config"])
        .arg(&cfg)
        .args(["run", "--interface", &pair.a_if, "--db"])
        .arg(&db);
    let daemon = KillOnDrop(
        hermetic(&mut cmd)
            .env("LANMETER_FLUSH_INTERVAL_SECS", "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !db.exists() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    // A DNS answer from port 53 to A, as raw UDP from B (a real resolver is not needed to
    // show nothing is read): a well-formed response naming shop.example.
    let answer = "\\x12\\x34\\x81\\x80\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x00\\x04shop\\x07example\\x00\\x00\\x01\\x00\\x01\\xc0\\x0c\\x00\\x01\\x00\\x01\\x00\\x00\\x00\\x3c\\x00\\x04\\x0a\\x09\\x00\\x02";
    let script = format!(
        "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('{}',53));[s.sendto(b'{answer}',('{}',5353)) for _ in range(5)]",
        pair.b_ip, pair.a_ip
    );
    run(&["ip", "netns", "exec", &pair.b, "python3", "-c", &script]);
    std::thread::sleep(Duration::from_millis(2500));
    let mut daemon = daemon;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    daemon.0.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut daemon.0.stderr.take().unwrap(), &mut out).unwrap();
    assert!(!out.contains("per-device services"), "{out}");
    let n: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM device_names", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}
