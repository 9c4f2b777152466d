//! `migfleet`: parse the command line, run the command, report an error with its hints,
//! exit with an Ansible-compatible code. The only place that exits the process.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = migfleet::cli::Cli::parse();
    match migfleet::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{}", failure.render());
            ExitCode::from(failure.code)
        }
    }
}
