//! The probes' sockets: ICMP echo over a raw socket (CAP_NET_RAW, which the unit grants for
//! capture) or, without it, an ICMP datagram socket (allowed by `net.ipv4.ping_group_range`);
//! DNS over UDP straight to the resolvers, so a local cache cannot hide an outage.

use super::Pings;
use super::wire::{self, DnsAnswer};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn, recvfrom, sendto, socket,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "cannot open an ICMP socket ({0}): run lanmeter with CAP_NET_RAW (the shipped unit grants it), or allow ICMP datagram sockets with `sysctl net.ipv4.ping_group_range=\"0 2147483647\"`, or set internet_probe_interval_secs = 0 to turn the probes off"
    )]
    Socket(nix::Error),
}

/// The ICMP socket, kept open for the whole run.
pub struct Pinger {
    sock: OwnedFd,
    /// A raw socket sees every ICMP message of the host, with the IP header in front.
    raw: bool,
    id: u16,
    token: [u8; 8],
    seq: u16,
}

impl Pinger {
    pub fn open() -> Result<Pinger, ProbeError> {
        let (sock, raw) = match socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::Icmp,
        ) {
            Ok(s) => (s, true),
            Err(raw_err) => match socket(
                AddressFamily::Inet,
                SockType::Datagram,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                SockProtocol::Icmp,
            ) {
                Ok(s) => (s, false),
                Err(_) => return Err(ProbeError::Socket(raw_err)),
            },
        };
        let mut token = [0u8; 8];
        // A fixed token would still work; a random one keeps two lanmeters apart.
        let _ = getrandom::fill(&mut token);
        Ok(Pinger {
            sock,
            raw,
            id: u16::from_be_bytes([token[0], token[1]]) ^ (std::process::id() as u16),
            token,
            seq: 0,
        })
    }

    /// Whether this is a raw socket (else an ICMP datagram one).
    pub fn is_raw(&self) -> bool {
        self.raw
    }

    /// Sends `count` echo requests to every address of every group at once and waits up to
    /// `timeout` for the replies. A request the kernel refuses to send (no route) counts as sent
    /// and lost: that is what the household sees.
    pub fn ping(&mut self, groups: &[Vec<Ipv4Addr>], count: u32, timeout: Duration) -> Vec<Pings> {
        let mut out = vec![Pings::default(); groups.len()];
        let mut waiting: HashMap<u16, (usize, Ipv4Addr, Instant)> = HashMap::new();
        for (g, addrs) in groups.iter().enumerate() {
            for &a in addrs {
                for _ in 0..count {
                    self.seq = self.seq.wrapping_add(1);
                    let packet = wire::echo_request(self.id, self.seq, self.token);
                    let dest = SockaddrIn::from(SocketAddrV4::new(a, 0));
                    out[g].sent += 1;
                    let at = Instant::now();
                    match sendto(self.sock.as_raw_fd(), &packet, &dest, MsgFlags::empty()) {
                        Ok(_) => {
                            waiting.insert(self.seq, (g, a, at));
                        }
                        Err(e) => tracing::debug!(target = %a, error = %e, "echo request not sent"),
                    }
                }
            }
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) => break,
                Ok(_) => {}
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "polling the ICMP socket failed");
                    break;
                }
            }
            // Drain everything queued.
            loop {
                let (n, from) = match recvfrom::<SockaddrIn>(self.sock.as_raw_fd(), &mut buf) {
                    Ok((n, Some(from))) => (n, from),
                    Ok((_, None)) => continue,
                    Err(_) => break,
                };
                let now = Instant::now();
                let Some((id, seq)) = wire::parse_echo_reply(&buf[..n], self.raw, self.token)
                else {
                    continue;
                };
                // A datagram socket's kernel rewrites the id to the socket's own: only raw
                // sockets need to tell our replies from other programs'.
                if self.raw && id != self.id {
                    continue;
                }
                if let Some(&(g, a, at)) = waiting.get(&seq)
                    && from.ip() == a
                {
                    waiting.remove(&seq);
                    let us = now.duration_since(at).as_micros();
                    out[g].rtts_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                }
            }
        }
        out
    }
}

/// Resolves `name` through each of `servers` at once; `Ok(microseconds)` from the first that
/// answers with an address, `Err(())` when none does within `timeout`. `None` when there is
/// no server or the name cannot be queried.
pub fn resolve(servers: &[IpAddr], name: &str, timeout: Duration) -> Option<Result<u32, ()>> {
    if servers.is_empty() {
        return None;
    }
    let mut idb = [0u8; 2];
    let _ = getrandom::fill(&mut idb);
    let id = u16::from_be_bytes(idb);
    let query = wire::dns_query(id, name)?;
    let start = Instant::now();
    let socks: Vec<UdpSocket> = servers
        .iter()
        .filter_map(|&s| {
            let local: SocketAddr = match s {
                IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let sock = UdpSocket::bind(local).ok()?;
            // connect: only this server's datagrams are delivered to this socket.
            sock.connect((s, 53)).ok()?;
            sock.set_nonblocking(true).ok()?;
            sock.send(&query).ok()?;
            Some(sock)
        })
        .collect();
    let deadline = start + timeout;
    let mut buf = [0u8; 1500];
    let mut failed = vec![false; socks.len()];
    while !failed.iter().all(|f| *f) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
        let mut fds: Vec<PollFd> = socks
            .iter()
            .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
            .collect();
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => break,
            Ok(_) => {}
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        }
        for (i, s) in socks.iter().enumerate() {
            // A refused port (ICMP unreachable) shows up as an error: that server failed.
            loop {
                match s.recv(&mut buf) {
                    Ok(n) => match wire::parse_dns_response(&buf[..n], id) {
                        Some(DnsAnswer::Resolved) => {
                            let us = start.elapsed().as_micros();
                            return Some(Ok(u32::try_from(us).unwrap_or(u32::MAX)));
                        }
                        Some(DnsAnswer::Failed { .. }) => failed[i] = true,
                        None => {}
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        failed[i] = true;
                        break;
                    }
                }
            }
        }
    }
    Some(Err(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_ask_is_not_a_failure() {
        assert_eq!(
            resolve(&[], "example.test", Duration::from_millis(10)),
            None
        );
        assert_eq!(
            resolve(
                &["192.0.2.1".parse().unwrap()],
                "a..b",
                Duration::from_millis(10)
            ),
            None
        );
    }
}
