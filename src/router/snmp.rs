//! SNMP v2c, just what reading a router's WAN counters needs: GET and GETNEXT of IF-MIB
//! objects over UDP, encoded and decoded in BER here (the PDUs are four fixed shapes; a full
//! SNMP crate would be a large dependency for them).
//!
//! Read: `ifHCOutOctets`/`ifHCInOctets` (64-bit, IF-MIB's ifXTable) and the unicast packet
//! counters of the interface whose `ifDescr` or `ifName` is the configured WAN name.

use super::RouterError;
use super::counter::{Reading, Width};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

pub const IF_DESCR: &[u32] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 2];
pub const IF_NAME: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 1];
pub const IF_HC_IN_OCTETS: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6];
pub const IF_HC_IN_UCAST: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 7];
pub const IF_HC_OUT_OCTETS: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10];
pub const IF_HC_OUT_UCAST: &[u32] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 11];

const GET: u8 = 0xA0;
const GET_NEXT: u8 = 0xA1;
const RESPONSE: u8 = 0xA2;

/// A value in a response's variable binding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    /// Counter32, Gauge32, TimeTicks, Counter64.
    Unsigned(u64),
    Bytes(Vec<u8>),
    Oid(Vec<u32>),
    Null,
    /// noSuchObject, noSuchInstance, endOfMibView.
    Missing,
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(body);
    out
}

fn int(v: i64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    // Shortest two's complement form.
    let mut start = 0;
    while start < 7
        && ((bytes[start] == 0 && bytes[start + 1] & 0x80 == 0)
            || (bytes[start] == 0xff && bytes[start + 1] & 0x80 != 0))
    {
        start += 1;
    }
    tlv(0x02, &bytes[start..])
}

fn oid(o: &[u32]) -> Vec<u8> {
    let mut body = vec![(o[0] * 40 + o[1]) as u8];
    for &arc in &o[2..] {
        let mut chunk = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            chunk.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        chunk.reverse();
        body.extend(chunk);
    }
    tlv(0x06, &body)
}

/// A v2c request of `kind` (GET or GETNEXT) for `oids`.
pub fn encode_request(kind: u8, community: &str, request_id: i32, oids: &[&[u32]]) -> Vec<u8> {
    let binds: Vec<u8> = oids
        .iter()
        .flat_map(|o| tlv(0x30, &[oid(o), vec![0x05, 0x00]].concat()))
        .collect();
    let pdu = tlv(
        kind,
        &[
            int(i64::from(request_id)),
            int(0),
            int(0),
            tlv(0x30, &binds),
        ]
        .concat(),
    );
    tlv(
        0x30,
        &[int(1), tlv(0x04, community.as_bytes()), pdu].concat(),
    )
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Result<(u8, &'a [u8]), RouterError> {
        let bad = || RouterError::Snmp("a malformed answer".into());
        let (&tag, rest) = self.buf.split_first().ok_or_else(bad)?;
        let (&first, mut rest) = rest.split_first().ok_or_else(bad)?;
        let len = if first & 0x80 == 0 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return Err(bad());
            }
            let l = rest[..n]
                .iter()
                .fold(0usize, |a, &b| (a << 8) | usize::from(b));
            rest = &rest[n..];
            l
        };
        if rest.len() < len {
            return Err(bad());
        }
        let (body, after) = rest.split_at(len);
        self.buf = after;
        Ok((tag, body))
    }
}

fn decode_unsigned(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x))
}

fn decode_int(b: &[u8]) -> i64 {
    let neg = b.first().is_some_and(|&x| x & 0x80 != 0);
    b.iter()
        .fold(if neg { -1i64 } else { 0 }, |a, &x| (a << 8) | i64::from(x))
}

fn decode_oid(b: &[u8]) -> Vec<u32> {
    let Some((&first, rest)) = b.split_first() else {
        return Vec::new();
    };
    let mut out = vec![u32::from(first / 40), u32::from(first % 40)];
    let mut acc = 0u32;
    for &x in rest {
        acc = (acc << 7) | u32::from(x & 0x7f);
        if x & 0x80 == 0 {
            out.push(acc);
            acc = 0;
        }
    }
    out
}

