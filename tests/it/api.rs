//! The JSON API, `/metrics` and the OpenAPI document against the real web server on a loopback
//! port, over a database the real binary filled (`lanmeter generate` + `replay --db`), with
//! tokens made by `lanmeter token create`. Checked with real tools: every endpoint answered,
//! exports summing to the API's totals, `promtool check metrics`, a Prometheus server scraping
//! lanmeter with a token and answering a query, and schemathesis fuzzing the OpenAPI document
//! (from PyPI, in a venv under the test target folder) with no server error.

use crate::{LANMETER, hermetic};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// The demo capture: 2026-03-01T00:00Z plus three hours.
const FROM: &str = "2026-03-01T00:00:00Z";
const TO: &str = "2026-03-01T03:00:00Z";
/// The schemathesis lock file: the whole dependency tree with exact versions and hashes
/// (tests/python/requirements.in says how to renew it).
const PYTHON_LOCK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/python/requirements.lock"
);

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn lanmeter(args: &[&str]) -> String {
    run(hermetic(&mut Command::new(LANMETER))
        .env("TZ", "UTC")
        .args(args))
}

struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request with `Connection: close`, read to the end.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    assert!(
        !headers.contains_key("transfer-encoding"),
        "bodies have a length"
    );
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

struct Server {
    port: u16,
    db: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    admin: String,
    viewer: String,
    session: (String, String),
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    /// A household of 25 devices over three hours, an admin password, tokens from the CLI.
    fn start() -> Server {
        crate::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let pcap = dir.path().join("h.pcap");
        let db = dir.path().join("api.db");
        let (p, d) = (pcap.to_str().unwrap(), db.to_str().unwrap());
        lanmeter(&[
            "generate",
            p,
            "--frames",
            "60000",
            "--duration-secs",
            "10800",
        ]);
        lanmeter(&["replay", p, "--db", d]);
        let mut child = hermetic(&mut Command::new(LANMETER))
            .args(["passwd", "--db", d])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"correct horse battery\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
        let admin = lanmeter(&[
            "token",
            "create",
            "fuzz admin",
            "--role",
            "admin",
            "--db",
            d,
        ]);
        let viewer = lanmeter(&["token", "create", "prometheus", "--db", d]);
        // A signed-in browser session (the API takes sessions too). Its id and CSRF token are
        // made here and stored as the login page would store them.
        let store = lanmeter::store::Store::open(&db).unwrap();
        let now = jiff::Timestamp::now().as_second();
        store
            .insert_session(&lanmeter::store::auth::SessionRow {
                id_digest: lanmeter::auth::token_digest("fuzz-session-id"),
                role: lanmeter::auth::Role::Admin,
                csrf: "fuzz-csrf".into(),
                created_at: now,
                last_seen: now,
                client: "127.0.0.1".into(),
            })
            .unwrap();
        // Two open alerts and one undelivered message, as the alert engine would store them.
        let alert = |rule, severity| lanmeter::store::alerts::NewAlert {
            rule,
            subject: "plan",
            severity,
            title: "Alert from the API test",
            body: "body",
            facts: &[],
            links: &[],
            auto_resolve: true,
            now,
            notify: "pending",
        };
        let first = store
            .insert_alert(&alert("plan.threshold", "warning"))
            .unwrap();
        store
            .insert_alert(&alert("plan.projected_runout", "critical"))
            .unwrap();
        let mut store = store;
        store
            .queue_messages(
                &[first],
                &[lanmeter::store::alerts::NewMessage {
                    channel: "email",
                    kind: "alert",
                    alert_ids: vec![first],
                    subject: "s".into(),
                    text_body: "t".into(),
                    not_before: now + 3600,
                    expires_at: now + 86_400,
                    ..Default::default()
                }],
                now,
            )
            .unwrap();
        drop(store);

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cfg = lanmeter::config::Config {
            timezone: Some("UTC".into()),
            ..Default::default()
        };
        let state = lanmeter::web::AppState::new(cfg.clone(), &db, None).unwrap();
        // A config file the settings API may rewrite (schemathesis's PATCHes land here).
        let config = dir.path().join("lanmeter.toml");
        std::fs::write(&config, "# the API test's config\ntimezone = \"UTC\"\n").unwrap();
        state.set_settings(Arc::new(lanmeter::config::settings::Editor::new(
            config,
            lanmeter::config::settings::Live::new(cfg),
        )));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = lanmeter::web::spawn(listener, state, stop.clone(), None).unwrap();
        Server {
            port,
            db,
            stop,
            thread: Some(thread),
            admin: admin.trim().to_string(),
            viewer: viewer.trim().to_string(),
            session: ("lm_session=fuzz-session-id".into(), "fuzz-csrf".into()),
            dir,
        }
    }

