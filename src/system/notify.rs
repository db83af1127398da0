//! The systemd notification protocol (`sd_notify`): READY, STATUS, WATCHDOG and STOPPING messages
//! sent as datagrams to the socket named by `NOTIFY_SOCKET`.
//!
//! It owns reading `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` and the timing of watchdog
//! pings; what makes the daemon healthy enough to ping is the caller's decision. It must never fail
//! the daemon: outside systemd (no `NOTIFY_SOCKET`) every call does nothing, and a send that fails
//! is logged once at debug level, since systemd will act on the missing message by itself.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::{Duration, Instant};

/// A handle on the service manager's notification socket, or a no-op outside systemd.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    /// Half the watchdog timeout systemd set, as sd_watchdog_enabled(3) advises: a ping every half
    /// period survives one late loop iteration.
    watchdog_every: Option<Duration>,
    next_ping: Instant,
}

impl Notifier {
    /// Reads the environment systemd sets for Type=notify units with WatchdogSec=.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let usec = std::env::var("WATCHDOG_USEC").ok();
        let pid = std::env::var("WATCHDOG_PID").ok();
        Notifier::new(
            socket.as_deref().and_then(|s| s.to_str()),
            usec.as_deref(),
            pid.as_deref(),
        )
    }

    fn new(
        socket: Option<&str>,
        watchdog_usec: Option<&str>,
        watchdog_pid: Option<&str>,
    ) -> Notifier {
        let target = socket.and_then(|path| {
            let addr = match path.strip_prefix('@') {
                // A leading '@' names a Linux abstract socket (systemd uses one in containers).
                Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
                None => SocketAddr::from_pathname(path),
            };
            let sock = UnixDatagram::unbound();
            match (addr, sock) {
                (Ok(a), Ok(s)) => Some((s, a)),
                (Err(err), _) | (_, Err(err)) => {
                    tracing::warn!(socket = path, error = %err, "cannot use NOTIFY_SOCKET; systemd will not hear that lanmeter is ready");
                    None
                }
            }
        });
        // WATCHDOG_PID, when set, names the process the watchdog is meant for; a child that
        // inherited the environment must not ping on its parent's behalf.
        let for_us = watchdog_pid
            .map(|p| p.parse::<u32>().ok() == Some(std::process::id()))
            .unwrap_or(true);
        let watchdog_every = watchdog_usec
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|&u| u > 0 && for_us && target.is_some())
            .map(|u| Duration::from_micros(u) / 2);
        Notifier {
            target,
            watchdog_every,
            next_ping: Instant::now(),
        }
    }

    /// Whether systemd is listening at all (the unit is Type=notify).
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// The interval at which [`Notifier::watchdog_due`] asks for a ping, when a watchdog is set.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_every
    }

    /// Tells systemd start-up is finished (the unit becomes "active"), with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// A status line for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Tells systemd a clean stop has begun, so the time until exit is not counted as a hang.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=flushing and stopping");
    }

    /// True when a watchdog is configured and the next ping is due at `now`.
    pub fn watchdog_due(&self, now: Instant) -> bool {
        self.watchdog_every.is_some() && now >= self.next_ping
    }

    /// Sends a keep-alive and schedules the next one. Call it only after checking health: a
    /// missing ping is how systemd learns the daemon is stuck and restarts it.
    pub fn watchdog(&mut self, now: Instant) {
        if let Some(every) = self.watchdog_every {
            self.next_ping = now + every;
            self.send("WATCHDOG=1");
        }
    }

    fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target
            && let Err(err) = sock.send_to_addr(msg.as_bytes(), addr)
        {
            tracing::debug!(error = %err, "sd_notify message not delivered");
        }
    }
}

/// A STATUS value ends at the first newline (the protocol is one assignment per line).
fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, std::path::PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (dir, path, sock)
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_ready_status_watchdog_and_stopping_to_the_socket() {
        let (_dir, path, sock) = listener();
        let mut n = Notifier::new(path.to_str(), Some("20000000"), None);
        assert!(n.is_active());
        assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(10)));
        n.ready("capturing on eth0\nignored");
        assert_eq!(recv(&sock), "READY=1\nSTATUS=capturing on eth0 ignored");
        let now = Instant::now();
        assert!(n.watchdog_due(now));
        n.watchdog(now);
        assert_eq!(recv(&sock), "WATCHDOG=1");
        assert!(!n.watchdog_due(now + Duration::from_secs(9)));
        assert!(n.watchdog_due(now + Duration::from_secs(10)));
        n.stopping();
        assert!(recv(&sock).starts_with("STOPPING=1\n"));
    }

    #[test]
    fn outside_systemd_nothing_is_due_and_nothing_fails() {
        let mut n = Notifier::new(None, Some("20000000"), None);
        assert!(!n.is_active());
        assert!(!n.watchdog_due(Instant::now()));
        n.ready("x");
        n.watchdog(Instant::now());
    }

    #[test]
    fn a_watchdog_meant_for_another_process_is_ignored() {
        let (_dir, path, _sock) = listener();
        let other = (std::process::id() + 1).to_string();
        let n = Notifier::new(path.to_str(), Some("20000000"), Some(&other));
        assert_eq!(n.watchdog_interval(), None);
        let ours = std::process::id().to_string();
        let n = Notifier::new(path.to_str(), Some("20000000"), Some(&ours));
        assert!(n.watchdog_interval().is_some());
    }
}
