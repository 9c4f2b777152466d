//! `migfleet mig ...`: the MIG domain on its own, without hosts. Useful for planning,
//! for checking mig-parted files before a rollout, and for writing policies.

mod check;
mod layouts;
mod models;
mod plan;
mod profiles;

use crate::error::Failure;
use crate::report::Output;
use clap::Subcommand;
use migfleet_mig::catalog::{GpuModel, ModelError, find_model};

#[derive(Debug, Subcommand)]
pub enum MigCommand {
    /// List the GPU models migfleet knows, with their PCI ids and generation.
    Models(models::Args),
    /// Show a model's MIG profiles: placements, memory, SMs, ids, compute instances.
    Profiles(profiles::Args),
    /// Enumerate the valid placed layouts of a model.
    Layouts(layouts::Args),
    /// Check a mig-parted config file against a model: each GPU's placed layout, or why
    /// it cannot work.
    Check(check::Args),
    /// Plan the NVML operations from one layout to another, keeping instances in use.
    Plan(plan::Args),
}

pub fn exec(cmd: MigCommand, output: Output) -> Result<(), Failure> {
    match cmd {
        MigCommand::Models(a) => models::exec(a, output),
        MigCommand::Profiles(a) => profiles::exec(a, output),
        MigCommand::Layouts(a) => layouts::exec(a, output),
        MigCommand::Check(a) => check::exec(a, output),
        MigCommand::Plan(a) => plan::exec(a, output),
    }
}

/// Resolves a model argument, turning a miss into a failure with a hint.
fn model_arg(name: &str) -> Result<&'static GpuModel, Failure> {
    find_model(name).map_err(|e: ModelError| {
        Failure::options(e.to_string())
            .hint("`migfleet mig models` lists the models and the names they go by")
    })
}
