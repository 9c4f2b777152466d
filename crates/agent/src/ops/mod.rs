//! One file per operation. Each takes the request's fields and returns a reply or an
//! error; none of them decides policy.

pub mod apply;
pub mod busy;
pub mod facts;
pub mod hello;
pub mod host;
pub mod lock;
pub mod mode;
pub mod persist;

use crate::error::{AgentError, Result};
use migfleet_proto::ErrorKind;
use std::process::Command;

/// Runs an argv (never a shell string), returning stdout; a failure carries stderr.
pub fn run(argv: &[String]) -> Result<String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| AgentError::new(ErrorKind::BadRequest, "empty command"))?;
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| AgentError::command(format!("cannot run `{}`: {e}", argv.join(" "))))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = match stderr.trim() {
            "" => String::new(),
            s => format!(": {s}"),
        };
        Err(AgentError::command(format!(
            "`{}` failed ({}){said}",
            argv.join(" "),
            out.status
        )))
    }
}
