//! Output: how results reach the user (text for people, JSON for machines) and the exit
//! codes. Commands produce values; this module decides how they look.

pub mod exit_code;
pub mod monitor;
pub mod recap;

use clap::ValueEnum;
use serde::Serialize;

/// `--output`: text for people, JSON for machines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), crate::error::Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| crate::error::Failure::error(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Prints `value` as one compact JSON line on stdout (for event streams).
pub fn print_json_line<T: Serialize>(value: &T) -> Result<(), crate::error::Failure> {
    let text = serde_json::to_string(value)
        .map_err(|e| crate::error::Failure::error(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
