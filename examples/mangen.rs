//! Writes the man pages from the clap definitions in `lanmeter::cli`, so the manual can never
//! drift from `--help`: `cargo run --example mangen -- OUT_DIR` writes `lanmeter.1` and one
//! `lanmeter-SUBCOMMAND.1` per subcommand into OUT_DIR (the Makefile's `deb` targets call it and
//! gzip the result, as Debian wants).
//!
//! It only renders text; it never installs anything or reads the configuration.

use clap::CommandFactory;
use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .unwrap_or_else(|| "target/man".into()),
    );
    std::fs::create_dir_all(&out)?;
    // A renamed or removed subcommand must not leave its old page behind to be packaged.
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with("lanmeter") && (name.ends_with(".1") || name.ends_with(".1.gz")) {
            std::fs::remove_file(&path)?;
        }
    }
    let cmd = lanmeter::cli::Cli::command();
    // generate_to writes the top page and a page per subcommand, named the way `man` looks them up
    // (`man lanmeter-replay`), with SEE ALSO links between them.
    clap_mangen::generate_to(cmd, &out)?;
    for entry in std::fs::read_dir(&out)? {
        println!("{}", entry?.path().display());
    }
    Ok(())
}
