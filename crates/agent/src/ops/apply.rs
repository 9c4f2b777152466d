//! `apply`: plan each GPU's change with `migfleet-mig` against the instances NVML reports
//! and the driver's own profile table, then carry the plans out one NVML call at a time,
//! reporting each as an event. Every GPU is planned before any is changed, so a GPU whose
//! plan would destroy an instance in use is known up front: it is skipped (the others
//! change) or, with `on_busy = fail_host`, nothing changes at all. A dry run stops after
//! planning, optionally from an assumed state instead of NVML's.

use super::busy::{self, GiPids};
use crate::error::{AgentError, Result};
use crate::nvml::{self, HostModel, Session};
use migfleet_mig::catalog::GpuModel;
use migfleet_mig::layout::{Placed, Want};
use migfleet_mig::plan::{CurrentCi, CurrentGi, Plan, PlanError, plan};
use migfleet_proto::{
    ApplyResult, AssumedGpu, Blocked, ErrorKind, Event, GpuLayout, OnBusy, PlacedInstance,
};
use std::collections::BTreeMap;

/// What `apply` was asked to do, beyond the layouts.
pub struct Options<'a> {
    pub dry_run: bool,
    pub allow_destroy_in_use: bool,
    pub on_busy: OnBusy,
    pub assume: &'a [AssumedGpu],
}

pub fn apply(
    session: &Session,
    gpus: &[GpuLayout],
    opts: &Options<'_>,
    emit: &mut dyn FnMut(Event),
) -> Result<Vec<ApplyResult>> {
    if !opts.assume.is_empty() && !opts.dry_run {
        return Err(AgentError::new(
            ErrorKind::BadRequest,
            "`assume` is only for dry runs",
        ));
    }
    let mut prepared = Vec::with_capacity(gpus.len());
    for g in gpus {
        let assumed = opts.assume.iter().find(|a| a.index == g.index);
        prepared.push(prepare(session, g, opts, assumed).map_err(|e| e.on_gpu(g.index))?);
    }
    let blocked: Vec<String> = prepared
        .iter()
        .filter_map(|p| {
            p.outcome
                .as_ref()
                .err()
                .map(|b| format!("GPU {}: {}", p.index, b.message))
        })
        .collect();
    if opts.on_busy == OnBusy::FailHost && !blocked.is_empty() {
        return Err(AgentError::new(
            ErrorKind::InUse,
            format!(
                "nothing was changed (on_busy = fail_host): {}",
                blocked.join("; ")
            ),
        ));
    }
    let mut out = Vec::with_capacity(prepared.len());
    for p in prepared {
        out.push(carry_out(session, p, opts.dry_run, emit)?);
    }
    Ok(out)
}

/// One GPU, planned.
struct Prepared {
    index: u32,
    host: HostModel,
    before: Vec<PlacedInstance>,
    /// The plan, or why instances in use keep the GPU from changing.
    outcome: std::result::Result<Plan, Blocked>,
}

fn prepare(
    session: &Session,
    g: &GpuLayout,
    opts: &Options<'_>,
    assumed: Option<&AssumedGpu>,
) -> Result<Prepared> {
    session.indices(&[g.index])?;
    let dev = session.device(g.index)?;
    let Some(mode) = nvml::mig_mode(&dev, g.index)? else {
        return Err(AgentError::invalid("this GPU cannot do MIG"));
    };
    // A dry run plans from the empty GPU that enabling MIG gives, so `--check` can show a
    // whole rollout before any mode changes.
    if !mode.current && !opts.dry_run {
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
        let r = host
            .resolve(&w.profile)
            .map_err(|e| AgentError::invalid(format!("GPU {}: {e}", g.index)))?;
        let mut cis = w.cis.clone().unwrap_or_else(|| vec![r.ci_slices]);
        cis.sort_by(|a, b| b.cmp(a));
        wants.push(Want {
            profile: r.gi,
            start: w.start,
            cis,
        });
    }
    let profiles: Vec<_> = wants.iter().map(|w| w.profile).collect();
    host.check_combination(&profiles)
        .map_err(|e| AgentError::invalid(format!("GPU {}: {e}", g.index)))?;
    let (current, pids) = match assumed {
        Some(a) => assumed_current(model, a)?,
        None => {
            let (gis, _) = nvml::instances(session, &dev, g.index, &host)?;
            let pids = gis
                .iter()
                .map(|gi| {
                    let p = gi
                        .cis
                        .iter()
                        .flat_map(|c| c.processes.iter().map(|p| p.pid));
                    (gi.gi_id, p.collect())
                })
                .collect();
            (nvml::current(&gis), pids)
        }
    };
    let before = placed_instances(model, &current);
    let mut planning = current.clone();
    if opts.allow_destroy_in_use {
        planning
            .iter_mut()
            .flat_map(|g| g.cis.iter_mut())
            .for_each(|c| c.in_use = false);
    }
    let outcome = match plan(model, &planning, &wants) {
        Ok(p) => Ok(p),
        Err(PlanError::InUse { blockers }) => Err(busy::blocked(
            "would destroy instances in use",
            &blockers,
            &pids,
            true,
        )),
        Err(e) => return Err(AgentError::invalid(e.to_string())),
    };
    Ok(Prepared {
        index: g.index,
        host,
        before,
        outcome,
    })
}

