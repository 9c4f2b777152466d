//! `migfleet`: parse the command line, run the command, report an error with its hints,
//! exit with an Ansible-compatible code. The only place that exits the process.

use clap::Parser;
use migfleet::report::exit_code;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match migfleet::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are answers, not errors; anything else clap refuses
            // is a usage error, Ansible's 5 (clap's own 2 would read as "hosts failed").
            let code = if e.use_stderr() {
                exit_code::BAD_OPTIONS
            } else {
                exit_code::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match migfleet::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprint!("{}", failure.render());
            ExitCode::from(failure.code)
        }
    }
}
