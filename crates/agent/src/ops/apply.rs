//! `apply`: plan each GPU's change with `migfleet-mig` against the instances NVML reports
//! and the driver's own profile table, then carry the plan out one NVML call at a time,
//! reporting each as an event. A dry run stops after planning.

use crate::error::{AgentError, Result};
use crate::nvml::{self, Session};
use migfleet_mig::layout::{Placed, Want};
use migfleet_mig::plan::{PlanError, plan};
use migfleet_proto::{ApplyResult, ErrorKind, Event, GpuLayout};
use std::collections::BTreeMap;

pub fn apply(
    session: &Session,
    gpus: &[GpuLayout],
    dry_run: bool,
    allow_in_use: bool,
    emit: &mut dyn FnMut(Event),
) -> Result<Vec<ApplyResult>> {
    let mut out = Vec::new();
    for g in gpus {
        out.push(one(session, g, dry_run, allow_in_use, emit).map_err(|e| e.on_gpu(g.index))?);
    }
    Ok(out)
}

fn one(
    session: &Session,
    g: &GpuLayout,
    dry_run: bool,
    allow_in_use: bool,
    emit: &mut dyn FnMut(Event),
) -> Result<ApplyResult> {
    session.indices(&[g.index])?;
    let dev = session.device(g.index)?;
    let Some(mode) = nvml::mig_mode(&dev, g.index)? else {
        return Err(AgentError::invalid("this GPU cannot do MIG"));
    };
    // A dry run plans from the empty GPU that enabling MIG gives, so `--check` can show a
    // whole rollout before any mode changes.
    if !mode.current && !dry_run {
        return Err(AgentError::invalid(format!(
            "MIG mode is off (pending: {}); enable it first",
            if mode.pending { "on" } else { "off" }
        )));
    }
    let pci = dev
        .pci_info()
        .map_err(|e| AgentError::nvml(format!("PCI info: {e}")))?;
    let host = nvml::host_model(session, &dev, g.index, (pci.pci_device_id >> 16) as u16)?;
    let model = host.model;
    let mut wants = Vec::new();
    for w in &g.instances {
        let r = model
            .resolve(&w.profile)
            .map_err(|e| AgentError::invalid(e.to_string()))?;
        let mut cis = w.cis.clone().unwrap_or_else(|| vec![r.ci_slices]);
        cis.sort_by(|a, b| b.cmp(a));
        wants.push(Want {
            profile: r.gi,
            start: w.start,
            cis,
        });
    }
    let (gis, _) = nvml::instances(session, &dev, g.index, &host)?;
    let mut current = nvml::current(&gis);
    if allow_in_use {
        current
            .iter_mut()
            .flat_map(|g| g.cis.iter_mut())
            .for_each(|c| c.in_use = false);
    }
    let p = plan(model, &current, &wants).map_err(|e| match &e {
        PlanError::InUse { blockers } => {
            let named: Vec<String> = blockers
                .iter()
                .map(|b| {
                    let pids: Vec<String> = gis
                        .iter()
                        .filter(|x| x.gi_id == b.gi_id)
                        .flat_map(|x| {
                            x.cis
                                .iter()
                                .flat_map(|c| c.processes.iter().map(|p| p.pid.to_string()))
                        })
                        .collect();
                    format!(
                        "{} (GI {}) has processes {}: {}",
                        b.instance,
                        b.gi_id,
                        pids.join(", "),
                        b.reason
                    )
                })
                .collect();
            AgentError::new(
                ErrorKind::InUse,
                format!("would destroy instances in use: {}", named.join("; ")),
            )
        }
        _ => AgentError::invalid(e.to_string()),
    })?;
    let after: Vec<String> = p.after.iter().map(|x| x.display(model)).collect();
    if dry_run || p.ops.is_empty() {
        return Ok(ApplyResult {
            index: g.index,
            changed: !p.ops.is_empty(),
            ops: p.ops,
            after,
        });
    }
    let mut new_ids = BTreeMap::new();
    let of = p.ops.len();
    for (step, op) in p.ops.iter().enumerate() {
        if let Err(mut e) = nvml::execute(session, &dev, &host, op, &mut new_ids) {
            e.message = format!(
                "step {} of {of} ({op}) failed: {}; the GPU holds the state after step {step}, and applying again continues from it",
                step + 1,
                e.message
            );
            e.done = p.ops[..step].to_vec();
            return Err(e);
        }
        emit(Event::Nvml {
            gpu: g.index,
            step: step + 1,
            of,
            op: op.clone(),
        });
    }
    // Report what NVML now says, not what the plan expected.
    let (gis, _) = nvml::instances(session, &dev, g.index, &host)?;
    let mut placed: Vec<Placed> = nvml::current(&gis).iter().map(|c| c.placed()).collect();
    placed.sort();
    Ok(ApplyResult {
        index: g.index,
        changed: true,
        ops: p.ops,
        after: placed.iter().map(|x| x.display(model)).collect(),
    })
}