/// A response's (oid, value) bindings.
pub type Bindings = Vec<(Vec<u32>, Value)>;

/// A response's request id and bindings; an error status becomes an error.
pub fn decode_response(buf: &[u8]) -> Result<(i32, Bindings), RouterError> {
    let bad = |what: &str| RouterError::Snmp(format!("a malformed answer ({what})"));
    let (tag, msg) = Cursor { buf }.next()?;
    if tag != 0x30 {
        return Err(bad("not a sequence"));
    }
    let mut m = Cursor { buf: msg };
    let _version = m.next()?;
    let _community = m.next()?;
    let (tag, pdu) = m.next()?;
    if tag != RESPONSE {
        return Err(bad("not a response"));
    }
    let mut p = Cursor { buf: pdu };
    let id = decode_int(p.next()?.1) as i32;
    let status = decode_int(p.next()?.1);
    let index = decode_int(p.next()?.1);
    if status != 0 {
        return Err(RouterError::Snmp(format!(
            "the agent answered error status {status} at binding {index}"
        )));
    }
    let (_, binds) = p.next()?;
    let mut b = Cursor { buf: binds };
    let mut out = Vec::new();
    while !b.buf.is_empty() {
        let (_, bind) = b.next()?;
        let mut v = Cursor { buf: bind };
        let (_, o) = v.next()?;
        let (tag, body) = v.next()?;
        let value = match tag {
            0x02 => Value::Int(decode_int(body)),
            0x04 => Value::Bytes(body.to_vec()),
            0x06 => Value::Oid(decode_oid(body)),
            0x05 => Value::Null,
            0x41..=0x43 | 0x46 => Value::Unsigned(decode_unsigned(body)),
            _ => Value::Missing,
        };
        out.push((decode_oid(o), value));
    }
    Ok((id, out))
}

/// An agent at `addr` read with `community`.
pub struct Agent {
    addr: SocketAddr,
    community: String,
    sock: UdpSocket,
    next_id: i32,
}

impl Agent {
    pub fn new(addr: SocketAddr, community: &str) -> Result<Agent, RouterError> {
        let io = |e: std::io::Error| RouterError::Snmp(e.to_string());
        let local: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let sock = UdpSocket::bind(local).map_err(io)?;
        sock.set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(io)?;
        Ok(Agent {
            addr,
            community: community.to_string(),
            sock,
            next_id: (std::process::id() as i32) & 0x7fff_0000,
        })
    }

