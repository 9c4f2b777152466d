//! `set_mig_mode` and `reset_gpus`: switching MIG mode, and resetting exactly the GPUs
//! whose change is pending (never every GPU of the node).

use super::busy;
use crate::error::{AgentError, Result};
use crate::nvml::{self, HostModel, Session};
use migfleet_mig::plan::{Op, PlanError, plan};
use migfleet_proto::{Blocked, ErrorKind, ModeResult, OnBusy};

pub fn set_mig_mode(
    session: &Session,
    gpus: &[u32],
    enabled: bool,
    on_busy: OnBusy,
) -> Result<Vec<ModeResult>> {
    // Turning MIG off destroys every instance first: find the GPUs where one is in use
    // before anything changes, so `fail_host` can leave the whole host as it was.
    let indices = session.indices(gpus)?;
    let mut clears = Vec::with_capacity(indices.len());
    for &index in &indices {
        clears.push(clear_plan(session, index, enabled).map_err(|e| e.on_gpu(index))?);
    }
    let blocked: Vec<String> = indices
        .iter()
        .zip(&clears)
        .filter_map(|(i, c)| match c {
            Clear::Blocked(b) => Some(format!("GPU {i}: {}", b.message)),
            _ => None,
        })
        .collect();
    if on_busy == OnBusy::FailHost && !blocked.is_empty() {
        return Err(AgentError::new(
            ErrorKind::InUse,
            format!(
                "nothing was changed (on_busy = fail_host): {}",
                blocked.join("; ")
            ),
        ));
    }
    let mut out = Vec::new();
    for (index, clear) in indices.into_iter().zip(clears) {
        out.push(set_one(session, index, enabled, clear).map_err(|e| e.on_gpu(index))?);
    }
    Ok(out)
}

/// What turning MIG off must destroy first on one GPU.
enum Clear {
    /// Nothing to destroy (MIG stays or goes on, or the GPU has no instances).
    Nothing,
    /// These operations destroy every instance.
    Plan(HostModel, Vec<Op>),
    /// Instances in use stand in the way.
    Blocked(Blocked),
}

fn clear_plan(session: &Session, index: u32, enabled: bool) -> Result<Clear> {
    let dev = session.device(index)?;
    let Some(mode) = nvml::mig_mode(&dev, index)? else {
        return Ok(Clear::Nothing);
    };
    if enabled || !mode.current {
        return Ok(Clear::Nothing);
    }
    let pci = dev
        .pci_info()
        .map_err(|e| AgentError::nvml(format!("PCI info: {e}")))?;
    let host = nvml::host_model(session, &dev, index, (pci.pci_device_id >> 16) as u16)?;
    let (gis, _) = nvml::instances(session, &dev, index, &host)?;
    if gis.is_empty() {
        return Ok(Clear::Nothing);
    }
    let current = nvml::current(&gis);
    match plan(host.model, &current, &[]) {
        Ok(p) => Ok(Clear::Plan(host, p.ops)),
        Err(PlanError::InUse { blockers }) => Ok(Clear::Blocked(busy::blocked(
            "cannot turn MIG off while instances are in use",
            &blockers,
            &busy::gi_pids(&gis),
            false,
        ))),
        Err(e) => Err(AgentError::invalid(e.to_string())),
    }
}

fn set_one(session: &Session, index: u32, enabled: bool, clear: Clear) -> Result<ModeResult> {
    let dev = session.device(index)?;
    let Some(before) = nvml::mig_mode(&dev, index)? else {
        return Err(AgentError::invalid(format!(
            "{} cannot do MIG",
            dev.name().unwrap_or_else(|_| "this GPU".into())
        )));
    };
    let unchanged = |blocked| ModeResult {
        index,
        current: before.current,
        pending: before.pending,
        needs_reset: false,
        changed: false,
        destroyed: 0,
        blocked,
    };
    if before.current == enabled && before.pending == enabled {
        return Ok(unchanged(None));
    }
    let mut destroyed = 0;
    match clear {
        Clear::Blocked(b) => return Ok(unchanged(Some(b))),
        Clear::Plan(host, ops) => {
            let mut new_ids = Default::default();
            for op in &ops {
                nvml::execute(session, &dev, &host, op, &mut new_ids)?;
                if matches!(op, Op::DestroyGi { .. }) {
                    destroyed += 1;
                }
            }
        }
        Clear::Nothing => {}
    }
    // The activation status the driver returns says whether it could switch now; what
    // counts is the mode afterwards: still not `enabled` means the change is pending (an
    // Ampere GPU waiting for a reset, clients holding the GPU) and the caller decides on
    // reset or reboot.
    dev.set_mig_mode(enabled)
        .map_err(|e| AgentError::nvml(format!("set MIG mode: {e}")))?;
    let after = nvml::mig_mode(&dev, index)?.unwrap_or(before);
    Ok(ModeResult {
        index,
        current: after.current,
        pending: after.pending,
        needs_reset: after.current != enabled,
        changed: true,
        destroyed,
        blocked: None,
    })
}

/// The PCI bus ids of the listed GPUs, for the reset command.
pub fn bus_ids(session: &Session, gpus: &[u32]) -> Result<Vec<String>> {
    session
        .indices(gpus)?
        .iter()
        .map(|i| {
            let dev = session.device(*i)?;
            let pci = dev
                .pci_info()
                .map_err(|e| AgentError::nvml(format!("PCI info: {e}")).on_gpu(*i))?;
            // Refuse before the reset rather than let it kill work.
            if let Ok(procs) = dev.running_compute_processes()
                && !procs.is_empty()
            {
                let pids: Vec<String> = procs.iter().map(|p| p.pid.to_string()).collect();
                return Err(AgentError::new(
                    ErrorKind::InUse,
                    format!(
                        "cannot reset: processes {} use it; drain first",
                        pids.join(", ")
                    ),
                )
                .on_gpu(*i));
            }
            Ok(pci.bus_id)
        })
        .collect()
}

/// The reset argv with `{bus_ids}` filled in.
pub fn reset_argv(command: Option<&[String]>, bus_ids: &[String]) -> Vec<String> {
    let default: Vec<String> = ["nvidia-smi", "--gpu-reset", "-i", "{bus_ids}"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let joined = bus_ids.join(",");
    command
        .map(<[String]>::to_vec)
        .unwrap_or(default)
        .into_iter()
        .map(|a| a.replace("{bus_ids}", &joined))
        .collect()
}

/// Mode of each listed GPU after a reset.
pub fn modes(session: &Session, gpus: &[u32]) -> Result<Vec<ModeResult>> {
    session
        .indices(gpus)?
        .iter()
        .map(|i| {
            let dev = session.device(*i)?;
            let m = nvml::mig_mode(&dev, *i)?
                .ok_or_else(|| AgentError::invalid("cannot do MIG").on_gpu(*i))?;
            Ok(ModeResult {
                index: *i,
                current: m.current,
                pending: m.pending,
                needs_reset: m.current != m.pending,
                changed: true,
                destroyed: 0,
                blocked: None,
            })
        })
        .collect()
}
