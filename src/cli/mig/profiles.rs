//! `migfleet mig profiles <model>`.

use super::model_arg;
use crate::error::Failure;
use crate::report::{Output, print_json};
use migfleet_mig::catalog::{GiProfile, Source};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// GPU model: a catalog name (`H100-80GB`), a driver name (`NVIDIA A100-SXM4-40GB`) or
    /// a `nvidia.com/gpu.product` label value.
    pub model: String,
}

#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    profile: &'a GiProfile,
    nvml_value: u32,
    compute_instances: Vec<Ci>,
}

#[derive(Serialize)]
struct Ci {
    name: String,
    slices: u8,
    nvml_value: u32,
    max_instances: u8,
}

#[derive(Serialize)]
struct Out<'a> {
    model: &'static str,
    generation: migfleet_mig::catalog::Generation,
    compute_slices: u8,
    memory_slices: u8,
    placement_units: u8,
    min_driver: &'static str,
    profiles: Vec<Row<'a>>,
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let model = model_arg(&args.model)?;
    let rows: Vec<Row> = model
        .profiles
        .iter()
        .map(|p| Row {
            profile: p,
            nvml_value: p.nvml.value(),
            compute_instances: p
                .ci_profiles()
                .iter()
                .map(|c| Ci {
                    name: c.name(),
                    slices: c.slices,
                    nvml_value: c.nvml().0,
                    max_instances: c.max_instances,
                })
                .collect(),
        })
        .collect();
    if output == Output::Json {
        return print_json(&Out {
            model: model.name,
            generation: model.generation,
            compute_slices: model.compute_slices,
            memory_slices: model.memory_slices,
            placement_units: model.placement_units,
            min_driver: model.min_driver,
            profiles: rows,
        });
    }
    let units = if model.placement_units == model.memory_slices {
        String::new()
    } else {
        format!(
            " ({} placement units: starts and sizes below count in them)",
            model.placement_units
        )
    };
    crate::outln!(
        "{} ({:?}): {} compute slices, {} memory slices{units}; driver {} or later",
        model.name,
        model.generation,
        model.compute_slices,
        model.memory_slices,
        model.min_driver
    )?;
    let name_w = rows
        .iter()
        .map(|r| r.profile.name.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let const_w = rows
        .iter()
        .map(|r| r.profile.nvml.c_name().len())
        .max()
        .unwrap_or(0)
        .max(13);
    crate::outln!(
        "{:<name_w$} {:>4} {:<const_w$} {:>5} {:>10} {:>5} {:>4}  {:<15} {:<6} COMPUTE INSTANCES",
        "PROFILE",
        "ID",
        "NVML CONSTANT",
        "C/M",
        "MEMORY MiB",
        "SMs",
        "MAX",
        "PLACEMENTS",
        "SINCE"
    )?;
    let mut assumed = false;
    let mut notes = Vec::new();
    for r in &rows {
        let p = r.profile;
        let starts: Vec<String> = p.starts.iter().map(|s| s.to_string()).collect();
        let mut starts = starts.join(",");
        if p.starts_source == Source::Assumed {
            starts.push('?');
        }
        assumed |= !p.id.is_sourced()
            || !p.memory_mib.is_sourced()
            || !p.sm_count.is_sourced()
            || p.starts_source == Source::Assumed;
        let cis: Vec<String> = r.compute_instances.iter().map(|c| c.name.clone()).collect();
        crate::outln!(
            "{:<name_w$} {:>4} {:<const_w$} {:>5} {:>10} {:>5} {:>4}  {:<15} {:<6} {}",
            p.name,
            p.id.display(),
            p.nvml.c_name(),
            format!("{}/{}", p.compute_slices, p.memory_slices),
            p.memory_mib.display(),
            p.sm_count.display(),
            p.max_instances,
            starts,
            p.min_driver.unwrap_or("-"),
            cis.join(" ")
        )?;
        if !p.memory_history.is_empty() {
            let steps: Vec<String> = p
                .memory_history
                .iter()
                .map(|(from, mib)| format!("{mib} MiB from {from}"))
                .collect();
            notes.push(format!("{}: memory {}", p.name, steps.join(", ")));
        }
        if !p.aliases.is_empty() {
            notes.push(format!(
                "{}: also named {} by some drivers",
                p.name,
                p.aliases.join(", ")
            ));
        }
    }
    if !notes.is_empty() {
        crate::outln!("")?;
        for n in notes {
            crate::outln!("{n}")?;
        }
    }
    if assumed {
        crate::outln!(
            "\n`N?` = assumed from a sibling model (not captured on this one); `?` = unknown. The host's NVML table wins at run time."
        )?;
    }
    Ok(())
}
