//! The config file, through the same `Config::load_from` the daemon uses (it reads a path, so the
//! input is written to one temporary file, rewritten for every run).
#![no_main]

use std::io::{Seek, Write};
use std::sync::{Mutex, OnceLock};

use lanmeter::config::Config;
use libfuzzer_sys::fuzz_target;

static FILE: OnceLock<Mutex<tempfile::NamedTempFile>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let file = FILE.get_or_init(|| {
        Mutex::new(tempfile::NamedTempFile::new().expect("a temporary file for the config input"))
    });
    let mut f = file.lock().expect("one fuzzing thread");
    let h = f.as_file_mut();
    h.set_len(0).expect("truncate");
    h.rewind().expect("rewind");
    h.write_all(data).expect("write");
    let _ = Config::load_from(Some(f.path()), std::iter::empty());
});
