//! lanmeter: a household network usage monitor.
//!
//! The crate map, one line per module (arrows in STYLE.md: `main → app → everything`):
//! - [`model`]: plain domain types (MAC addresses, counters, timestamps).
//! - [`capture`]: packet sources (live libpcap, capture files) and the pure frame decoder.
//! - [`demo`]: the synthetic household capture generator and its expected per-MAC totals.
//! - [`meter`]: the bounded per-MAC counter map the packet path writes into.
pub mod capture;
pub mod demo;
pub mod meter;
pub mod model;
