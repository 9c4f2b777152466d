//! `migfleet ping -i INV [--limit P]`: connect to every host and start its agent.

use super::fleet_args::FleetArgs;
use crate::error::Failure;
use crate::fleet::Outcome;
use crate::fleet::fanout::run_on_hosts;
use crate::fleet::session::Opening;
use crate::report::{Output, recap};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub fleet: FleetArgs,
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let mut fleet = args.fleet.fleet()?;
    // The greeting is checked while the session opens: answering it is the pong.
    let (outcomes, code) = run_on_hosts(&mut fleet, output, Opening::Hello, |s| async move {
        let h = &s.hello;
        Outcome::ok(
            format!(
                "pong: agent {} on {} ({}){}",
                h.agent_version,
                h.hostname,
                h.arch,
                if s.uploaded { ", uploaded" } else { "" }
            ),
            Some(serde_json::json!({"hello": h, "uploaded": s.uploaded})),
        )
    })?;
    finish(&outcomes, code, output)
}

/// Prints the recap (text) and turns the exit code into the command's result.
pub fn finish(outcomes: &[(String, Outcome)], code: u8, output: Output) -> Result<(), Failure> {
    let stats = recap::from_outcomes(outcomes);
    if output == Output::Text {
        crate::outln!("")?;
        crate::out!("{}", recap::render(&stats))?;
    }
    recap::result(&stats, code)
}
