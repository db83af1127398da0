//! The router's own WAN counters (issue 24): where they are read from (UPnP IGD found by SSDP,
//! a FRITZ!Box's 64-bit `GetAddonInfos`, SNMP IF-MIB), how successive readings become bytes
//! ([`counter`]: wraps, resets, stuck counters), and the coverage figure: the share of the
//! router's internet bytes lanmeter saw itself ([`coverage`]). The poller that stores the bytes
//! per minute is `run::router`; this module decides nothing about when.

pub mod counter;
pub mod coverage;
pub mod snmp;
pub mod upnp;
pub mod xml;

use crate::config::{Config, RouterSource};
use counter::Reading;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(
        "SSDP search failed: {0}: check that the capture interface has an IPv4 address and a default route"
    )]
    Ssdp(String),
    #[error(
        "no UPnP IGD answered on the LAN: switch on UPnP on the router (docs/INSTALL.md), or set router_source = \"snmp\" with router_snmp_host, or \"off\""
    )]
    NoIgd,
    #[error(
        "the router's description at {0} has no WANCommonInterfaceConfig service, so it offers no traffic counters over UPnP"
    )]
    NoCounters(String),
    #[error("the router gave an unusable address {0}")]
    BadUrl(String),
    #[error(
        "asking the router at {url} failed: {error}: check that it is reachable and UPnP is on"
    )]
    Http { url: String, error: String },
    #[error("the router at {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("the router refused the request: {0}")]
    Fault(String),
    #[error("the router's answer lacks {0}")]
    Missing(String),
    #[error("the router's {field} is not a counter: {value:?}")]
    NotANumber { field: String, value: String },
    #[error("SNMP: {0}")]
    Snmp(String),
    #[error(
        "the SNMP agent at {0} did not answer: check router_snmp_host, router_snmp_community and that the router's agent listens on the LAN"
    )]
    SnmpTimeout(String),
    #[error(
        "the router's SNMP agent lists no interface named {0:?}: set router_snmp_interface to its WAN interface's ifDescr or ifName"
    )]
    NoInterface(String),
    #[error("no gateway address is known for the FRITZ!Box (TR-064): check the default route")]
    NoGateway,
    #[error("router_snmp_host {0:?} does not resolve to an address")]
    BadHost(String),
}

/// How the router is read, once found.
pub enum Connection {
    Igd {
        igd: upnp::Igd,
        agent: ureq::Agent,
        /// AVM's `GetAddonInfos` answered (64-bit counters).
        addon: bool,
    },
    Snmp {
        agent: snmp::Agent,
        index: u32,
        host: String,
    },
}

impl Connection {
    /// "upnp", "tr064" or "snmp", for the status and the metrics' label.
    pub fn kind(&self) -> &'static str {
        match self {
            Connection::Igd { addon: true, .. } => "tr064",
            Connection::Igd { .. } => "upnp",
            Connection::Snmp { .. } => "snmp",
        }
    }

    /// Which router: the description's address or the SNMP agent and interface.
    pub fn identity(&self) -> String {
        match self {
            Connection::Igd { igd, .. } => igd.location.clone(),
            Connection::Snmp { host, index, .. } => format!("snmp://{host}/ifIndex.{index}"),
        }
    }

    /// One reading of the counters.
    pub fn read(&mut self) -> Result<Reading, RouterError> {
        match self {
            Connection::Igd {
                igd, agent, addon, ..
            } => {
                if *addon {
                    igd.read_addon(agent)
                } else {
                    igd.read_standard(agent)
                }
            }
            Connection::Snmp { agent, index, .. } => agent.read(*index),
        }
    }
}

/// An IGD from its description, with AVM's 64-bit counters when `GetAddonInfos` answers.
fn igd_at(location: &str) -> Result<Connection, RouterError> {
    let agent = upnp::agent();
    let igd = upnp::describe(&agent, location)?;
    let addon = igd.read_addon(&agent).is_ok();
    Ok(Connection::Igd { igd, agent, addon })
}

/// Finds the router the configuration asks for. SSDP waits about two seconds for answers.
pub fn connect(cfg: &Config) -> Result<Connection, RouterError> {
    let snmp = || -> Result<Connection, RouterError> {
        let host = cfg.router_snmp_host.clone().unwrap_or_default();
        let with_port = if host.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{host}]:161")
        } else if host.contains(':') {
            host.clone()
        } else {
            format!("{host}:161")
        };
        let addr: SocketAddr = with_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| RouterError::BadHost(host.clone()))?;
        let community = cfg
            .router_snmp_community
            .as_ref()
            .map_or("public", |c| c.expose());
        let mut agent = snmp::Agent::new(addr, community)?;
        let index = agent.if_index(&cfg.router_snmp_interface)?;
        Ok(Connection::Snmp { agent, index, host })
    };
    let ssdp = || -> Result<Connection, RouterError> {
        let mut last = RouterError::NoIgd;
        for location in upnp::search(Duration::from_secs(2))? {
            match igd_at(&location) {
                Ok(c) => return Ok(c),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    match cfg.router_source {
        RouterSource::Off => Err(RouterError::NoIgd),
        RouterSource::Snmp => snmp(),
        RouterSource::Upnp => ssdp(),
        RouterSource::Tr064 => {
            let gw = crate::discovery::default_route_interface()
                .and_then(|i| crate::discovery::detect_gateway(&i))
                .and_then(|g| g.ipv4)
                .ok_or(RouterError::NoGateway)?;
            igd_at(&format!("http://{gw}:49000/igddesc.xml"))
        }
        RouterSource::Auto if cfg.router_snmp_host.is_some() => snmp(),
        RouterSource::Auto => ssdp(),
    }
}

/// What the poller last knew, stored beside the counters for the API, `/metrics`, the System
/// page and the health alert.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RouterStatus {
    /// "searching", "ok", "stuck", "unreachable" or "off".
    pub state: String,
    /// "upnp", "tr064" or "snmp" once found.
    pub source: Option<String>,
    /// The description URL or SNMP agent read.
    pub router: Option<String>,
    /// What went wrong or is odd, for a household.
    pub message: Option<String>,
    /// When the last reading succeeded (UTC seconds).
    pub last_read_at: Option<i64>,
    /// The router's raw cumulative counters at the last reading (up = sent to the internet).
    pub raw_bytes_up: Option<u64>,
    pub raw_bytes_down: Option<u64>,
    pub raw_packets_up: Option<u64>,
    pub raw_packets_down: Option<u64>,
    /// The raw reading the counting started from (the first after lanmeter found the router).
    pub baseline_bytes_up: Option<u64>,
    pub baseline_bytes_down: Option<u64>,
    /// Bytes counted since that baseline (what was stored).
    pub counted_bytes_up: u64,
    pub counted_bytes_down: u64,
    pub wraps: u64,
    pub resets: u64,
    /// Polls in which a byte counter was stuck.
    pub stuck_polls: u64,
}
