//! Resolution of one named mig-parted config for one host: which entry applies to each
//! GPU, what its profile names mean on that GPU's model, and where the instances go.
//!
//! Semantics follow mig-parted: an entry applies to a GPU when its `device-filter` matches
//! the GPU's PCI ids and `devices` is `all` or lists the GPU's index; entries apply in file
//! order, so the last matching one decides; GPUs no entry matches are left untouched.
//! Unlike mig-parted, names are resolved per model before anything runs, counts are
//! checked against the model's maxima and the layout is placed exactly, so a config that
//! cannot work fails here with file positions instead of on the host.

use super::v1::{Config, DeviceFilter, Devices, Entry, NamedConfig, Pos, SpecError};
use crate::catalog::{GpuModel, ProfileIdx};
use crate::layout::{self, Placed, Want};
use serde::Serialize;

/// A GPU as the host reports it.
#[derive(Clone, Copy, Debug)]
pub struct HostGpu {
    pub index: u32,
    pub device_id: u16,
    pub vendor_id: u16,
    /// `(subsystem device id, subsystem vendor id)` when known.
    pub subsystem: Option<(u16, u16)>,
    /// The catalog model, `None` for a GPU without MIG.
    pub model: Option<&'static GpuModel>,
}

/// What a config asks of one GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "mig", rename_all = "kebab-case")]
pub enum GpuTarget {
    /// No entry matches: leave the GPU as it is.
    Untouched,
    Disabled,
    /// MIG on, with these instances (possibly none).
    Enabled {
        #[serde(skip)]
        layout: Vec<Placed>,
        instances: Vec<String>,
    },
}

/// The outcome for one GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResolvedGpu {
    pub index: u32,
    pub model: Option<&'static str>,
    /// Where the deciding entry starts.
    pub entry: Option<Pos>,
    pub target: GpuTarget,
}

/// Picks the config named `name`, or the only one when `name` is `None`.
pub fn select<'c>(config: &'c Config, name: Option<&str>) -> Result<&'c NamedConfig, SpecError> {
    let names = || -> String {
        config
            .configs
            .iter()
            .map(|c| c.name.value.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => config
            .configs
            .iter()
            .find(|c| c.name.value == n)
            .ok_or_else(|| SpecError {
                pos: config.version.pos,
                message: format!(
                    "no config named `{n}` in `mig-configs`; configs there: {}",
                    names()
                ),
            }),
        None => match config.configs.as_slice() {
            [only] => Ok(only),
            _ => Err(SpecError {
                pos: config.version.pos,
                message: format!("the file holds several configs; choose one of: {}", names()),
            }),
        },
    }
}

/// Resolves `named` for the GPUs of one host. Reports every problem, each at the position
/// of what caused it, naming the GPU index and model.
pub fn resolve(named: &NamedConfig, gpus: &[HostGpu]) -> Result<Vec<ResolvedGpu>, Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for gpu in gpus {
        let Some(entry) = named.entries.iter().rev().find(|e| applies(e, gpu)) else {
            out.push(ResolvedGpu {
                index: gpu.index,
                model: gpu.model.map(|m| m.name),
                entry: None,
                target: GpuTarget::Untouched,
            });
            continue;
        };
        let explicit = matches!(entry.devices.value, Devices::Indices(_));
        let target = match (entry.mig_enabled.value, gpu.model) {
            // mig-parted skips GPUs without MIG when the entry turns MIG off: there is
            // nothing to switch off, and asking NVML to would fail.
            (false, None) => GpuTarget::Untouched,
            (false, Some(_)) => GpuTarget::Disabled,
            (true, None) if explicit => {
                errors.push(SpecError {
                    pos: entry.devices.pos,
                    message: format!(
                        "GPU {} (PCI device 0x{:04x}) does not support MIG",
                        gpu.index, gpu.device_id
                    ),
                });
                continue;
            }
            // mig-parted skips GPUs without MIG when the entry says `devices: all`.
            (true, None) => GpuTarget::Untouched,
            (true, Some(model)) => match layout_for(entry, gpu.index, model) {
                Ok(layout) => GpuTarget::Enabled {
                    instances: layout.iter().map(|p| p.display(model)).collect(),
                    layout,
                },
                Err(mut e) => {
                    errors.append(&mut e);
                    continue;
                }
            },
        };
        out.push(ResolvedGpu {
            index: gpu.index,
            model: gpu.model.map(|m| m.name),
            entry: Some(entry.pos),
            target,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.message.cmp(&b.message)));
        errors.dedup();
        Err(errors)
    }
}

