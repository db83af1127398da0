//! Many homes, one view (issue 28): `lanmeter run` pushes its history by Prometheus remote write
//! to a real receiver — Debian's `victoria-metrics` and `prometheus` — running in a "central"
//! network namespace that each site's namespace reaches over its own veth link.
//!
//! What the receiver answers through its Prometheus query API must equal each site's own
//! `lanmeter export`: per site and device in total (two sites replaying generated households),
//! and minute by minute after the receiver was down during live capture (backfill). The shipped
//! Grafana dashboard's queries are evaluated against the same VictoriaMetrics.

use crate::daemon::{Daemon, PATIENCE};
use crate::netns::{KillOnDrop, NetnsPair, run};
use crate::{LANMETER, hermetic};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// The six counters of a device, in the order of `lanmeter export`'s fields.
const FIELDS: [(&str, &str, &str); 6] = [
    ("bytes_sent", "lanmeter_device_bytes_total", "sent"),
    ("bytes_received", "lanmeter_device_bytes_total", "received"),
    ("frames_sent", "lanmeter_device_frames_total", "sent"),
    (
        "frames_received",
        "lanmeter_device_frames_total",
        "received",
    ),
    (
        "internet_upload_bytes",
        "lanmeter_device_internet_bytes_total",
        "upload",
    ),
    (
        "internet_download_bytes",
        "lanmeter_device_internet_bytes_total",
        "download",
    ),
];

/// The central namespace, deleted on drop (with every link into it).
struct Central {
    ns: String,
    links: u8,
}

impl Central {
    fn new() -> Central {
        let ns = format!(
            "lm-{}-{}-central",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &ns]);
        let c = Central { ns, links: 0 };
        run(&["ip", "-n", &c.ns, "link", "set", "lo", "up"]);
        c
    }

    /// A veth link from the site namespace `site` into the central one (created inside the
    /// namespaces, so no name exists in the root namespace); returns the central address.
    fn link(&mut self, site: &str) -> String {
        self.links += 1;
        let i = self.links;
        let (c_if, s_if) = (format!("lmc{i}"), "lmr0".to_string());
        run(&[
            "ip", "link", "add", &c_if, "netns", &self.ns, "type", "veth", "peer", "name", &s_if,
            "netns", site,
        ]);
        let c_ip = format!("192.168.{i}.1");
        for (ns, ifname, ip) in [
            (self.ns.as_str(), c_if.as_str(), c_ip.clone()),
            (site, s_if.as_str(), format!("192.168.{i}.2")),
        ] {
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
        c_ip
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.ns])
            .stderr(Stdio::null())
            .status();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Victoria,
    Prometheus,
}

/// A receiver process in the central namespace, with its data kept across a stop and start.
struct Receiver {
    kind: Kind,
    ns: String,
    data: PathBuf,
    proc: Option<KillOnDrop>,
}

impl Receiver {
    fn new(kind: Kind, central: &Central, dir: &Path) -> Receiver {
        let mut r = Receiver {
            kind,
            ns: central.ns.clone(),
            data: dir.join(format!("{kind:?}")),
            proc: None,
        };
        std::fs::create_dir_all(&r.data).unwrap();
        r.start();
        r
    }

    fn port(&self) -> u16 {
        match self.kind {
            Kind::Victoria => 8428,
            Kind::Prometheus => 9090,
        }
    }

    /// The URL a site in link `ip` writes to.
    fn write_url(&self, ip: &str) -> String {
        format!("http://{ip}:{}/api/v1/write", self.port())
    }

    fn start(&mut self) {
        self.launch(false);
    }

    /// Starts Prometheus with the configuration file a test wrote.
    fn start_keeping_config(&mut self) {
        self.launch(true);
    }

