//! Issue 19, against the real binary on loopback (`lanmeter demo`), with raw HTTP so every
//! header is the attacker's choice: the Host allow-list (DNS rebinding) on every route before
//! and after setup, the one-time setup code, parallel wrong logins against the throttle, and a
//! flood of failed logins that must not push security events out of the audit log.

use crate::netns::KillOnDrop;
use crate::{LANMETER, hermetic};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery";
const EVIL: &str = "evil.example";

/// `lanmeter demo` on a free loopback port (a tiny household, built in a second).
struct Demo {
    port: u16,
    db: PathBuf,
    /// The first-run setup link the demo printed (none with a password file).
    link: Option<String>,
    _proc: KillOnDrop,
    _dir: tempfile::TempDir,
}

impl Demo {
    fn start(with_password: bool) -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("demo.db");
        let mut cmd = Command::new(LANMETER);
        hermetic(&mut cmd)
            .args(["demo", "--devices", "3", "--days", "1"])
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(&db);
        if with_password {
            let pw = dir.path().join("pw");
            std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
            cmd.arg("--admin-password-file").arg(pw);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let proc = KillOnDrop(child);
        let mut lines = BufReader::new(out).lines();
        let mut link = None;
        let port = loop {
            let line = lines.next().expect("lanmeter demo ended early").unwrap();
            if let Some(l) = line.strip_prefix("first-run setup: ") {
                link = Some(l.trim().to_string());
            }
            if let Some(rest) = line.strip_prefix("dashboard: http://127.0.0.1:") {
                break rest.split('/').next().unwrap().parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Demo {
            port,
            db,
            link,
            _proc: proc,
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn origin(&self) -> String {
        format!("http://{}", self.host())
    }
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn cookie(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let v = l.strip_prefix("set-cookie: ")?;
            v.split(';')
                .next()?
                .strip_prefix(&format!("{name}="))
                .map(str::to_string)
        })
    }
}

/// One request on its own connection; `host` goes into the Host header as given.
fn http(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Resp {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

/// Every registered route with a concrete path, and a path no route has.
fn every_path() -> Vec<String> {
    let mut paths: Vec<String> = lanmeter::web::route_table()
        .iter()
        .map(|r| {
            r.path
                .replace("{file}", &lanmeter::web::assets::sample_file())
                .replace("{id}", "1")
        })
        .collect();
    paths.push("/no-such-page".into());
    paths
}

/// Every route refuses a foreign Host (421, before any route runs), and every state-changing
/// request with a rebinding page's Origin, even with the right Host (403). `cookie` and `csrf`
/// are a signed-in admin's, after setup.
fn foreign_hosts_are_refused_everywhere(d: &Demo, cookie: &str, csrf: &str) {
    let evil_port = format!("{EVIL}:{}", d.port);
    let evil_origin = format!("http://{evil_port}");
    let mut refused = 0;
    for path in every_path() {
        for host in [evil_port.as_str(), EVIL, "127.0.0.1.nip.io", "localhost:1"] {
            let r = http(d.port, "GET", &path, host, &[("Cookie", cookie)], "");
            assert_eq!(r.status, 421, "GET {path} Host {host}: {}", r.head);
            assert!(r.body.contains("web_host_names"), "{}", r.body);
            refused += 1;
        }
        // What a rebinding page sends: its own name as Host and as Origin.
        let r = http(
            d.port,
            "POST",
            &path,
            &evil_port,
            &[
                ("Origin", &evil_origin),
                ("Cookie", cookie),
                ("X-CSRF-Token", csrf),
            ],
            "x=1",
        );
        assert_eq!(r.status, 421, "POST {path}: {}", r.head);
        // The right Host but another site's Origin: refused by the Origin check.
        let r = http(
            d.port,
            "POST",
            &path,
            &d.host(),
            &[
                ("Origin", &evil_origin),
                ("Cookie", cookie),
                ("X-CSRF-Token", csrf),
            ],
            "x=1",
        );
        assert_eq!(
            r.status, 403,
            "POST {path} with a foreign Origin: {}",
            r.head
        );
        refused += 2;
    }
    // The same requests by the server's own names are served (so the refusals above mean it).
    for host in [d.host(), format!("localhost:{}", d.port)] {
        let r = http(d.port, "GET", "/healthz", &host, &[], "");
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{host}");
    }
    eprintln!("{refused} requests for other hosts or origins refused");
}

fn setup_link(db: &Path) -> std::process::Output {
    hermetic(&mut Command::new(LANMETER))
        .args(["setup-link", "--db"])
        .arg(db)
        .output()
        .unwrap()
}

#[test]
fn foreign_hosts_and_origins_are_refused_on_every_route_and_setup_needs_the_code_once() {
    let d = Demo::start(false);
    let link = d.link.clone().expect("the demo prints its setup link");
    let code = link.split_once("?code=").unwrap().1.to_string();
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{}/setup?code=", d.port)),
        "{link}"
    );
    // Beside the database, readable by its owner only; setup-link prints the same link.
    let file = lanmeter::setup_code::path_for(&d.db);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    let out = setup_link(&d.db);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .ends_with(&format!("/setup?code={code}")),
        "{out:?}"
    );

    // Before setup: nothing answers another host, not even /setup with the right code.
    foreign_hosts_are_refused_everywhere(&d, "", "");
    let evil = format!("{EVIL}:{}", d.port);
    let page = http(d.port, "GET", "/setup", &d.host(), &[], "");
    let pre = page.cookie("lm_pre").unwrap();
    let pre_cookie = format!("lm_pre={pre}");
    let fields = |code: &str| {
        form(&[
            ("csrf", &pre),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
            ("code", code),
        ])
    };
    let takeover = http(
        d.port,
        "POST",
        "/setup",
        &evil,
        &[
            ("Origin", &format!("http://{evil}")),
            ("Cookie", &pre_cookie),
        ],
        &fields(&code),
    );
    assert_eq!(takeover.status, 421);
    // By the right name: no code, a wrong code, then the right one, once.
    let origin = d.origin();
    let post = |body: String| {
        http(
            d.port,
            "POST",
            "/setup",
            &d.host(),
            &[("Origin", &origin), ("Cookie", &pre_cookie)],
            &body,
        )
    };
    assert_eq!(post(fields("")).status, 403);
    let wrong = post(fields("abcd-efgh-jkmn"));
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.contains("not the setup code"), "{}", wrong.body);
    assert!(setup_link(&d.db).status.success(), "still pending");
    let linked = http(
        d.port,
        "GET",
        &format!("/setup?code={code}"),
        &d.host(),
        &[],
        "",
    );
    assert!(linked.body.contains(&format!("value=\"{code}\"")));
    let ok = post(fields(&code));
    assert_eq!(ok.status, 303, "{}{}", ok.head, ok.body);
    let session = ok.cookie("lm_session").expect("setup signs the admin in");
    assert!(!file.exists(), "a used code is deleted");
    let again = post(fields(&code));
    assert!(again.head.contains("location: /login"), "{}", again.head);
    let done = setup_link(&d.db);
    assert!(!done.status.success());
    let err = String::from_utf8_lossy(&done.stderr);
    assert!(
        err.trim().lines().count() == 1 && err.contains("setup is already done"),
        "{err}"
    );

    // After setup, with a valid admin session: the same.
    let cookie = format!("lm_session={session}");
    let store = lanmeter::store::Store::open(&d.db).unwrap();
    let digest = lanmeter::auth::token_digest(&session);
    let csrf = store.session(&digest).unwrap().unwrap().csrf;
    foreign_hosts_are_refused_everywhere(&d, &cookie, &csrf);
    // The session itself works by the right name (the refusals were about the host).
    let r = http(
        d.port,
        "GET",
        "/api/v1/devices",
        &d.host(),
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.head);
    let actions: Vec<String> = store
        .audit_recent(1000)
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert!(actions.contains(&"setup".into()), "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| *a == "setup code wrong").count(),
        2,
        "{actions:?}"
    );
}

#[test]
fn parallel_wrong_logins_from_one_address_are_counted_before_any_check() {
    let d = Demo::start(true);
    let page = http(d.port, "GET", "/login", &d.host(), &[], "");
    let pre = page.cookie("lm_pre").unwrap();
    let body = form(&[
        ("csrf", &pre),
        ("password", "wrong password!"),
        ("next", "/"),
    ]);
    let (host, origin, cookie) = (d.host(), d.origin(), format!("lm_pre={pre}"));
    let n = 50;
    let barrier = std::sync::Barrier::new(n);
    let t = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    http(
                        d.port,
                        "POST",
                        "/login",
                        &host,
                        &[("Origin", &origin), ("Cookie", &cookie)],
                        &body,
                    )
                    .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let secs = t.elapsed().as_secs_f64();
    let checked = statuses.iter().filter(|s| **s == 401).count() as u32;
    let refused = statuses.iter().filter(|s| **s == 429).count() as u32;
    eprintln!(
        "{n} parallel wrong logins in {secs:.2} s: {checked} checked (401), {refused} refused (429)"
    );
    assert_eq!(checked + refused, n as u32, "{statuses:?}");
    // Three free tries, then one more each second at most (the delay doubles after that).
    let throttle = lanmeter::auth::Throttle::default();
    let allowed = throttle.free_failures + secs.ceil() as u32;
    assert!(
        checked <= allowed,
        "{checked} checks > {allowed}: {statuses:?}"
    );
    // Every check is counted and audited; the refusals are summed in one row.
    let store = lanmeter::store::Store::open(&d.db).unwrap();
    assert_eq!(store.login_failures("127.0.0.1").unwrap().count, checked);
    let audit = store.audit_recent(1000).unwrap();
    let failed = audit.iter().filter(|a| a.action == "login failed").count() as u32;
    assert_eq!(failed, checked);
    let summary: Vec<_> = audit
        .iter()
        .filter(|a| a.action == "login refused")
        .collect();
    assert_eq!(summary.len(), 1, "{summary:?}");
    assert!(
        summary[0].detail.starts_with("1 attempts refused"),
        "{summary:?}"
    );
    // The rest are summed in memory and written within 5 s of the first; the next refused
    // attempt after that writes them.
    std::thread::sleep(Duration::from_millis(5100));
    let r = http(
        d.port,
        "POST",
        "/login",
        &host,
        &[("Origin", &origin), ("Cookie", &cookie)],
        &body,
    );
    if r.status == 429 {
        let audit = store.audit_recent(1000).unwrap();
        let row = audit.iter().find(|a| a.action == "login refused").unwrap();
        assert!(
            row.detail
                .starts_with(&format!("{} attempts refused", refused + 1)),
            "{row:?}"
        );
    }
}

#[test]
fn a_flood_of_failed_logins_keeps_the_token_created_entry() {
    let d = Demo::start(true);
    let out = hermetic(&mut Command::new(LANMETER))
        .args([
            "token",
            "create",
            "home assistant",
            "--role",
            "admin",
            "--db",
        ])
        .arg(&d.db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = http(d.port, "GET", "/login", &d.host(), &[], "");
    let pre = page.cookie("lm_pre").unwrap();
    let body = form(&[
        ("csrf", &pre),
        ("password", "wrong password!"),
        ("next", "/"),
    ]);
    let n_threads = 4;
    let per_thread = 2_750;
    let t = Instant::now();
    let counts: Vec<(u32, u32)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n_threads)
            .map(|_| {
                let body = body.clone();
                let (host, origin) = (d.host(), d.origin());
                let pre = pre.clone();
                s.spawn(move || flood(d.port, &host, &origin, &pre, &body, per_thread))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (checked, refused) = counts.iter().fold((0, 0), |(a, b), (c, r)| (a + c, b + r));
    eprintln!(
        "{} failed logins in {:.1} s: {checked} checked, {refused} refused",
        n_threads * per_thread,
        t.elapsed().as_secs_f64()
    );
    assert_eq!(checked + refused, n_threads * per_thread);
    let store = lanmeter::store::Store::open(&d.db).unwrap();
    let audit = store.audit_recent(100_000).unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.action == "token created" && a.detail.contains("home assistant")),
        "the token entry was pushed out"
    );
    // The flood costs a handful of rows, not 11,000.
    assert!(audit.len() < 100, "{} audit rows", audit.len());
}

/// `n` wrong logins over one keep-alive connection (reconnecting when the server closes it):
/// (answered 401, answered 429).
fn flood(port: u16, host: &str, origin: &str, pre: &str, body: &str, n: u32) -> (u32, u32) {
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nCookie: lm_pre={pre}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (mut checked, mut refused) = (0, 0);
    let mut conn: Option<BufReader<TcpStream>> = None;
    while checked + refused < n {
        let c = conn.get_or_insert_with(|| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            BufReader::new(s)
        });
        if c.get_mut().write_all(req.as_bytes()).is_err() {
            conn = None;
            continue;
        }
        let Some((status, close)) = read_response(c) else {
            conn = None;
            continue;
        };
        match status {
            401 => checked += 1,
            429 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
        if close {
            conn = None;
        }
    }
    (checked, refused)
}

/// Reads one response: (status, whether the server closes the connection).
fn read_response(r: &mut BufReader<TcpStream>) -> Option<(u16, bool)> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let (mut len, mut close, mut chunked) = (0usize, false, false);
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end().to_ascii_lowercase();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.strip_prefix("content-length: ") {
            len = v.parse().ok()?;
        }
        close |= l == "connection: close";
        chunked |= l == "transfer-encoding: chunked";
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut b = vec![0; len];
        r.read_exact(&mut b).ok()?;
    }
    Some((status, close))
}

