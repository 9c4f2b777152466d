//! `set_mig_mode` and `reset_gpus`: switching MIG mode, and resetting exactly the GPUs
//! whose change is pending (never every GPU of the node).

use crate::error::{AgentError, Result};
use crate::nvml::{self, Session};
use migfleet_mig::plan::plan;
use migfleet_proto::{ErrorKind, ModeResult};

pub fn set_mig_mode(session: &Session, gpus: &[u32], enabled: bool) -> Result<Vec<ModeResult>> {
    let mut out = Vec::new();
    for index in session.indices(gpus)? {
        out.push(set_one(session, index, enabled).map_err(|e| e.on_gpu(index))?);
    }
    Ok(out)
}

fn set_one(session: &Session, index: u32, enabled: bool) -> Result<ModeResult> {
    let dev = session.device(index)?;
    let Some(before) = nvml::mig_mode(&dev, index)? else {
        return Err(AgentError::invalid(format!(
            "{} cannot do MIG",
            dev.name().unwrap_or_else(|_| "this GPU".into())
        )));
    };
    if before.current == enabled && before.pending == enabled {
        return Ok(ModeResult {
            index,
            current: before.current,
            pending: before.pending,
            needs_reset: false,
            changed: false,
        });
    }
    if !enabled && before.current {
        clear_instances(session, &dev, index)?;
    }
    let activation = dev
        .set_mig_mode(enabled)
        .map_err(|e| AgentError::nvml(format!("set MIG mode: {e}")))?;
    let after = nvml::mig_mode(&dev, index)?.unwrap_or(before);
    if activation != 0 && after.current != enabled {
        // The driver could not activate now (clients hold the GPU, or no reset is
        // available); the change stays pending and the caller decides on reset or reboot.
        return Ok(ModeResult {
            index,
            current: after.current,
            pending: after.pending,
            needs_reset: true,
            changed: true,
        });
    }
    Ok(ModeResult {
        index,
        current: after.current,
        pending: after.pending,
        needs_reset: after.current != enabled,
        changed: true,
    })
}

/// Destroys every instance before MIG is switched off, refusing when one is in use.
fn clear_instances(
    session: &Session,
    dev: &nvml_wrapper::device::Device,
    index: u32,
) -> Result<()> {
    let pci = dev
        .pci_info()
        .map_err(|e| AgentError::nvml(format!("PCI info: {e}")))?;
    let host = nvml::host_model(session, dev, index, (pci.pci_device_id >> 16) as u16)?;
    let (gis, _) = nvml::instances(session, dev, index, &host)?;
    let current = nvml::current(&gis);
    let p = plan(host.model, &current, &[]).map_err(|e| {
        let pids: Vec<String> = gis
            .iter()
            .flat_map(|g| {
                g.cis
                    .iter()
                    .flat_map(|c| c.processes.iter().map(|p| p.pid.to_string()))
            })
            .collect();
        AgentError::new(
            ErrorKind::InUse,
            format!("cannot turn MIG off: {e}; PIDs {}", pids.join(", ")),
        )
    })?;
    let mut new_ids = Default::default();
    for op in &p.ops {
        nvml::execute(session, dev, &host, op, &mut new_ids)?;
    }
    Ok(())
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
            })
        })
        .collect()
}
