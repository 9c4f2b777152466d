//! `migfleet mig models`.

use crate::error::Failure;
use crate::report::{Output, print_json};
use migfleet_mig::catalog::models;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this model: a name or alias (`h100`), or a PCI id as mig-parted's device
    /// filters write it (`0x233010DE`, or the device alone, `0x2330`).
    #[arg(long)]
    model: Option<String>,
}

#[derive(Serialize)]
struct Row {
    name: &'static str,
    generation: migfleet_mig::catalog::Generation,
    compute_slices: u8,
    memory_slices: u8,
    min_driver: &'static str,
    pci: Vec<Pci>,
    mode_change_needs_reset: bool,
    mode_survives_reboot: bool,
}

#[derive(Serialize)]
struct Pci {
    id: String,
    variant: &'static str,
}

pub fn exec(a: Args, output: Output) -> Result<(), Failure> {
    let only = match &a.model {
        Some(m) => Some(super::model_arg(m)?),
        None => None,
    };
    let rows: Vec<Row> = models()
        .iter()
        .filter(|m| only.is_none_or(|o| m.name == o.name))
        .map(|m| Row {
            name: m.name,
            generation: m.generation,
            compute_slices: m.compute_slices,
            memory_slices: m.memory_slices,
            min_driver: m.min_driver,
            pci: m
                .pci
                .iter()
                .map(|p| Pci {
                    id: format!("0x{:04X}10DE", p.device_id),
                    variant: p.variant,
                })
                .collect(),
            mode_change_needs_reset: m.generation.mode_change_needs_reset(),
            mode_survives_reboot: m.generation.mode_survives_reboot(),
        })
        .collect();
    if output == Output::Json {
        return print_json(&rows);
    }
    let name_w = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(5);
    crate::outln!(
        "{:<name_w$} {:<10} {:<7} {:<12} PCI IDS (VARIANT)",
        "MODEL",
        "GEN",
        "SLICES",
        "MIN DRIVER"
    )?;
    for r in rows {
        let pci: Vec<String> = r
            .pci
            .iter()
            .map(|p| format!("{} ({})", p.id, p.variant))
            .collect();
        crate::outln!(
            "{:<name_w$} {:<10} {:<7} {:<12} {}",
            r.name,
            format!("{:?}", r.generation).to_lowercase(),
            format!("{}/{}", r.compute_slices, r.memory_slices),
            r.min_driver,
            pci.join(", ")
        )?;
    }
    Ok(())
}