/// The planner's view of an assumed state, and the PIDs of its busy GIs (none known).
fn assumed_current(model: &GpuModel, a: &AssumedGpu) -> Result<(Vec<CurrentGi>, GiPids)> {
    // Instances an earlier (check-mode) task would have created have no id yet; give them
    // ids no real GI has so the plan can still name them.
    let mut next_id = a
        .instances
        .iter()
        .filter_map(|i| i.gi_id)
        .max()
        .map_or(1000, |m| m.max(999) + 1);
    let mut out = Vec::with_capacity(a.instances.len());
    for i in &a.instances {
        let r = model
            .resolve(&i.profile)
            .map_err(|e| AgentError::invalid(format!("assumed instance: {e}")))?;
        let gi_id = i.gi_id.unwrap_or_else(|| {
            next_id += 1;
            next_id - 1
        });
        out.push(CurrentGi {
            gi_id,
            profile: r.gi,
            start: i.start,
            cis: i
                .cis
                .iter()
                .enumerate()
                .map(|(k, slices)| CurrentCi {
                    ci_id: u32::try_from(k).unwrap_or(u32::MAX),
                    slices: *slices,
                    in_use: i.busy,
                })
                .collect(),
        });
    }
    Ok((out, BTreeMap::new()))
}

fn carry_out(
    session: &Session,
    p: Prepared,
    dry_run: bool,
    emit: &mut dyn FnMut(Event),
) -> Result<ApplyResult> {
    let model = p.host.model;
    let plan = match p.outcome {
        Err(blocked) => {
            return Ok(ApplyResult {
                index: p.index,
                ops: Vec::new(),
                changed: false,
                after: p.before.clone(),
                before: p.before,
                blocked: Some(blocked),
            });
        }
        Ok(plan) => plan,
    };
    if dry_run || plan.ops.is_empty() {
        let after = planned_after(model, &plan, &p.before);
        return Ok(ApplyResult {
            index: p.index,
            changed: !plan.ops.is_empty(),
            ops: plan.ops,
            before: p.before,
            after,
            blocked: None,
        });
    }
    let dev = session.device(p.index).map_err(|e| e.on_gpu(p.index))?;
    let mut new_ids = BTreeMap::new();
    let of = plan.ops.len();
    for (step, op) in plan.ops.iter().enumerate() {
        if let Err(mut e) = nvml::execute(session, &dev, &p.host, op, &mut new_ids) {
            e.message = format!(
                "step {} of {of} ({op}) failed: {}; the GPU holds the state after step {step}, and applying again continues from it",
                step + 1,
                e.message
            );
            e.done = plan.ops[..step].to_vec();
            return Err(e.on_gpu(p.index));
        }
        emit(Event::Nvml {
            gpu: p.index,
            step: step + 1,
            of,
            op: op.clone(),
        });
    }
    // Report what NVML now says, not what the plan expected.
    let (gis, _) =
        nvml::instances(session, &dev, p.index, &p.host).map_err(|e| e.on_gpu(p.index))?;
    Ok(ApplyResult {
        index: p.index,
        changed: true,
        ops: plan.ops,
        before: p.before,
        after: placed_instances(model, &nvml::current(&gis)),
        blocked: None,
    })
}

/// The instances a plan leads to: kept GIs keep their id and whether they are busy.
fn planned_after(model: &GpuModel, plan: &Plan, before: &[PlacedInstance]) -> Vec<PlacedInstance> {
    plan.after
        .iter()
        .map(|placed| {
            let label = placed.display(model);
            let kept = before.iter().find(|b| {
                b.gi_id.is_some_and(|id| plan.kept.contains(&id))
                    && b.start == placed.start
                    && b.profile == model.profile(placed.profile).name
            });
            PlacedInstance {
                gi_id: kept.and_then(|k| k.gi_id),
                profile: model.profile(placed.profile).name.to_string(),
                start: placed.start,
                cis: placed.cis.clone(),
                busy: kept.is_some_and(|k| k.busy),
                label,
            }
        })
        .collect()
}

/// Instances as the protocol reports them, by placement.
fn placed_instances(model: &GpuModel, current: &[CurrentGi]) -> Vec<PlacedInstance> {
    let mut out: Vec<PlacedInstance> = current
        .iter()
        .map(|g| {
            let placed: Placed = g.placed();
            PlacedInstance {
                gi_id: Some(g.gi_id),
                profile: model.profile(g.profile).name.to_string(),
                start: g.start,
                label: placed.display(model),
                cis: placed.cis,
                busy: g.in_use(),
            }
        })
        .collect();
    out.sort_by_key(|i| (i.start, i.gi_id));
    out
}
