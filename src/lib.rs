//! lanmeter: a household network usage monitor.
//!
//! The crate map, one line per module (arrows in STYLE.md: `main → app → everything`):
//! - [`model`]: plain domain types (MAC addresses, counters, timestamps).
//! - [`capture`]: packet sources (live libpcap, capture files) and the pure frame decoder.
//! - [`meter`]: the bounded per-MAC counter map the packet path writes into.
//! - [`store`]: the SQLite database (the only rusqlite user): migrations, devices, minute usage, export.
//! - [`flush`]: each flush interval's deltas into one store transaction, kept pending until written.
pub mod capture;
pub mod flush;
pub mod meter;
pub mod model;
pub mod store;
