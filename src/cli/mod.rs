//! The command line: one file per subcommand, each with its clap arguments (whose doc
//! comments are the `--help`) and an `exec` that returns a value or a [`Failure`].

pub mod facts;
pub mod fleet_args;
pub mod inventory;
pub mod mig;
pub mod ping;
pub mod run;

use crate::error::Failure;
use crate::report::Output;
use clap::{Parser, Subcommand};

/// Partition NVIDIA GPUs with MIG across a fleet.
///
/// migfleet plans MIG layouts exactly (explicit placements, minimal changes, never
/// destroying an instance in use) and applies them to hosts over SSH.
#[derive(Debug, Parser)]
#[command(name = "migfleet", version, propagate_version = true)]
pub struct Cli {
    /// Output format: `text` for people, `json` for scripts.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explore MIG geometry offline: models, profiles, layouts, config checks and plans.
    #[command(subcommand)]
    Mig(mig::MigCommand),
    /// Run a Lua playbook: partition GPUs across the hosts its plays name.
    Run(run::Args),
    /// Show the inventory as Ansible reads it: `--list`, `--graph`, `--list-hosts`.
    Inventory(inventory::Args),
    /// Connect to each host and start its agent (uploading it once per version).
    Ping(ping::Args),
    /// Each host's GPUs: model, memory, MIG mode, instances, processes.
    Facts(facts::Args),
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Mig(cmd) => mig::exec(cmd, cli.output),
        Command::Run(a) => run::exec(a, cli.output),
        Command::Inventory(a) => inventory::exec(a),
        Command::Ping(a) => ping::exec(a, cli.output),
        Command::Facts(a) => facts::exec(a, cli.output),
    }
}
