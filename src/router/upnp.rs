//! UPnP IGD: SSDP discovery, the device description, and the `WANCommonInterfaceConfig`
//! SOAP actions that read the WAN counters: the standard `GetTotalBytesSent/Received` and
//! `GetTotalPacketsSent/Received` (`ui4`), and AVM's `GetAddonInfos` on a FRITZ!Box, which
//! adds 64-bit byte counters (`NewX_AVM_DE_TotalBytesSent64`/`Received64`) that start again
//! at each new internet connection.

use super::RouterError;
use super::counter::{Reading, Width};
use super::xml;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

const SSDP_ADDR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
/// Search targets, the IGD first; some routers answer only one of them.
const SEARCH_TARGETS: [&str; 3] = [
    "urn:schemas-upnp-org:device:InternetGatewayDevice:1",
    "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
    "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
];
const COMMON: &str = "WANCommonInterfaceConfig:";
/// What the HTTP side may take at most (a description, a SOAP answer).
const TIMEOUT: Duration = Duration::from_secs(3);

/// A router's counter service, found from its description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Igd {
    /// The description's address (from SSDP's LOCATION, or the FRITZ!Box's fixed one).
    pub location: String,
    /// The absolute control URL of `WANCommonInterfaceConfig`.
    pub control_url: String,
    /// Its exact service type (the SOAP namespace and action header use it).
    pub service_type: String,
    /// The router's friendly name, for the status line.
    pub name: String,
}

/// The M-SEARCH request for `st`.
fn msearch(st: &str) -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: {st}\r\nUSER-AGENT: lanmeter/{} UPnP/1.1\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The LOCATION header of an SSDP answer (header names are case-insensitive).
pub fn ssdp_location(answer: &str) -> Option<String> {
    let mut lines = answer.lines();
    if !lines.next()?.starts_with("HTTP/1.1 200") {
        return None;
    }
    lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("location")
            .then(|| v.trim().to_string())
    })
}

/// Sends M-SEARCH for the IGD and collects the distinct LOCATIONs answered within `wait`.
pub fn search(wait: Duration) -> Result<Vec<String>, RouterError> {
    let io = |e: std::io::Error| RouterError::Ssdp(e.to_string());
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(io)?;
    sock.set_multicast_ttl_v4(2).map_err(io)?;
    for st in SEARCH_TARGETS {
        sock.send_to(msearch(st).as_bytes(), SSDP_ADDR)
            .map_err(io)?;
    }
    let deadline = Instant::now() + wait;
    let mut found = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left)).map_err(io)?;
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => {
                if let Some(loc) = ssdp_location(&String::from_utf8_lossy(&buf[..n]))
                    && !found.contains(&loc)
                {
                    found.push(loc);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => return Err(io(e)),
        }
    }
    Ok(found)
}

/// `scheme://host:port` of an absolute URL.
fn origin(url: &str) -> Option<&str> {
    let scheme_end = url.find("://")? + 3;
    let end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    Some(&url[..end])
}

/// `reference` made absolute against `base` (descriptions give paths, rarely full URLs).
fn resolve(base: &str, reference: &str) -> Option<String> {
    if reference.contains("://") {
        return Some(reference.to_string());
    }
    let o = origin(base)?;
    if reference.starts_with('/') {
        Some(format!("{o}{reference}"))
    } else {
        let dir = base
            .rfind('/')
            .filter(|&i| i >= o.len())
            .map_or(o, |i| &base[..i]);
        Some(format!("{}/{reference}", dir.trim_end_matches('/')))
    }
}

