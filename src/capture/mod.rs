//! Packet sources and the pure frame decoder.
pub mod decode;
