//! The `lanmeter` binary: parse the command line, set up logging, run, map errors to exit codes.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = lanmeter::cli::Cli::parse();
    lanmeter::app::init_logging();
    match lanmeter::app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line: the whole context chain, outermost first.
            eprintln!("lanmeter: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