/// Finds `WANCommonInterfaceConfig` in a device description fetched from `location`.
pub fn parse_description(xml_text: &str, location: &str) -> Result<Igd, RouterError> {
    let base = xml::text(xml_text, "URLBase")
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| location.to_string());
    let service = xml::elements(xml_text, "service")
        .into_iter()
        .find(|s| xml::text(s, "serviceType").is_some_and(|t| t.contains(COMMON)))
        .ok_or_else(|| RouterError::NoCounters(location.to_string()))?;
    let service_type = xml::text(service, "serviceType").unwrap_or_default();
    let control = xml::text(service, "controlURL")
        .ok_or_else(|| RouterError::NoCounters(location.to_string()))?;
    let control_url =
        resolve(&base, &control).ok_or_else(|| RouterError::BadUrl(control.clone()))?;
    Ok(Igd {
        location: location.to_string(),
        control_url,
        service_type,
        name: xml::text(xml_text, "friendlyName").unwrap_or_default(),
    })
}

/// The SOAP envelope calling `action` (no arguments) of `service_type`.
pub fn soap_request(service_type: &str, action: &str) -> String {
    let st = xml::escape(service_type);
    format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:{action} xmlns:u=\"{st}\"></u:{action}></s:Body></s:Envelope>\r\n"
    )
}

/// The UPnP error in a SOAP fault, if the answer is one.
fn fault(answer: &str) -> Option<String> {
    xml::text(answer, "Fault")?;
    let code = xml::text(answer, "errorCode").unwrap_or_default();
    let desc = xml::text(answer, "errorDescription")
        .or_else(|| xml::text(answer, "faultstring"))
        .unwrap_or_default();
    Some(format!("{code} {desc}").trim().to_string())
}

/// The unsigned number in `field` of a SOAP answer.
pub fn parse_value(answer: &str, field: &str) -> Result<u64, RouterError> {
    if let Some(f) = fault(answer) {
        return Err(RouterError::Fault(f));
    }
    let t = xml::text(answer, field).ok_or_else(|| RouterError::Missing(field.to_string()))?;
    t.parse().map_err(|_| RouterError::NotANumber {
        field: field.to_string(),
        value: t.chars().take(40).collect(),
    })
}

/// AVM's `GetAddonInfos` answer: the 64-bit byte counters (falling back to the `ui4` ones on
/// firmware without them). It has rates but no packet totals.
pub fn parse_addon_infos(answer: &str) -> Result<Reading, RouterError> {
    let wide = (
        parse_value(answer, "NewX_AVM_DE_TotalBytesSent64"),
        parse_value(answer, "NewX_AVM_DE_TotalBytesReceived64"),
    );
    let (bytes_up, bytes_down, width) = match wide {
        (Ok(up), Ok(down)) => (up, down, Width::Bits64),
        (Err(e @ RouterError::Fault(_)), _) => return Err(e),
        _ => (
            parse_value(answer, "NewTotalBytesSent")?,
            parse_value(answer, "NewTotalBytesReceived")?,
            Width::Bits32,
        ),
    };
    Ok(Reading {
        bytes_up,
        bytes_down,
        packets_up: None,
        packets_down: None,
        width,
    })
}

/// An HTTP client for the router, short timeouts, answers read whatever their status (a SOAP
/// fault comes with HTTP 500).
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into()
}

fn http_err(url: &str, e: ureq::Error) -> RouterError {
    RouterError::Http {
        url: url.to_string(),
        error: e.to_string(),
    }
}

/// Fetches and parses the description at `location`.
pub fn describe(agent: &ureq::Agent, location: &str) -> Result<Igd, RouterError> {
    let mut resp = agent
        .get(location)
        .call()
        .map_err(|e| http_err(location, e))?;
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| http_err(location, e))?;
    parse_description(&body, location)
}