    fn get(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        http(self.port, "GET", path, &[("Authorization", &auth)], "")
    }

    fn ok(&self, path: &str) -> Value {
        let r = self.get(path, &self.viewer);
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }
}

fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["status"], status);
    assert_eq!(v["code"], code);
    assert!(!v["message"].as_str().unwrap().is_empty());
    assert_eq!(v["request_id"].as_str().unwrap(), r.headers["x-request-id"]);
}

#[test]
fn every_endpoint_answers_and_exports_sum_to_the_api_totals() {
    let s = Server::start();
    let range = format!("from={FROM}&to={TO}");

    let doc = http(s.port, "GET", "/api/v1/openapi.json", &[], "").json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let devices = s.ok("/api/v1/devices?limit=100&include_gateway=true");
    let items = devices["items"].as_array().unwrap();
    assert!(items.len() >= 20, "the demo household: {}", items.len());
    let gateway = items.iter().find(|d| d["is_gateway"] == true).unwrap();
    let gw_mac = gateway["mac"].as_str().unwrap().to_string();
    let first = &items.iter().find(|d| d["is_gateway"] == false).unwrap();
    let id = first["id"].as_i64().unwrap();
    assert_eq!(s.ok(&format!("/api/v1/devices/{id}"))["mac"], first["mac"]);
    assert_error(
        &s.get("/api/v1/devices?limit=101", &s.viewer),
        400,
        "invalid_query",
    );

    let patch = json!({"name": "Kitchen tablet", "owner": "Sam", "group": "kitchen"}).to_string();
    let auth = format!("Bearer {}", s.admin);
    let r = http(
        s.port,
        "PATCH",
        &format!("/api/v1/devices/{id}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &patch,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["name"], "Kitchen tablet");
    let vauth = format!("Bearer {}", s.viewer);
    let r = http(
        s.port,
        "PATCH",
        &format!("/api/v1/devices/{id}"),
        &[
            ("Authorization", &vauth),
            ("Content-Type", "application/json"),
        ],
        &patch,
    );
    assert_error(&r, 403, "forbidden");
    // A browser session works as well; its changes need the CSRF header.
    let cookie = s.session.0.as_str();
    let r = http(
        s.port,
        "GET",
        &format!("/api/v1/devices/{id}"),
        &[("Cookie", cookie)],
        "",
    );
    assert_eq!(r.json()["user"]["owner"], "Sam");
    let unset = json!({"group": null}).to_string();
    let path = format!("/api/v1/devices/{id}");
    let r = http(
        s.port,
        "PATCH",
        &path,
        &[("Cookie", cookie), ("Content-Type", "application/json")],
        &unset,
    );
    assert_error(&r, 403, "csrf");
    let with_csrf = [
        ("Cookie", cookie),
        ("Content-Type", "application/json"),
        ("X-CSRF-Token", s.session.1.as_str()),
    ];
    let r = http(s.port, "PATCH", &path, &with_csrf, &unset);
    assert_eq!(r.json()["user"]["group"], Value::Null);
    let r = http(
        s.port,
        "PATCH",
        &path,
        &with_csrf,
        &json!({"group": "kitchen"}).to_string(),
    );
    assert_eq!(r.status, 200);

    let household = s.ok(&format!("/api/v1/usage?{range}&bucket=hour"));
    assert_eq!(household["scope"], "household");
    assert_eq!(household["series"].as_array().unwrap().len(), 3);
    let by_owner = s.ok(&format!("/api/v1/usage?{range}&owner=sam"));
    let by_group = s.ok(&format!(
        "/api/v1/usage?{range}&group=Kitchen&bucket=minute"
    ));
    let one = s.ok(&format!("/api/v1/usage?{range}&device={id}&bucket=day"));
    assert_eq!(by_owner["total"], one["total"]);
    assert_eq!(by_group["total"], one["total"]);
    assert!(one["total"]["total_bytes"].as_u64().unwrap() > 0);
    let top = s.ok(&format!("/api/v1/top?{range}&limit=5"));
    assert_eq!(top["items"].as_array().unwrap().len(), 5);
    assert!(
        top["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["mac"] != gw_mac.as_str())
    );
    let presence = s.ok(&format!("/api/v1/presence?{range}"));
    assert!(presence["devices"].as_array().unwrap().len() >= 20);
    let system = s.ok("/api/v1/system");
    assert_eq!(
        system["schema_version"].as_i64().unwrap(),
        doc_schema_version(&s.db)
    );
    assert!(system["database_bytes"].as_u64().unwrap() > 0);
    assert_eq!(s.ok("/api/v1/capture")["running"], false);
    assert_error(&s.get("/api/v1/tokens", &s.viewer), 403, "forbidden");
    let tokens = s.get("/api/v1/tokens", &s.admin).json();
    assert_eq!(tokens.as_array().unwrap().len(), 2);

    // Exports round-trip: the CSV of the range sums to the API's totals for that range, for
    // the household (every row but the gateway's) and for one device.
    let csv = s.get(
        &format!("/api/v1/export?{range}&period=hour&format=csv"),
        &s.viewer,
    );
    assert_eq!(csv.status, 200);
    assert!(csv.headers["content-type"].starts_with("text/csv"));
    assert!(csv.headers["content-disposition"].starts_with("attachment"));
    let sums = csv_sums(&String::from_utf8(csv.body).unwrap(), Some(&gw_mac));
    for k in [
        "bytes_sent",
        "bytes_received",
        "frames_sent",
        "frames_received",
        "internet_upload_bytes",
        "internet_download_bytes",
    ] {
        assert_eq!(
            sums[k],
            household["total"][k].as_u64().unwrap(),
            "household {k}"
        );
    }
    let csv = s.get(
        &format!("/api/v1/export?{range}&period=minute&device={id}"),
        &s.viewer,
    );
    let sums = csv_sums(&String::from_utf8(csv.body).unwrap(), None);
    assert_eq!(
        sums["bytes_sent"],
        one["total"]["bytes_sent"].as_u64().unwrap()
    );
    assert_eq!(
        sums["bytes_received"],
        one["total"]["bytes_received"].as_u64().unwrap()
    );
    // The JSON export is the very output of `lanmeter export`.
    let api_json = s
        .get(
            &format!("/api/v1/export?{range}&period=hour&format=json"),
            &s.viewer,
        )
        .body;
    let cli_json = lanmeter(&[
        "export",
        "--db",
        s.db.to_str().unwrap(),
        "--period",
        "hour",
        "--from",
        FROM,
        "--to",
        TO,
        "--format",
        "json",
    ]);
    assert_eq!(String::from_utf8(api_json).unwrap(), cli_json);

    // The plan report (the default plan: unlimited, calendar month, in the server's zone).
    let plan = s.ok("/api/v1/plan");
    assert_eq!(plan["zone"], "UTC");
    assert_eq!(plan["plan"]["cycle"]["kind"], "monthly");
    assert_eq!(plan["status"]["allowance_bytes"], Value::Null);
    assert!(plan["status"]["days_left"].as_i64().unwrap() >= 1);
    assert!(!plan["days"].as_array().unwrap().is_empty());

    // Alerts: list, filter, page, acknowledge (admins only), 404 for a missing one.
    let alerts = s.ok("/api/v1/alerts");
    assert_eq!(alerts["total"], 2);
    let warning = s.ok("/api/v1/alerts?state=open&severity=warning&limit=1");
    assert_eq!(
        (warning["total"].as_u64(), warning["limit"].as_u64()),
        (Some(1), Some(1))
    );
    let alert_id = warning["items"][0]["id"].as_i64().unwrap();
    assert_eq!(warning["items"][0]["state"], "open");
    assert_eq!(
        s.ok("/api/v1/alerts?offset=1")["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_error(
        &s.get("/api/v1/alerts?limit=101", &s.viewer),
        400,
        "invalid_query",
    );
    assert_error(
        &s.get("/api/v1/alerts?state=done", &s.viewer),
        400,
        "invalid_query",
    );
    let ack = format!("/api/v1/alerts/{alert_id}/acknowledge");
    assert_error(
        &http(s.port, "POST", &ack, &[("Authorization", &vauth)], ""),
        403,
        "forbidden",
    );
    assert_error(
        &http(
            s.port,
            "POST",
            "/api/v1/alerts/999999/acknowledge",
            &[("Authorization", &auth)],
            "",
        ),
        404,
        "not_found",
    );
    let r = http(s.port, "POST", &ack, &[("Authorization", &auth)], "");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let acked = r.json();
    assert_eq!(acked["state"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "token fuzz admin");
    let by_state = s.ok("/api/v1/alerts?state=acknowledged");
    assert_eq!(by_state["total"], 1);
    assert_eq!(by_state["items"][0]["id"], alert_id);
    assert_eq!(s.ok("/api/v1/alerts?state=open")["total"], 1);
    let audit = lanmeter::store::Store::open(&s.db)
        .unwrap()
        .audit_recent(20)
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.action == "alert acknowledged" && e.detail == format!("alert {alert_id}")),
        "{audit:?}"
    );

    // Revoked from the shell, refused by the server.
    let list = lanmeter(&["token", "list", "--db", s.db.to_str().unwrap()]);
    let prom_id = list
        .lines()
        .find(|l| l.contains("prometheus"))
        .unwrap()
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    lanmeter(&["token", "revoke", &prom_id, "--db", s.db.to_str().unwrap()]);
    assert_error(&s.get("/api/v1/system", &s.viewer), 401, "invalid_token");
    assert!(lanmeter(&["token", "list", "--db", s.db.to_str().unwrap()]).contains("revoked"));
}

fn doc_schema_version(db: &Path) -> i64 {
    lanmeter::store::Store::open(db)
        .unwrap()
        .schema_version()
        .unwrap()
}

/// Column sums of an export CSV, leaving out the rows of `skip_mac`.
fn csv_sums(csv: &str, skip_mac: Option<&str>) -> BTreeMap<String, u64> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut sums = BTreeMap::new();
    let mut rows = 0;
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if Some(f[0]) == skip_mac {
            continue;
        }
        rows += 1;
        for (k, v) in header.iter().zip(&f).skip(3) {
            *sums.entry(k.to_string()).or_insert(0) += v.parse::<u64>().unwrap();
        }
    }
    assert!(rows > 0, "the export has rows");
    sums
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn metrics_pass_promtool_and_a_prometheus_server_scrapes_a_device_counter() {
    let s = Server::start();
    let anon = http(s.port, "GET", "/metrics", &[], "");
    assert_error(&anon, 401, "unauthorized");
    let r = s.get("/metrics", &s.viewer);
    assert_eq!(r.status, 200);
    assert!(r.headers["content-type"].starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(r.body).unwrap();
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, in TEST_DEBS)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty() && out.stdout.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The device counter /metrics reports equals the API's all-time usage of that device.
    let top = s.ok(&format!("/api/v1/top?from={FROM}&to={TO}&limit=1"));
    let mac = top["items"][0]["mac"].as_str().unwrap().to_string();
    let want = top["items"][0]["usage"]["bytes_sent"].as_u64().unwrap();
    let line = format!("lanmeter_device_bytes_total{{mac=\"{mac}\"");
    let sample = text
        .lines()
        .find(|l| l.starts_with(&line) && l.contains("direction=\"sent\""))
        .unwrap();
    assert_eq!(
        sample.rsplit(' ').next().unwrap().parse::<u64>().unwrap(),
        want
    );
    for name in [
        "lanmeter_build_info",
        "lanmeter_web_pages_reused_total",
        "lanmeter_household_bytes_total",
        "lanmeter_capture_packets_total",
        "lanmeter_capture_dropped_packets_total",
        "lanmeter_flush_duration_seconds_bucket",
        "lanmeter_database_size_bytes",
        "lanmeter_outbox_messages",
        "lanmeter_alerts",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} in /metrics"
        );
    }

    // The outbox depth and alert counts of the two alerts Server::start stored.
    // Every sample carries the site label last; no `site` key is set, so it is the host name.
    let site = nix::unistd::gethostname().unwrap().into_string().unwrap();
    for line in [
        "lanmeter_outbox_messages{state=\"pending\",SITE} 1",
        "lanmeter_outbox_messages{state=\"failed\",SITE} 0",
        "lanmeter_alerts{state=\"open\",severity=\"warning\",SITE} 1",
        "lanmeter_alerts{state=\"open\",severity=\"critical\",SITE} 1",
        "lanmeter_alerts{state=\"resolved\",severity=\"info\",SITE} 0",
    ] {
        let line = line.replace("SITE", &format!("site=\"{site}\""));
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }

    // A real Prometheus scrapes with the viewer token and answers a query for that counter.
    let prom_port = free_port();
    let conf = s.dir.path().join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lanmeter\n    authorization:\n      type: Bearer\n      credentials: {}\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            s.viewer, s.port
        ),
    )
    .unwrap();
    let _prom = KillOnDrop(
        Command::new("prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                s.dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus, in TEST_DEBS)"),
    );
    let query = format!("lanmeter_device_bytes_total{{mac=\"{mac}\",direction=\"sent\"}}");
    let q: String = serde_urlencoded::to_string([("query", query.as_str())]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let value = loop {
        assert!(
            Instant::now() < deadline,
            "Prometheus never answered {query}"
        );
        std::thread::sleep(Duration::from_millis(500));
        if TcpStream::connect(("127.0.0.1", prom_port)).is_err() {
            continue;
        }
        let r = http(prom_port, "GET", &format!("/api/v1/query?{q}"), &[], "");
        if r.status != 200 {
            continue;
        }
        let v = r.json();
        if let Some(x) = v["data"]["result"][0]["value"][1].as_str() {
            break x.parse::<u64>().unwrap();
        }
    };
    assert_eq!(value, want);
}