/// What the package's postinst relies on: `lanmeter setup-link` prints one link and exits 0
/// while setup is pending, even before the daemon made a database; run by root, the code file
/// still belongs to the owner of the data folder (the daemon's user), mode 0600.
#[test]
fn setup_link_before_the_first_start_and_as_root() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let nobody = nix::unistd::Uid::from_raw(65534);
    let as_root = nix::unistd::geteuid().is_root();
    if as_root {
        nix::unistd::chown(&data, Some(nobody), Some(nix::unistd::Gid::from_raw(65534))).unwrap();
    }
    let config = dir.path().join("lanmeter.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\nlisten = \"192.0.2.10:8181\"\n",
            data.display()
        ),
    )
    .unwrap();
    let run = || {
        hermetic(&mut Command::new(LANMETER))
            .arg("--config")
            .arg(&config)
            .arg("setup-link")
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let code = stdout
        .trim()
        .strip_prefix("http://192.0.2.10:8181/setup?code=")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(!data.join("lanmeter.db").exists(), "no database is made");
    let file = data.join("lanmeter.db.setup-code");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    if as_root {
        assert_eq!(
            meta.uid(),
            65534,
            "the code belongs to the data folder's owner"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), code);
    // Asked again: the same link.
    assert_eq!(String::from_utf8_lossy(&run().stdout), stdout);
}
