//! Writes a synthetic household capture and its expected totals, and reports the write speed.
//!
//! `cargo run --release --example gen_household -- OUT.pcap [FRAMES] [DEVICES] [SEED]` writes
//! OUT.pcap and OUT.pcap.expected.json (the ACCOUNTING.md §4 replay shape), then prints frames/s.

use lanmeter::demo::{GenOptions, write_household_pcap, write_mac_flood_pcap};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: gen_household OUT.pcap [FRAMES] [DEVICES] [SEED]")?,
    );
    let frames: u64 = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000_000);
    let devices: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(25);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let opts = GenOptions {
        seed,
        frames,
        devices,
        ..GenOptions::default()
    };
    let t = Instant::now();
    let expected = write_household_pcap(&out, &opts)?;
    let secs = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&out)?.len();
    println!(
        "household: {frames} frames, {} MACs, {:.1} MB in {secs:.2} s = {:.2} M frames/s",
        expected.devices.len(),
        size as f64 / 1e6,
        frames as f64 / secs / 1e6
    );
    let json = out.with_extension("pcap.expected.json");
    std::fs::write(&json, serde_json::to_string_pretty(&expected.to_json())?)?;
    println!("expected totals: {}", json.display());

    let flood = out.with_extension("flood.pcap");
    let t = Instant::now();
    write_mac_flood_pcap(
        &flood,
        seed,
        frames.min(2_000_000),
        1_000_000.min(frames.max(1)),
    )?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "mac flood: {} frames in {secs:.2} s = {:.2} M frames/s ({})",
        frames.min(2_000_000),
        frames.min(2_000_000) as f64 / secs / 1e6,
        flood.display()
    );
    Ok(())
}
