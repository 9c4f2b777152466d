//! `migfleet mig check <file.yaml> [--config NAME] --model <model> [--gpus N]`.

use super::model_arg;
use crate::error::Failure;
use crate::report::{Output, print_json};
use migfleet_mig::catalog::{NVIDIA_VENDOR_ID, pci_device_of};
use migfleet_mig::spec::{self, GpuTarget, HostGpu, ResolvedGpu};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A mig-parted config file (`version: v1`).
    pub file: PathBuf,
    /// Which entry of `mig-configs` to check; may be left out when the file has one.
    #[arg(long, short = 'c')]
    pub config: Option<String>,
    /// GPU model of the host: a catalog name, a driver name or a PCI id as mig-parted's
    /// device filters write it (`0x233010DE`); repeat for a host with mixed models (GPUs
    /// are numbered in the order given).
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Number of GPUs of each model.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub gpus: u32,
}

#[derive(Serialize)]
struct Out<'a> {
    file: String,
    config: &'a str,
    gpus: Vec<ResolvedGpu>,
}

#[derive(Serialize)]
struct ErrorOut {
    file: String,
    errors: Vec<Located>,
}

#[derive(Serialize)]
struct Located {
    line: u32,
    column: u32,
    message: String,
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    // A PCI id (`0x233910DE`) stands for that exact device, so device filters see it;
    // a model name stands for the model's first PCI id.
    let models = args
        .model
        .iter()
        .map(|m| {
            let model = model_arg(m)?;
            Ok((model, pci_device_of(m).unwrap_or(model.primary_pci())))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    let file = args.file.display().to_string();
    let text = crate::input::read_text(&args.file)
        .map_err(|e| Failure::options(format!("cannot read {file}: {e}")))?;
    let fail = |errors: Vec<spec::v1::SpecError>| -> Failure {
        if output == Output::Json {
            let _ = print_json(&ErrorOut {
                file: file.clone(),
                errors: errors
                    .iter()
                    .map(|e| Located {
                        line: e.pos.line,
                        column: e.pos.column,
                        message: e.message.clone(),
                    })
                    .collect(),
            });
        }
        let lines: Vec<String> = errors.iter().map(|e| format!("{file}:{e}")).collect();
        let n = lines.len();
        Failure::parse(format!(
            "{} in {file}:\n{}",
            if n == 1 {
                "1 problem".to_string()
            } else {
                format!("{n} problems")
            },
            lines.join("\n")
        ))
    };
    let config = spec::v1::parse(&text).map_err(fail)?;
    let named = spec::select(&config, args.config.as_deref()).map_err(|e| fail(vec![e]))?;
    let mut gpus = Vec::new();
    for (model, device_id) in &models {
        for _ in 0..args.gpus {
            gpus.push(HostGpu {
                index: gpus.len() as u32,
                device_id: *device_id,
                vendor_id: NVIDIA_VENDOR_ID,
                subsystem: None,
                model: Some(model),
            });
        }
    }
    let resolved = spec::resolve(named, &gpus).map_err(fail)?;
    if output == Output::Json {
        return print_json(&Out {
            file,
            config: &named.name.value,
            gpus: resolved,
        });
    }
    crate::outln!("{file}: config `{}`", named.name.value)?;
    for g in &resolved {
        let model = g.model.unwrap_or("no MIG");
        let what = match &g.target {
            GpuTarget::Untouched => "untouched (no entry matches)".to_string(),
            GpuTarget::Disabled => "MIG disabled".to_string(),
            GpuTarget::Enabled { instances, .. } if instances.is_empty() => {
                "MIG enabled, no instances".to_string()
            }
            GpuTarget::Enabled { instances, .. } => format!("MIG enabled: {}", instances.join(" ")),
        };
        let at = g
            .entry
            .map(|p| format!("  ({file}:{p})"))
            .unwrap_or_default();
        crate::outln!("  GPU {} ({model}): {what}{at}", g.index)?;
    }
    Ok(())
}