/// A venv with schemathesis under the test target folder, installed from the lock file with
/// `--require-hashes` (nothing unpinned can slip in) and made again whenever the lock changes.
/// Debian's python3 (python3-venv), not whatever `python3` a developer's PATH holds.
fn schemathesis() -> PathBuf {
    let lock = std::fs::read(PYTHON_LOCK).expect("reading tests/python/requirements.lock");
    let digest = lock.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let venv =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-venv-{digest:016x}"));
    let bin = venv.join("bin/schemathesis");
    // A venv whose scripts no longer start (its folder was moved: the shebangs are absolute
    // paths) is built again rather than failing the test with "No such file or directory".
    let works = |b: &Path| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !works(&bin) {
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("/usr/bin/python3")
            .args(["-m", "venv"])
            .arg(&venv));
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            "--no-deps",
            "--require-hashes",
            "-r",
            PYTHON_LOCK,
        ]));
    }
    bin
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let bin = schemathesis();
    let s = Server::start();
    let report = s.dir.path().join("st");
    // Run in the test's folder: schemathesis keeps a cache in its working directory.
    let out = Command::new(&bin)
        .current_dir(s.dir.path())
        .arg("run")
        .arg(format!("http://127.0.0.1:{}/api/v1/openapi.json", s.port))
        // The admin token: a token cannot revoke itself, so the fuzzed DELETE cannot lock it out.
        .args(["-H", &format!("Authorization: Bearer {}", s.admin)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--workers",
            "2",
            "--report-dir",
        ])
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("Server error"), "{stdout}");
    // It really exercised the API: "N generated, N passed" with a few hundred cases at least.
    let generated: u64 = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_suffix(" passed")?
                .split_once(" generated, ")?
                .0
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no test-case count in:\n{stdout}"));
    assert!(generated >= 300, "only {generated} cases:\n{stdout}");
    eprintln!("schemathesis: {generated} cases, no server error, responses match the document");
}

