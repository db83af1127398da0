//! The classic pcap reader on whole files (from memory, not the disk), each record then decoded
//! as replay would.
#![no_main]

use lanmeter::capture::decode::{LinkType, decode};
use lanmeter::capture::pcapfile::ClassicReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(Some(mut reader)) = ClassicReader::from_reader(std::io::Cursor::new(data.to_vec()))
    else {
        return;
    };
    let link = LinkType::from_dlt(reader.linktype as i32);
    // Every record consumes at least 16 bytes, so this bound is never what stops a valid file.
    for _ in 0..=data.len() / 16 {
        let _ = reader.offset();
        match reader.next_record() {
            Ok(Some(rec)) => {
                if let Some(link) = link {
                    let _ = decode(link, rec.ts_ns, rec.data, rec.wire_len);
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
    panic!("the reader returned more records than the input can hold");
});
