//! lanmeter: a household network usage monitor.
//!
//! The crate map, one line per module (arrows in STYLE.md: `main → app → everything`):
//! - [`model`]: plain domain types (MAC addresses, counters, timestamps).
//! - [`capture`]: packet sources (live libpcap, capture files) and the pure frame decoder.
//! - [`discovery`]: what the host knows about the LAN: default-route interface, gateway, prefixes.
//! - [`meter`]: the bounded per-MAC counter map the packet path writes into.
pub mod capture;
pub mod discovery;
pub mod meter;
pub mod model;