/// `lanmeter run` in a network namespace: the API and /metrics report the live capture thread's
/// counters and the daemon's flush durations, and a device counter grows with real traffic.
#[test]
fn the_daemon_publishes_capture_counters_and_flush_durations() {
    let p = crate::netns::NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let d = db.to_str().unwrap();
    let mut pw = hermetic(&mut Command::new(LANMETER))
        .args(["passwd", "--db", d])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    pw.stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery\n")
        .unwrap();
    assert!(pw.wait().unwrap().success());
    let token = lanmeter(&["token", "create", "scraper", "--db", d])
        .trim()
        .to_string();
    let config = dir.path().join("lanmeter.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\nlisten = \"127.0.0.1:8080\"\narp_sweep_interval_secs = 0\ntimezone = \"UTC\"\n",
            dir.path().display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &p.a, LANMETER, "--config"])
        .arg(&config)
        .args(["run", "--interface", &p.a_if, "--db", d]);
    let _daemon = KillOnDrop(
        hermetic(&mut cmd)
            .env("LANMETER_FLUSH_INTERVAL_SECS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let get = |path: &str| {
        p.in_ns(&p.a, || {
            TcpStream::connect(("127.0.0.1", 8080)).ok().map(|_| {
                http(
                    8080,
                    "GET",
                    path,
                    &[("Authorization", &format!("Bearer {token}"))],
                    "",
                )
            })
        })
    };
    let wait = |what: &str, mut f: Box<dyn FnMut() -> bool + '_>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait(
        "the daemon's web server",
        Box::new(|| get("/api/v1/capture").is_some_and(|r| r.status == 200)),
    );
    let out = p.exec(
        &p.b,
        &[
            "ping",
            "-q",
            "-c",
            "10",
            "-i",
            "0.05",
            "-W",
            "2",
            &p.a_ip.to_string(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    wait(
        "capture counters",
        Box::new(|| {
            let c = get("/api/v1/capture").unwrap().json();
            c["running"] == true && c["frames_seen"].as_u64().unwrap() >= 20
        }),
    );
    let b_mac = p.b_mac.to_string();
    let sample = |text: &str, prefix: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(prefix))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    };
    wait(
        "a flushed device counter in /metrics",
        Box::new(|| {
            let text = String::from_utf8(get("/metrics").unwrap().body).unwrap();
            // The site label comes last on every sample.
            let dev = format!(
                "lanmeter_device_bytes_total{{mac=\"{b_mac}\",name=\"\",direction=\"sent\",site="
            );
            sample(&text, &dev).is_some_and(|v| v >= 10.0 * 98.0)
                && sample(&text, "lanmeter_capture_up{site=") == Some(1.0)
                && sample(&text, "lanmeter_capture_packets_total{site=").is_some_and(|v| v >= 20.0)
                && sample(&text, "lanmeter_flush_duration_seconds_count{site=")
                    .is_some_and(|v| v >= 1.0)
        }),
    );
    let sys = get("/api/v1/system").unwrap().json();
    assert!(sys["started_at"].is_string());
    assert!(
        sys["storage"]["ok"] == true && sys["storage"]["flushes"].as_u64().unwrap() >= 1,
        "{sys}"
    );
    assert_eq!(sys["capture"]["kernel_dropped"], 0);
}
