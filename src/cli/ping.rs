//! `migfleet ping -i INV [--limit P]`: connect to every host and start its agent.

use super::fleet_args::{FleetArgs, run_on_hosts};
use crate::error::Failure;
use crate::fleet::Outcome;
use crate::report::{Output, recap};
use migfleet_proto::{Op, Reply};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub fleet: FleetArgs,
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let (outcomes, code) = run_on_hosts(&args.fleet, output, |mut s, _| async move {
        match s.client.call(Op::Hello, |_| {}).await {
            Ok(Reply::Hello(h)) => Outcome::ok(
                format!(
                    "pong: agent {} on {} ({}){}",
                    h.agent_version,
                    h.hostname,
                    h.arch,
                    if s.uploaded { ", uploaded" } else { "" }
                ),
                Some(serde_json::json!({"hello": h, "uploaded": s.uploaded})),
            ),
            Ok(other) => Outcome::failed(format!("unexpected reply: {other:?}")),
            Err(e) => Outcome::failed(e.to_string()),
        }
    })?;
    finish(&outcomes, code, output)
}

/// Prints the recap (text) and turns the exit code into the command's result.
pub fn finish(outcomes: &[(String, Outcome)], code: u8, output: Output) -> Result<(), Failure> {
    if output == Output::Text {
        crate::outln!("")?;
        crate::out!("{}", recap::render(&recap::from_outcomes(outcomes)))?;
    }
    if code == 0 {
        Ok(())
    } else {
        Err(Failure {
            message: match code {
                4 => "some hosts were unreachable".into(),
                _ => "some hosts failed".into(),
            },
            hints: Vec::new(),
            code,
        })
    }
}
