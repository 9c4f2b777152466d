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
    if std::env::args().nth(1).as_deref() == Some("--restore-mig") {
        // What migfleet-mig.service runs at boot (mig.persist).
        let Some(file) = std::env::args_os().nth(2) else {
            eprintln!("usage: migfleet-agent --restore-mig TARGET.json");
            return ExitCode::from(2);
        };
        return match ops::persist::restore_mig(std::path::Path::new(&file)) {
            Ok(done) => {
                println!("migfleet-agent: {done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("migfleet-agent: {}", e.message);
                ExitCode::FAILURE
            }
        };
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
