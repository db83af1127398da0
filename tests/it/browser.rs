//! Real headless Chromium, driven over W3C WebDriver (chromedriver), against the real web server
//! on a loopback port and a fresh database: first-run setup, logout, a wrong password, login,
//! hostile input staying inert, and the CSP blocking an inline script injected into the page.
//!
//! The WebDriver client is a few lines of HTTP/1.1 over a TcpStream with serde_json: the
//! protocol is plain JSON, and a client crate would bring a second HTTP stack for nothing.

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Longest wait for anything the browser does (a debug build on a busy 2-core machine).
pub(crate) const PATIENCE: Duration = Duration::from_secs(15);

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one request to chromedriver and returns the `value` of its JSON answer.
pub(crate) fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(PATIENCE * 2)).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open despite `Connection: close`: read by Content-Length.
    let mut reader = std::io::BufReader::new(s);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut reader, &mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().map_err(|_| format!("bad header {line}"))?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    let json_body = String::from_utf8_lossy(&body);
    let v: Value = serde_json::from_str(&json_body).map_err(|e| format!("{e}: {json_body}"))?;
    match v["value"].get("error") {
        Some(err) => Err(format!("{err}: {}", v["value"]["message"])),
        None => Ok(v["value"].clone()),
    }
}

pub(crate) struct KillOnDrop(pub(crate) Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One chromedriver process with one headless Chromium session.
pub(crate) struct Browser {
    port: u16,
    session: String,
    _driver: KillOnDrop,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub(crate) fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver not found: install the Debian packages chromium and chromium-driver (make deps-test)");
        let driver = KillOnDrop(driver);
        wait_until("chromedriver to answer", || {
            http(port, "GET", "/status", None)
                .ok()
                .filter(|v| v["ready"] == true)
        });
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.path().display())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let v = http(port, "POST", "/session", Some(&caps)).expect("starting headless Chromium");
        Browser {
            port,
            session: v["sessionId"].as_str().unwrap().to_string(),
            _driver: driver,
            _profile: profile,
        }
    }

    pub(crate) fn cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let p = format!("/session/{}{path}", self.session);
        http(self.port, method, &p, body.as_ref())
    }

    pub(crate) fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).unwrap();
    }

    pub(crate) fn path(&self) -> String {
        let url = self.cmd("GET", "/url", None).unwrap();
        let url = url.as_str().unwrap();
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        rest.find('/').map_or("/".into(), |i| rest[i..].to_string())
    }

    pub(crate) fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .unwrap()
    }

    pub(crate) fn element(&self, css: &str) -> String {
        let v = wait_until(&format!("element {css}"), || {
            self.cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()
        });
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    pub(crate) fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))
            .unwrap();
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .unwrap();
    }

    pub(crate) fn click(&self, css: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})))
            .unwrap();
    }

    pub(crate) fn wait_for_path(&self, want: &str) {
        wait_until(&format!("the browser to reach {want}"), || {
            let p = self.path();
            (p == want && self.js("return document.readyState") == "complete").then_some(())
        });
    }

    pub(crate) fn text(&self) -> String {
        self.js("return document.body.innerText")
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.cmd("DELETE", "", None);
    }
}

