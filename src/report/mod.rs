//! Output: how results reach the user (text for people, JSON for machines) and the exit
//! codes. Commands produce values; this module decides how they look.

pub mod exit_code;
pub mod monitor;
pub mod recap;
pub mod text;

use crate::error::Failure;
use clap::ValueEnum;
use serde::Serialize;
use std::io::Write;

/// `--output`: text for people, JSON for machines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Writes `text` to stdout. A reader that went away (`| head`) ends the command quietly
/// ([`Failure::closed_stdout`]) instead of the panic `println!` would give.
/// Prints `[WARNING]: text` on stderr, once per distinct text for the process (as Ansible
/// words its warnings).
pub fn warn_once(text: &str) {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let seen = SEEN.get_or_init(|| Mutex::new(HashSet::new()));
    if seen.lock().is_ok_and(|mut s| s.insert(text.to_string())) {
        eprintln!("[WARNING]: {text}");
    }
}

pub fn write_stdout(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Failure::closed_stdout()
            } else {
                Failure::error(format!("cannot write to stdout: {e}"))
            }
        })
}

/// [`write_stdout`] with a newline.
pub fn write_line(text: &str) -> Result<(), Failure> {
    write_stdout(&format!("{text}\n"))
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::error(format!("cannot encode JSON: {e}")))?;
    write_line(&text)
}

/// Prints `value` as one compact JSON line on stdout (for event streams).
pub fn print_json_line<T: Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string(value)
        .map_err(|e| Failure::error(format!("cannot encode JSON: {e}")))?;
    write_line(&text)
}

/// `println!` for command output: returns `Result<(), Failure>`, quiet on a closed pipe
/// (see [`write_stdout`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => { $crate::report::write_line(&format!($($arg)*)) };
}

/// `print!` for command output (see [`outln!`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::report::write_stdout(&format!($($arg)*)) };
}