fn applies(entry: &Entry, gpu: &HostGpu) -> bool {
    let index_ok = match &entry.devices.value {
        Devices::All => true,
        Devices::Indices(list) => list.contains(&gpu.index),
    };
    let filter_ok = match &entry.device_filter {
        None => true,
        Some(filters) => filters.iter().any(|f| filter_matches(&f.value, gpu)),
    };
    index_ok && filter_ok
}

fn filter_matches(f: &DeviceFilter, gpu: &HostGpu) -> bool {
    f.device_id == gpu.device_id
        && f.vendor_id == gpu.vendor_id
        && f.subsystem.is_none_or(|s| gpu.subsystem == Some(s))
}

/// Turns an entry's `mig-devices` into a placed layout on `model`.
fn layout_for(entry: &Entry, index: u32, model: &GpuModel) -> Result<Vec<Placed>, Vec<SpecError>> {
    let mut errors = Vec::new();
    let on = |pos: Pos, msg: String| SpecError {
        pos,
        message: format!("GPU {index} ({}): {msg}", model.name),
    };
    // Per GI profile: whole GIs, and compute-instance sizes to pack into shared GIs.
    let mut whole: Vec<(ProfileIdx, u32, Pos)> = Vec::new();
    let mut sliced: Vec<(ProfileIdx, u8, u32, Pos)> = Vec::new();
    for (name, count) in &entry.mig_devices {
        let r = match model.resolve(&name.value) {
            Ok(r) => r,
            Err(e) => {
                errors.push(on(name.pos, e.to_string()));
                continue;
            }
        };
        let p = model.profile(r.gi);
        if r.ci_slices == p.compute_slices {
            whole.push((r.gi, count.value, count.pos));
        } else {
            sliced.push((r.gi, r.ci_slices, count.value, count.pos));
        }
    }
    let mut wants: Vec<Want> = Vec::new();
    for (gi, n, _) in &whole {
        wants.extend((0..*n).map(|_| Want::whole(model, *gi)));
    }
    // Compute-instance sub-slicing: mig-parted fills one GI with consecutive CIs of the
    // same GI profile before opening another; first-fit decreasing does that without
    // depending on the order names were written in.
    sliced.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    for (gi, size, n, _) in &sliced {
        for _ in 0..*n {
            let slot = wants.iter_mut().find(|w| {
                w.profile == *gi
                    && w.cis
                        .first()
                        .is_some_and(|c| *c < model.profile(*gi).compute_slices)
                    && {
                        let mut cis = w.cis.clone();
                        cis.push(*size);
                        layout::check_cis(model, *gi, &cis).is_ok()
                    }
            });
            match slot {
                Some(w) => {
                    w.cis.push(*size);
                    w.cis.sort_by(|a, b| b.cmp(a));
                }
                None => wants.push(Want {
                    profile: *gi,
                    start: None,
                    cis: vec![*size],
                }),
            }
        }
    }
    for (idx, p) in model.indexed_profiles() {
        let n = wants.iter().filter(|w| w.profile == idx).count();
        if n > p.max_instances as usize {
            let pos = whole
                .iter()
                .map(|w| (w.0, w.2))
                .chain(sliced.iter().map(|s| (s.0, s.3)))
                .find(|(gi, _)| *gi == idx)
                .map_or(entry.pos, |(_, pos)| pos);
            errors.push(on(
                pos,
                format!(
                    "{n} instances of {} asked, at most {} fit",
                    p.name, p.max_instances
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut placed = layout::place(model, &[], &wants).map_err(|e| {
        vec![on(
            entry.mig_devices_pos.unwrap_or(entry.pos),
            format!("the layout cannot be placed: {e}"),
        )]
    })?;
    // By placement, so outputs read left to right across the GPU's memory.
    placed.sort();
    Ok(placed)
}