    fn launch(&mut self, keep_config: bool) {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]);
        match self.kind {
            Kind::Victoria => {
                cmd.arg("victoria-metrics")
                    .arg(format!("-storageDataPath={}", self.data.display()))
                    .args([
                        "-httpListenAddr=:8428",
                        // Replayed households are months old: keep them.
                        "-retentionPeriod=100y",
                        // Answer with what was just written (no 30 s hold-back, no cache).
                        "-search.latencyOffset=0s",
                        "-search.disableCache",
                        "-loggerLevel=ERROR",
                    ]);
            }
            Kind::Prometheus => {
                let conf = self.data.join("prometheus.yml");
                // Minutes sent late are older than Prometheus' head block accepts in order.
                if !keep_config {
                    std::fs::write(
                        &conf,
                        "storage:\n  tsdb:\n    out_of_order_time_window: 1d\n",
                    )
                    .unwrap();
                }
                cmd.arg("prometheus")
                    .arg(format!("--config.file={}", conf.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        self.data.join("tsdb").display()
                    ))
                    .args([
                        "--web.listen-address=:9090",
                        "--web.enable-remote-write-receiver",
                        "--log.level=error",
                    ]);
            }
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {:?}: {e}", self.kind));
        self.proc = Some(KillOnDrop(child));
        let ready = match self.kind {
            Kind::Victoria => "/health",
            Kind::Prometheus => "/-/ready",
        };
        wait_until(&format!("{:?} ready", self.kind), PATIENCE, || {
            self.curl(ready, &[]).is_some()
        });
    }

    /// SIGTERM and wait: a receiver stopped this way keeps what it acknowledged (a SIGKILL
    /// could lose samples it answered 204 for but had not written yet).
    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            let pid = nix::unistd::Pid::from_raw(p.0.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            wait_until(&format!("{:?} stopped", self.kind), PATIENCE, || {
                p.0.try_wait().unwrap().is_some()
            });
        }
    }

    /// GET `path` with url-encoded `params` inside the central namespace; the body on 2xx.
    fn curl(&self, path: &str, params: &[(&str, String)]) -> Option<String> {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.ns,
            "curl",
            "-sfG",
            "--max-time",
            "10",
        ]);
        for (k, v) in params {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        let out = cmd
            .arg(format!("http://127.0.0.1:{}{path}", self.port()))
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    /// An instant query at `time` (seconds; now when `None`): each series' labels and value.
    fn query(&self, q: &str, time: Option<i64>) -> Vec<(Value, f64)> {
        let mut params = vec![("query", q.to_string())];
        if let Some(t) = time {
            params.push(("time", t.to_string()));
        }
        let body = self
            .curl("/api/v1/query", &params)
            .unwrap_or_else(|| panic!("{:?} did not answer {q}", self.kind));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{q}: {v}");
        v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let x = r["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (r["metric"].clone(), x)
            })
            .collect()
    }
}

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn lanmeter(dir: &Path, args: &[&str]) -> String {
    let out = hermetic(&mut Command::new(LANMETER))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "lanmeter {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One site: its namespaces, config, database and daemon.
struct Site {
    name: String,
    dir: PathBuf,
    config: PathBuf,
    db: PathBuf,
    p: NetnsPair,
    daemon: Option<Daemon>,
}

impl Site {
    /// A site whose daemon captures on its household link and writes to `receiver`.
    fn new(name: &str, dir: &Path, central: &mut Central, receiver: &Receiver) -> Site {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let p = NetnsPair::new();
        p.quiet_neighbours(&p.a_if);
        let ip = central.link(&p.a);
        let config = dir.join("lanmeter.toml");
        std::fs::write(
            &config,
            format!(
                "state_dir = {:?}\ntimezone = \"UTC\"\nsite = {name:?}\nremote_write_url = {:?}\n\
                 remote_write_interval_secs = 1\n# Replayed history is months old: keep its minutes.\n\
                 keep_minutes_days = 366\nkeep_hours_days = 366\ndiscovery = false\narp_sweep_interval_secs = 0\n",
                dir.display().to_string(),
                receiver.write_url(&ip)
            ),
        )
        .unwrap();
        let db = dir.join("site.db");
        Site {
            name: name.into(),
            dir,
            config,
            db,
            p,
            daemon: None,
        }
    }

    /// A generated household replayed into the database, before the daemon starts.
    fn replay(&self, seed: &str) {
        let pcap = self.dir.join("home.pcap");
        let pcap = pcap.to_str().unwrap();
        lanmeter(
            &self.dir,
            &[
                "generate",
                pcap,
                "--frames",
                "20000",
                "--seed",
                seed,
                "--devices",
                "12",
                "--duration-secs",
                "3600",
            ],
        );
        lanmeter(
            &self.dir,
            &["replay", pcap, "--db", self.db.to_str().unwrap()],
        );
    }

    fn start(&mut self) {
        self.daemon = Some(Daemon::start(&self.p, &self.config, &self.db));
    }

    /// The start of the last minute the receiver has, from the site's own record.
    fn cursor(&self) -> Option<i64> {
        let out = Command::new("sqlite3")
            .arg(&self.db)
            .arg("SELECT sent_through FROM remote_write_cursor")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    }

    /// `lanmeter export --period minute`: per MAC, per minute start, the six counters.
    fn export(&self) -> BTreeMap<String, BTreeMap<i64, [u64; 6]>> {
        let text = lanmeter(
            &self.dir,
            &[
                "--config",
                self.config.to_str().unwrap(),
                "export",
                "--period",
                "minute",
                "--format",
                "json",
                "--db",
                self.db.to_str().unwrap(),
            ],
        );
        let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
        let mut out: BTreeMap<String, BTreeMap<i64, [u64; 6]>> = BTreeMap::new();
        for r in rows {
            let start: jiff::Timestamp = r["start"].as_str().unwrap().parse().unwrap();
            let v = FIELDS.map(|(f, _, _)| r[f].as_u64().unwrap());
            out.entry(r["mac"].as_str().unwrap().to_string())
                .or_default()
                .insert(start.as_second(), v);
        }
        out
    }
}

/// Per MAC, the six counters as the receiver has them at `time` (latest when `None`).
fn central(r: &Receiver, site: &str, time: Option<i64>) -> BTreeMap<String, [u64; 6]> {
    let mut out: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    for (i, (_, name, dir)) in FIELDS.iter().enumerate() {
        let q = match time {
            Some(_) => format!("{name}{{site=\"{site}\",direction=\"{dir}\"}}"),
            None => format!("max_over_time({name}{{site=\"{site}\",direction=\"{dir}\"}}[400d])"),
        };
        for (m, v) in r.query(&q, time) {
            let mac = m["mac"].as_str().unwrap_or("").to_string();
            assert!(v.fract() == 0.0 && v >= 0.0, "{q}: {v}");
            out.entry(mac).or_default()[i] += v as u64;
        }
    }
    out
}

/// What `read` answers once it equals `want` or [`PATIENCE`] has passed (the receiver makes
/// fresh samples searchable after a moment); series whose counters are all zero are left out.
fn settled(
    mut read: impl FnMut() -> BTreeMap<String, [u64; 6]>,
    want: &BTreeMap<String, [u64; 6]>,
) -> BTreeMap<String, [u64; 6]> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut got = read();
        got.retain(|_, v| v.iter().any(|&x| x > 0));
        if &got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Two sites replaying different generated households into one VictoriaMetrics; each site's
/// daemon backfills the replayed (months old) minutes on first enable.
fn two_sites(dir: &Path) -> (Central, Receiver, Vec<Site>) {
    let mut c = Central::new();
    let vm = Receiver::new(Kind::Victoria, &c, dir);
    let mut sites = Vec::new();
    for (name, seed) in [("north", "3"), ("south", "5")] {
        let mut s = Site::new(name, dir, &mut c, &vm);
        s.replay(seed);
        // Owners as a device's page sets them: the per-person panel has people to sum.
        let out = Command::new("sqlite3")
            .arg(&s.db)
            .arg("UPDATE devices SET owner = CASE id % 3 WHEN 0 THEN 'Ann' WHEN 1 THEN 'Bob' END")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        s.start();
        sites.push(s);
    }
    for s in &sites {
        // Everything replayed is closed at the first flush: the whole history goes at once.
        let last = *s.export().values().flat_map(|m| m.keys()).max().unwrap();
        wait_until(&format!("{} backfilled", s.name), PATIENCE, || {
            s.cursor().is_some_and(|c| c >= last)
        });
    }
    (c, vm, sites)
}

#[test]
fn two_sites_central_per_device_totals_equal_each_sites_export() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (_c, vm, mut sites) = two_sites(dir.path());
    for s in &mut sites {
        s.daemon.take().unwrap().stop();
        let cursor = s.cursor().unwrap();
        let mut want: BTreeMap<String, [u64; 6]> = BTreeMap::new();
        for (mac, minutes) in s.export() {
            let t = want.entry(mac).or_default();
            for (_, v) in minutes.range(..=cursor) {
                for i in 0..6 {
                    t[i] += v[i];
                }
            }
        }
        // VictoriaMetrics makes new samples searchable within a few seconds.
        let got = settled(|| central(&vm, &s.name, None), &want);
        assert!(want.len() >= 10, "{}: {} devices", s.name, want.len());
        assert_eq!(got, want, "site {}: central totals per MAC", s.name);
        let bytes: u64 = want.values().map(|v| v[0] + v[1]).sum();
        eprintln!(
            "site {}: {} devices, {bytes} bytes equal centrally and locally",
            s.name,
            want.len()
        );
    }
    eprintln!("two sites test took {:?}", started.elapsed());
}