pub(crate) fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The real server on a free loopback port with a fresh database; stops when dropped.
struct Server {
    base: String,
    db: std::path::PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start() -> Server {
        crate::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let db = dir.path().join("web.db");
        let state =
            lanmeter::web::AppState::new(lanmeter::config::Config::default(), &db, None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = lanmeter::web::spawn(listener, state, stop.clone(), None).unwrap();
        Server {
            base,
            db,
            stop,
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const PASSWORD: &str = "correct horse battery";

#[test]
fn setup_login_logout_and_csp_in_headless_chromium() {
    let server = Server::start();
    let b = Browser::start();
    let base = &server.base;

    // First run: any page leads to setup, which needs the one-time code; the setup link
    // (journal, `lanmeter setup-link`) carries it.
    b.go(&format!("{base}/audit"));
    b.wait_for_path("/setup");
    let code = lanmeter::setup_code::read(&server.db)
        .unwrap()
        .expect("the server made a setup code at start");
    b.go(&format!("{base}/setup?code={code}"));
    b.wait_for_path(&format!("/setup?code={code}"));
    b.type_into("#password", "short one");
    b.type_into("#confirm", "short one");
    // The browser's own minlength check would stop the form; the server's rule is what counts.
    b.js("document.getElementById('password').removeAttribute('minlength'); document.getElementById('confirm').removeAttribute('minlength'); return 0");
    b.click("#setup button[type=submit]");
    wait_until("the too-short message", || {
        b.text().contains("too short").then_some(())
    });
    b.type_into("#password", PASSWORD);
    b.type_into("#confirm", PASSWORD);
    b.click("#setup button[type=submit]");
    // Setup leads to the first-run wizard (tests/it/welcome.rs walks it); skipped here.
    b.wait_for_path("/welcome");
    assert!(b.text().contains("Welcome to lanmeter"), "{}", b.text());
    b.click("#skip-all");
    b.wait_for_path("/");
    assert!(b.text().contains("Top devices today"), "{}", b.text());
    let cookie_visible = b.js("return document.cookie");
    assert_eq!(cookie_visible, "", "session cookies are HttpOnly");

    // An inline script injected into the page does not run: the CSP blocks it and says so.
    b.js(r#"
        window.__violations = [];
        document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.effectiveDirective));
        const s = document.createElement('script');
        s.textContent = 'window.__pwned = 1';
        document.body.appendChild(s);
        const d = document.createElement('div');
        d.innerHTML = '<img src="/x.png" onerror="window.__pwned2 = 1">';
        document.body.appendChild(d);
        return 0"#);
    let directives = wait_until("CSP violation reports", || {
        let v = b.js("return window.__violations");
        (v.as_array().is_some_and(|a| a.len() >= 2)).then_some(v)
    });
    assert!(
        directives.to_string().contains("script-src"),
        "{directives}"
    );
    assert_eq!(
        b.js("return window.__pwned === undefined && window.__pwned2 === undefined"),
        true
    );

    // Log out, fail once, log in.
    b.click("#logout");
    b.wait_for_path("/login");
    b.go(&format!("{base}/"));
    wait_until("the login redirect", || {
        b.path().starts_with("/login?next=").then_some(())
    });
    b.type_into("#password", "not the password");
    b.click("#login button[type=submit]");
    wait_until("the wrong-password message", || {
        b.text().contains("Wrong password").then_some(())
    });
    b.type_into("#password", PASSWORD);
    b.click("#login button[type=submit]");
    b.wait_for_path("/");

    // The Security page lists what happened.
    b.go(&format!("{base}/audit"));
    b.wait_for_path("/audit");
    let audit = b.text();
    for action in ["setup", "logout", "login failed", "login"] {
        assert!(audit.contains(action), "audit lacks {action}: {audit}");
    }

    // Hostile input reflected into a page stays text: `next` goes into a hidden field.
    b.click("#logout");
    b.wait_for_path("/login");
    let hostile = "/\"><img src=x onerror=\"window.__pwned3=1\">";
    let q = format!(
        "{base}/login?next={}",
        hostile
            .replace('"', "%22")
            .replace('<', "%3C")
            .replace('>', "%3E")
            .replace(' ', "%20")
            .replace('=', "%3D")
    );
    b.go(&q);
    wait_until("the login page", || {
        b.path().starts_with("/login").then_some(())
    });
    assert_eq!(b.js("return document.querySelectorAll('img').length"), 0);
    assert_eq!(
        b.js("return document.querySelector('input[name=next]').value"),
        hostile
    );
    assert_eq!(b.js("return window.__pwned3 === undefined"), true);
}

/// How [`DemoServer::start`] runs `lanmeter demo`.
#[derive(Clone, Copy, Default)]
pub(crate) struct DemoOptions<'a> {
    /// Days of history (the fewer, the faster it starts).
    pub(crate) days: u32,
    /// `--config FILE`: the file the Settings page (and the wizard) edit.
    pub(crate) config: Option<&'a std::path::Path>,
    /// The admin password, set at start; `None` leaves first-run setup to the browser.
    pub(crate) admin_password: Option<&'a str>,
    /// Extra environment for the process.
    pub(crate) env: &'a [(&'a str, &'a str)],
}

/// `lanmeter demo` (the real binary) on a free loopback port with its database `demo.db` in
/// `dir`; killed when dropped. The browser tests of the dashboard, the settings and the wizard
/// all start it here.
pub(crate) struct DemoServer {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub(crate) base: String,
    /// The first-run setup link it printed (with its one-time code) when no admin password was
    /// given.
    pub(crate) setup_link: Option<String>,
    /// The process (a test may wait for it to exit).
    pub(crate) proc: KillOnDrop,
}

impl DemoServer {
    pub(crate) fn start(dir: &std::path::Path, o: DemoOptions<'_>) -> DemoServer {
        use std::io::BufRead;
        let port = free_port();
        let mut cmd = Command::new(crate::LANMETER);
        crate::hermetic(&mut cmd);
        if let Some(c) = o.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(["demo", "--days", &o.days.max(1).to_string(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db")
            .arg(dir.join("demo.db"));
        if let Some(pw) = o.admin_password {
            let file = dir.join("pw");
            std::fs::write(&file, format!("{pw}\n")).unwrap();
            cmd.arg("--admin-password-file").arg(file);
        }
        let mut child = cmd
            .env("TZ", "UTC")
            .envs(o.env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let proc = KillOnDrop(child);
        let mut lines = std::io::BufReader::new(out).lines();
        let mut setup_link = None;
        let base = loop {
            let line = lines
                .next()
                .expect("lanmeter demo ended before serving")
                .unwrap();
            if let Some(link) = line.strip_prefix("first-run setup: ") {
                setup_link = Some(link.trim().to_string());
            }
            if let Some(rest) = line.strip_prefix("dashboard: ") {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep reading stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        DemoServer {
            base: base.trim_end_matches('/').to_string(),
            setup_link,
            proc,
        }
    }
}
