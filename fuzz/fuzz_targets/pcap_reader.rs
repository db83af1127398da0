//! The classic pcap and the pcapng readers on whole files (from memory, not the disk), each
//! record then decoded as replay would.
#![no_main]

use lanmeter::capture::decode::{LinkType, decode};
use lanmeter::capture::pcapfile::{ClassicReader, Record, Stop};
use lanmeter::capture::pcapng::PcapngReader;
use libfuzzer_sys::fuzz_target;

fn check(rec: Result<Option<Record<'_>>, Stop>) -> bool {
    match rec {
        Ok(Some(rec)) => {
            if let Some(link) = LinkType::from_dlt(rec.linktype as i32) {
                let _ = decode(link, rec.ts_ns, rec.data, rec.wire_len);
            }
            true
        }
        Ok(None) | Err(_) => false,
    }
}

fuzz_target!(|data: &[u8]| {
    // Every record consumes at least 12 bytes (a pcapng block header) or 16 (a classic record
    // header), so this bound is never what stops a valid file.
    let bound = data.len() / 12 + 1;
    if let Ok(Some(mut reader)) = PcapngReader::from_reader(std::io::Cursor::new(data.to_vec())) {
        let _ = reader.prime();
        for _ in 0..=bound {
            let _ = reader.offset();
            if !check(reader.next_record()) {
                return;
            }
        }
        panic!("the pcapng reader returned more records than the input can hold");
    }
    let Ok(Some(mut reader)) = ClassicReader::from_reader(std::io::Cursor::new(data.to_vec()))
    else {
        return;
    };
    for _ in 0..=bound {
        let _ = reader.offset();
        if !check(reader.next_record()) {
            return;
        }
    }
    panic!("the classic reader returned more records than the input can hold");
});