/// The devices table as (MAC text, owner, is_gateway).
fn devices(db: &Path) -> Vec<(String, Option<String>, bool)> {
    let out = Command::new("sqlite3")
        .arg("-separator")
        .arg("|")
        .arg(db)
        .arg("SELECT mac, coalesce(owner, ''), is_gateway FROM devices")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            let mac = lanmeter::model::MacAddr::from_u64(f[0].parse().unwrap()).to_string();
            (
                (mac),
                (!f[1].is_empty()).then(|| f[1].to_string()),
                f[2] == "1",
            )
        })
        .collect()
}

/// Every PromQL query of the shipped Grafana dashboard, with Grafana's variables filled in as
/// for "all sites" over a range that holds the whole history, evaluated by VictoriaMetrics:
/// each panel's numbers must be the ones computed from the sites' own exports.
#[test]
fn dashboard_queries_give_the_sites_numbers() {
    let started = Instant::now();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/lanmeter.json"),
    )
    .unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "site" && v["multi"] == true),
        "a multi-value site picker"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_c, vm, mut sites) = two_sites(dir.path());
    // What each panel must show, per site, from the site's export and devices.
    let mut household = BTreeMap::new();
    let mut internet = BTreeMap::new();
    let mut top = BTreeMap::new();
    let mut people: BTreeMap<(String, String), u64> = BTreeMap::new();
    for s in &mut sites {
        s.daemon.take().unwrap().stop();
        let cursor = s.cursor().unwrap();
        let devs = devices(&s.db);
        let mut per_device = Vec::new();
        let mut want = BTreeMap::new();
        for (mac, minutes) in s.export() {
            let mut t = [0u64; 6];
            for (_, v) in minutes.range(..=cursor) {
                for i in 0..6 {
                    t[i] += v[i];
                }
            }
            want.insert(mac.clone(), t);
            let (_, owner, gateway) = devs.iter().find(|d| d.0 == mac).cloned().unwrap();
            if !gateway {
                *household.entry(s.name.clone()).or_insert(0) += t[0] + t[1];
                *internet.entry(s.name.clone()).or_insert(0) += t[4] + t[5];
            }
            if let Some(o) = owner {
                *people.entry((s.name.clone(), o)).or_insert(0) += t[0] + t[1];
            }
            per_device.push(t[0] + t[1]);
        }
        // Everything sent is searchable before the panels are asked.
        want.retain(|_, v| v.iter().any(|&x| x > 0));
        assert_eq!(settled(|| central(&vm, &s.name, None), &want), want);
        per_device.sort_unstable_by(|a, b| b.cmp(a));
        per_device.truncate(10);
        top.insert(s.name.clone(), per_device);
    }
    assert!(people.len() >= 4, "two people in each site: {people:?}");
    let by_site = |rows: &[(Value, f64)]| -> BTreeMap<String, u64> {
        rows.iter()
            .map(|(m, v)| {
                assert!(v.fract() == 0.0, "{v}");
                (m["site"].as_str().unwrap().to_string(), *v as u64)
            })
            .collect()
    };
    let mut checked = 0;
    for panel in dash["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains("$site"),
                "{title}: every query follows the site picker"
            );
            let q = expr
                .replace("$site", "(north|south)")
                .replace("$__range", "400d")
                .replace("$__interval", "400d");
            let rows = vm.query(&q, None);
            let got = by_site(&rows);
            match (title, t["refId"].as_str().unwrap()) {
                ("Household usage per site" | "Household total per site", _) => {
                    assert_eq!(got, household, "{title}: {q}")
                }
                ("Internet vs local per site", "A") => assert_eq!(got, internet, "{title}: {q}"),
                ("Internet vs local per site", "B") => {
                    let local: BTreeMap<String, u64> = household
                        .iter()
                        .map(|(s, h)| (s.clone(), h - internet[s]))
                        .collect();
                    assert_eq!(got, local, "{title}: {q}");
                }
                ("Top devices per site", _) => {
                    let mut per: BTreeMap<String, Vec<u64>> = BTreeMap::new();
                    for (m, v) in &rows {
                        per.entry(m["site"].as_str().unwrap().to_string())
                            .or_default()
                            .push(*v as u64);
                    }
                    for v in per.values_mut() {
                        v.sort_unstable_by(|a, b| b.cmp(a));
                    }
                    assert_eq!(per, top, "{title}: {q}");
                }
                ("Per-person totals", _) => {
                    let got: BTreeMap<(String, String), u64> = rows
                        .iter()
                        .map(|(m, v)| {
                            let k = |l: &str| m[l].as_str().unwrap().to_string();
                            ((k("site"), k("person")), *v as u64)
                        })
                        .collect();
                    assert_eq!(got, people, "{title}: {q}");
                }
                ("Capture coverage", _) => {
                    assert_eq!(
                        got,
                        [("north".into(), 1), ("south".into(), 1)].into(),
                        "{title}"
                    )
                }
                ("Packets dropped before counting", _) => {
                    assert_eq!(
                        got,
                        [("north".into(), 0), ("south".into(), 0)].into(),
                        "{title}"
                    )
                }
                ("Router coverage today", _) => {
                    // These sites read no router counters, so they push no coverage (the figure
                    // itself is checked on /metrics by the router tests and in remote::tests).
                    assert!(rows.is_empty(), "{title}: {rows:?}");
                }
                ("Remote-write backlog", _) => {
                    assert_eq!(got.len(), 2, "{title}: {rows:?}");
                    assert!(got.values().all(|&s| s <= 130), "{title}: {got:?}");
                }
                (other, r) => panic!("no expected numbers for panel {other:?} query {r}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 9, "{checked} queries");
    eprintln!(
        "{checked} dashboard queries gave the expected numbers (household {household:?}), {:?}",
        started.elapsed()
    );
}

/// Live capture with the receiver stopped for at least one whole closed minute, then started
/// again: once the site has backfilled, the receiver's counter at the end of every minute equals
/// the site's own sum of its minutes up to then, for every device and counter.
fn outage_is_backfilled_minute_by_minute(kind: Kind, outage: bool) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Central::new();
    let mut r = Receiver::new(kind, &c, dir.path());
    let mut s = Site::new("live", dir.path(), &mut c, &r);
    s.start();
    let a_ip = s.p.a_ip.to_string();
    let _ping = KillOnDrop(
        Command::new("ip")
            .args([
                "netns", "exec", &s.p.b, "ping", "-q", "-i", "0.2", "-s", "300",
            ])
            .arg(&a_ip)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // A minute with traffic reached the receiver live before it goes down.
    wait_until(
        "a counted minute at the receiver",
        Duration::from_secs(90),
        || {
            let first = s
                .export()
                .values()
                .filter_map(|m| m.keys().next().copied())
                .min();
            first.is_some_and(|f| s.cursor().is_some_and(|c| c >= f))
        },
    );
    let mut window = None;
    if outage {
        r.stop();
        let down = jiff::Timestamp::now().as_second();
        // Down until the minute it went down in is closed (its end, the margin, a flush).
        let back = (down / 60 + 1) * 60 + 8;
        while jiff::Timestamp::now().as_second() < back {
            std::thread::sleep(Duration::from_millis(200));
        }
        s.daemon
            .as_mut()
            .unwrap()
            .wait_for_log("remote write failed", Duration::ZERO);
        r.start();
        let outage_minute = down / 60 * 60;
        wait_until("the backfill", Duration::from_secs(30), || {
            s.cursor().is_some_and(|c| c >= outage_minute)
        });
        window = Some((outage_minute, back));
    }
    let cursor = s.cursor().unwrap();
    let local = s.export();
    let mut minutes = 0;
    let mut in_outage = 0;
    let all: std::collections::BTreeSet<i64> = local
        .values()
        .flat_map(|m| m.keys().copied())
        .filter(|&m| m <= cursor)
        .collect();
    for &m in &all {
        let t = m + 60;
        let mut want: BTreeMap<String, [u64; 6]> = BTreeMap::new();
        for (mac, rows) in &local {
            let w = want.entry(mac.clone()).or_default();
            for (_, v) in rows.range(..=m) {
                for i in 0..6 {
                    w[i] += v[i];
                }
            }
        }
        want.retain(|_, v| v.iter().any(|&x| x > 0));
        let got = settled(|| central(&r, "live", Some(t)), &want);
        assert_eq!(got, want, "{kind:?}: counters at the end of minute {m}");
        minutes += 1;
        if window.is_some_and(|(from, back)| m >= from && t <= back) {
            in_outage += 1;
        }
    }
    assert!(
        minutes > usize::from(outage) && (in_outage >= 1) == outage,
        "{minutes} minutes compared, {in_outage} of them sent after the outage"
    );
    eprintln!(
        "{kind:?}: {minutes} minutes equal minute by minute ({in_outage} backfilled after the outage), {:?}",
        started.elapsed()
    );
}

#[test]
fn outage_is_backfilled_minute_by_minute_victoriametrics() {
    outage_is_backfilled_minute_by_minute(Kind::Victoria, true);
}

#[test]
fn live_capture_reaches_prometheus_minute_by_minute() {
    outage_is_backfilled_minute_by_minute(Kind::Prometheus, false);
}

/// What docs/MULTISITE.md says of Prometheus: without `out_of_order_time_window` it refuses
/// months-old minutes (HTTP 400) once its head holds recent samples. lanmeter then says so in the
/// log, names the setting, and goes on after them instead of resending them for ever.
#[test]
fn prometheus_without_out_of_order_window_refuses_old_minutes_and_lanmeter_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Central::new();
    let mut r = Receiver::new(Kind::Prometheus, &c, dir.path());
    // No out-of-order window: the receiver as Debian's package configures it.
    std::fs::write(r.data.join("prometheus.yml"), "").unwrap();
    r.stop();
    r.start_keeping_config();
    // A first site puts recent samples into Prometheus' head (its health, at once).
    let mut recent = Site::new("recent", dir.path(), &mut c, &r);
    recent.start();
    wait_until("a recent sample in Prometheus", PATIENCE, || {
        !r.query("lanmeter_capture_up{site=\"recent\"}", None)
            .is_empty()
    });
    // A second site turns remote write on with months-old history.
    let mut old = Site::new("old", dir.path(), &mut c, &r);
    old.replay("9");
    old.start();
    let d = old.daemon.as_mut().unwrap();
    let line = d.wait_for_log("samples refused", PATIENCE);
    assert!(
        line.contains("HTTP 400") && line.contains("out_of_order_time_window"),
        "{line}"
    );
    let last = *old.export().values().flat_map(|m| m.keys()).max().unwrap();
    wait_until("the cursor past the refused minutes", PATIENCE, || {
        old.cursor().is_some_and(|c| c >= last)
    });
    // Nothing of the old minutes is there, and the site's health still arrives.
    assert!(
        r.query("lanmeter_device_bytes_total{site=\"old\"} > 0", None)
            .is_empty()
    );
    wait_until("the old site's health", PATIENCE, || {
        !r.query("lanmeter_capture_up{site=\"old\"}", None)
            .is_empty()
    });
}
