//! The floor for `make bench`: a bare libpcap read loop over a capture file that touches each
//! record's header and nothing else. lanmeter's replay reads through the same libpcap calls, so
//! the ratio of the two is what decoding and counting cost.
//!
//! Usage: read_floor FILE

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: read_floor FILE")?;
    let mut cap = pcap::Capture::from_file_with_precision(&path, pcap::Precision::Nano)?;
    let mut frames: u64 = 0;
    let mut bytes: u64 = 0;
    loop {
        match cap.next_packet() {
            Ok(p) => {
                frames += 1;
                bytes += u64::from(p.header.len);
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // Printing the sums keeps the loop from being optimised away and lets the driver check
    // that both programs saw the same file.
    println!("{frames} frames {bytes} bytes");
    Ok(())
}