impl Igd {
    /// Calls `action` and returns the answer's body.
    fn call(&self, agent: &ureq::Agent, action: &str) -> Result<String, RouterError> {
        let url = &self.control_url;
        let mut resp = agent
            .post(url)
            .header("Content-Type", "text/xml; charset=\"utf-8\"")
            .header("SOAPAction", &format!("\"{}#{action}\"", self.service_type))
            .send(soap_request(&self.service_type, action))
            .map_err(|e| http_err(url, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| http_err(url, e))?;
        if status != 200 && fault(&body).is_none() {
            return Err(RouterError::Status {
                url: url.clone(),
                status,
            });
        }
        Ok(body)
    }

    /// AVM's 64-bit counters, if this router has them.
    pub fn read_addon(&self, agent: &ureq::Agent) -> Result<Reading, RouterError> {
        parse_addon_infos(&self.call(agent, "GetAddonInfos")?)
    }

    /// The four standard counters.
    pub fn read_standard(&self, agent: &ureq::Agent) -> Result<Reading, RouterError> {
        let get = |action: &str, field: &str| parse_value(&self.call(agent, action)?, field);
        let bytes_up = get("GetTotalBytesSent", "NewTotalBytesSent")?;
        let bytes_down = get("GetTotalBytesReceived", "NewTotalBytesReceived")?;
        // Packet counters are optional in practice: a router without them still counts bytes.
        let packets_up = get("GetTotalPacketsSent", "NewTotalPacketsSent").ok();
        let packets_down = get("GetTotalPacketsReceived", "NewTotalPacketsReceived").ok();
        Ok(Reading {
            bytes_up,
            bytes_down,
            packets_up,
            packets_down,
            width: Width::Bits32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The description Debian's miniupnpd 2.3.1 serves (trimmed to the WAN device).
    const MINIUPNPD_DESC: &str = r#"<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0" configId="1337"><specVersion><major>1</major><minor>1</minor></specVersion><device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:2</deviceType><friendlyName>Debian router</friendlyName><serviceList><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId><SCPDURL>/L3F.xml</SCPDURL><controlURL>/ctl/L3F</controlURL><eventSubURL>/evt/L3F</eventSubURL></service></serviceList><deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:2</deviceType><friendlyName>WANDevice</friendlyName><serviceList><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId><SCPDURL>/WANCfg.xml</SCPDURL><controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL></service></serviceList></device></deviceList></device></root>"#;

    #[test]
    fn ssdp_answer_gives_its_location() {
        let a = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nlocation: http://192.168.77.1:5555/rootDesc.xml\r\n\r\n";
        assert_eq!(
            ssdp_location(a).as_deref(),
            Some("http://192.168.77.1:5555/rootDesc.xml")
        );
        assert_eq!(ssdp_location("NOTIFY * HTTP/1.1\r\nLOCATION: x\r\n"), None);
    }

    #[test]
    fn description_gives_the_absolute_control_url() {
        let igd =
            parse_description(MINIUPNPD_DESC, "http://192.168.77.1:5555/rootDesc.xml").unwrap();
        assert_eq!(igd.control_url, "http://192.168.77.1:5555/ctl/CmnIfCfg");
        assert_eq!(
            igd.service_type,
            "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
        );
        assert_eq!(igd.name, "Debian router");
        // A relative path and a URLBase, as older IGDs write them.
        let old = "<root><URLBase>http://10.0.0.1:49000/</URLBase><service><serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType><controlURL>upnp/control/WANCommonIFC1</controlURL></service></root>";
        let igd = parse_description(old, "http://10.0.0.1:49000/igddesc.xml").unwrap();
        assert_eq!(
            igd.control_url,
            "http://10.0.0.1:49000/upnp/control/WANCommonIFC1"
        );
        assert!(matches!(
            parse_description(
                "<root><service><serviceType>x</serviceType></service></root>",
                "http://a/"
            ),
            Err(RouterError::NoCounters(_))
        ));
    }

    #[test]
    fn soap_answers_and_faults() {
        // Exactly what Debian's miniupnpd answered after 4.5 GB crossed its WAN veth: a ui4
        // field holding a 64-bit value (it is not built with UPNP_STRICT).
        let ok = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetTotalBytesSentResponse xmlns:u="urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"><NewTotalBytesSent>4552940042</NewTotalBytesSent></u:GetTotalBytesSentResponse></s:Body></s:Envelope>"#;
        assert_eq!(parse_value(ok, "NewTotalBytesSent").unwrap(), 4_552_940_042);
        let f = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>401</errorCode><errorDescription>Invalid Action</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>"#;
        assert!(
            matches!(parse_value(f, "NewTotalBytesSent"), Err(RouterError::Fault(m)) if m == "401 Invalid Action")
        );
        assert!(matches!(
            parse_value(
                "<a><NewTotalBytesSent>-1</NewTotalBytesSent></a>",
                "NewTotalBytesSent"
            ),
            Err(RouterError::NotANumber { .. })
        ));
        let req = soap_request(
            "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1",
            "GetTotalBytesSent",
        );
        assert!(req.contains("<u:GetTotalBytesSent xmlns:u=\"urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1\">"));
    }

    /// TR-064 / AVM IGD extension, unit level only (no FRITZ!Box is available to test against):
    /// an answer with the output arguments AVM documents for `GetAddonInfos` of
    /// `WANCommonInterfaceConfig` (service `WANCommonIFC1`, control URL
    /// `/igdupnp/control/WANCommonIFC1`), values made up.
    const AVM_ADDON_INFOS: &str = r#"<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">
<s:Body>
<u:GetAddonInfosResponse xmlns:u="urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1">
<NewByteSendRate>2387</NewByteSendRate>
<NewByteReceiveRate>148211</NewByteReceiveRate>
<NewPacketSendRate>31</NewPacketSendRate>
<NewPacketReceiveRate>104</NewPacketReceiveRate>
<NewTotalBytesSent>532917059</NewTotalBytesSent>
<NewTotalBytesReceived>154883716</NewTotalBytesReceived>
<NewAutoDisconnectTime>0</NewAutoDisconnectTime>
<NewIdleDisconnectTime>1</NewIdleDisconnectTime>
<NewDNSServer1>192.0.2.53</NewDNSServer1>
<NewDNSServer2>192.0.2.54</NewDNSServer2>
<NewVoipDNSServer1>192.0.2.53</NewVoipDNSServer1>
<NewVoipDNSServer2>192.0.2.54</NewVoipDNSServer2>
<NewUpnpControlEnabled>0</NewUpnpControlEnabled>
<NewRoutedBridgedModeBoth>1</NewRoutedBridgedModeBoth>
<NewX_AVM_DE_TotalBytesSent64>22007753539</NewX_AVM_DE_TotalBytesSent64>
<NewX_AVM_DE_TotalBytesReceived64>210608281220</NewX_AVM_DE_TotalBytesReceived64>
<NewX_AVM_DE_WANAccessType>DSL</NewX_AVM_DE_WANAccessType>
</u:GetAddonInfosResponse>
</s:Body>
</s:Envelope>"#;

    #[test]
    fn tr064_addon_infos_give_64_bit_counters_that_reset_with_the_connection() {
        use super::super::counter::{Event, Tracker};
        let r = parse_addon_infos(AVM_ADDON_INFOS).unwrap();
        // The 64-bit fields win over the wrapped ui4 ones (22007753539 mod 2^32 = 532917059).
        assert_eq!(
            (r.bytes_up, r.bytes_down),
            (22_007_753_539, 210_608_281_220)
        );
        assert_eq!(r.bytes_up % (1 << 32), 532_917_059);
        assert_eq!(r.width, Width::Bits64);
        // The next connection starts from zero: the tracker counts it as a reset, not a wrap.
        let mut t = Tracker::new();
        t.update(r, 0.0);
        let after = AVM_ADDON_INFOS
            .replace("22007753539", "1048576")
            .replace("210608281220", "7340032");
        let s = t.update(parse_addon_infos(&after).unwrap(), 10.0);
        assert_eq!((s.bytes_up, s.up), (1_048_576, Some(Event::Reset)));
        assert_eq!((s.bytes_down, s.down), (7_340_032, Some(Event::Reset)));
        // Older firmware without the 64-bit fields: the ui4 ones, as a 32-bit counter.
        let old = AVM_ADDON_INFOS
            .lines()
            .filter(|l| !l.contains("64>"))
            .collect::<Vec<_>>()
            .join("\n");
        let r = parse_addon_infos(&old).unwrap();
        assert_eq!((r.bytes_up, r.width), (532_917_059, Width::Bits32));
    }
}
