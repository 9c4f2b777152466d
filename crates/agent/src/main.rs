//! `migfleet-agent`: serves NDJSON requests on stdin/stdout until stdin closes. Started by
//! the controller over SSH (or as a child process for local hosts), one per host per run.

mod error;
mod nvml;
mod ops;
mod serve;

use std::process::ExitCode;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--version") {
        println!("migfleet-agent {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    match serve::Agent::new().serve(stdin.lock(), stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migfleet-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
