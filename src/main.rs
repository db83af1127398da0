//! The `lanmeter` binary: parse the command line, set up logging, run, map errors to exit codes.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread exists: the arena cap bounds memory under web load (issue 25).
    lanmeter::system::memory::cap_arenas();
    let cli = lanmeter::cli::Cli::parse();
    lanmeter::app::init_logging();
    match lanmeter::app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lanmeter: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The whole context chain on one line, outermost first. Library errors often quote their
/// source in their own message (and say what to do after it), so a cause whose text an outer
/// message already contains is left out rather than repeated at the end.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}