    /// One request, retried twice (UDP), answered by the matching response.
    fn request(
        &mut self,
        kind: u8,
        oids: &[&[u32]],
    ) -> Result<Vec<(Vec<u32>, Value)>, RouterError> {
        self.next_id = self.next_id.wrapping_add(1) & 0x7fff_ffff;
        let id = self.next_id;
        let req = encode_request(kind, &self.community, id, oids);
        let mut buf = [0u8; 4096];
        for _ in 0..3 {
            self.sock
                .send_to(&req, self.addr)
                .map_err(|e| RouterError::Snmp(e.to_string()))?;
            loop {
                match self.sock.recv_from(&mut buf) {
                    Ok((n, from)) if from == self.addr => {
                        let (got, binds) = decode_response(&buf[..n])?;
                        if got == id {
                            return Ok(binds);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        Err(RouterError::SnmpTimeout(self.addr.to_string()))
    }

    /// The values of `oids` (GET).
    pub fn get(&mut self, oids: &[&[u32]]) -> Result<Vec<Value>, RouterError> {
        Ok(self
            .request(GET, oids)?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every (last arc, value) under `column` (a GETNEXT walk), at most 1000 rows.
    pub fn walk(&mut self, column: &[u32]) -> Result<Vec<(u32, Value)>, RouterError> {
        let mut out = Vec::new();
        let mut at = column.to_vec();
        for _ in 0..1000 {
            let binds = self.request(GET_NEXT, &[&at])?;
            let Some((o, v)) = binds.into_iter().next() else {
                break;
            };
            if !o.starts_with(column) || o.len() != column.len() + 1 || v == Value::Missing {
                break;
            }
            out.push((o[column.len()], v));
            at = o;
        }
        Ok(out)
    }

    /// The ifIndex of the interface named `name` (ifDescr, else ifName).
    pub fn if_index(&mut self, name: &str) -> Result<u32, RouterError> {
        for column in [IF_DESCR, IF_NAME] {
            let rows = self.walk(column)?;
            if let Some((i, _)) = rows
                .iter()
                .find(|(_, v)| matches!(v, Value::Bytes(b) if b == name.as_bytes()))
            {
                return Ok(*i);
            }
        }
        Err(RouterError::NoInterface(name.to_string()))
    }

    /// The WAN counters of interface `index`.
    pub fn read(&mut self, index: u32) -> Result<Reading, RouterError> {
        let o = |col: &[u32]| [col, &[index]].concat();
        let (out, inn, pout, pin) = (
            o(IF_HC_OUT_OCTETS),
            o(IF_HC_IN_OCTETS),
            o(IF_HC_OUT_UCAST),
            o(IF_HC_IN_UCAST),
        );
        let v = self.get(&[&out, &inn, &pout, &pin])?;
        let num = |i: usize| match v.get(i) {
            Some(Value::Unsigned(n)) => Some(*n),
            _ => None,
        };
        let (Some(bytes_up), Some(bytes_down)) = (num(0), num(1)) else {
            return Err(RouterError::Snmp(format!(
                "the agent has no ifHCOutOctets/ifHCInOctets for ifIndex {index}: it needs IF-MIB's ifXTable (SNMP v2c)"
            )));
        };
        Ok(Reading {
            bytes_up,
            bytes_down,
            packets_up: num(2),
            packets_down: num(3),
            width: Width::Bits64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_request_encodes_as_net_snmp_sends_it() {
        // `snmpget -v2c -c public HOST 1.3.6.1.2.1.31.1.1.1.10.3` with request id 0x1234 sends
        // these bytes (hand-assembled from RFC 3416's PDU layout and X.690's BER rules).
        let got = encode_request(
            GET,
            "public",
            0x1234,
            &[&[1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 10, 3]],
        );
        let want: Vec<u8> = vec![
            0x30, 0x2a, 0x02, 0x01, 0x01, 0x04, 0x06, b'p', b'u', b'b', b'l', b'i', b'c', 0xa0,
            0x1d, 0x02, 0x02, 0x12, 0x34, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x11, 0x30,
            0x0f, 0x06, 0x0b, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x1f, 0x01, 0x01, 0x01, 0x0a, 0x03,
            0x05, 0x00,
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn response_with_counter64_and_large_arcs_decodes() {
        let o = [1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 300];
        let value = tlv(0x46, &[0x01, 0x0f, 0x00, 0x00, 0x00, 0x2a]); // 2^32 * 0x10f00 + 42
        let bind = tlv(0x30, &[oid(&o), value].concat());
        let pdu = tlv(
            RESPONSE,
            &[int(77), int(0), int(0), tlv(0x30, &bind)].concat(),
        );
        let msg = tlv(0x30, &[int(1), tlv(0x04, b"public"), pdu].concat());
        let (id, binds) = decode_response(&msg).unwrap();
        assert_eq!(id, 77);
        assert_eq!(binds[0].0, o);
        assert_eq!(binds[0].1, Value::Unsigned(0x010f_0000_002a));
        assert_eq!(decode_int(&int(-129)[2..]), -129);
        assert_eq!(decode_int(&int(128)[2..]), 128);
        assert!(decode_response(&msg[..msg.len() - 1]).is_err());
    }
}
