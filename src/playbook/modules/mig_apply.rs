//! `mig.apply{ layout | policy | mig_parted, gpus, allow_destroy_in_use, on_busy, reset, reboot,
//! timeout }`: make each GPU's instances match what the target asks, with the fewest NVML
//! operations, never destroying an instance in use. A GPU that an instance in use keeps
//! from changing fails the task and is named with its PIDs; the host's other GPUs are
//! still partitioned (`on_busy = "fail_host"` leaves the whole host untouched instead).
//! With `mig_parted`, MIG mode follows each entry's `mig-enabled` as in mig-parted.

use std::collections::BTreeMap;
use std::time::Duration;

use migfleet_mig::plan::Op as NvmlOp;
use migfleet_proto::{
    AssumedGpu, ComputeInstance, ErrorKind, Facts, GpuInstance, GpuLayout, OnBusy, Op,
    PlacedInstance, Process, Reply,
};

use super::mig_mode::{SwitchOptions, switch};
use super::target::{Target, Wanted};
use super::{Args, BUSY_HINTS, CallFailure, Lost, TaskCx, gpu_base, select_gpus};
use crate::fleet::{GpuResult, Status, TaskResult};
use crate::report::text::ranges;

pub const KEYS: &[&str] = &[
    "layout",
    "policy",
    "mig_parted",
    "gpus",
    "allow_destroy_in_use",
    "on_busy",
    "reset",
    "reboot",
    "reboot_timeout",
    "timeout",
];

#[derive(Clone, Debug)]
pub struct MigApply {
    pub target: Target,
    pub gpus: Option<Vec<u32>>,
    pub allow_destroy_in_use: bool,
    pub on_busy: OnBusy,
    /// `mig_parted` only: reset GPUs whose mode change stays pending (default true).
    pub reset: bool,
    /// `mig_parted` only: may GPUs still pending after the resets reboot the host.
    pub reboot: super::mig_mode::RebootWhen,
    pub timeout: Option<Duration>,
}

/// GI ids at or above this in check-mode facts stand for instances an earlier task would
/// create: they do not exist yet.
pub const PLANNED_GI_ID: u32 = 0xFFFF_0000;

impl MigApply {
    pub fn parse(a: &Args<'_>) -> Result<MigApply, String> {
        let Some(target) = Target::parse(a, true)? else {
            return Err("mig.apply needs a layout, a policy or a mig_parted config".into());
        };
        let reset = a.bool("reset")?;
        if reset.is_some() && !target.sets_mode() {
            return Err(
                "mig.apply: `reset` only applies with mig_parted (which switches MIG mode); put it on mig.mode otherwise"
                    .into(),
            );
        }
        let reboot = super::mig_mode::RebootWhen::parse(a)?;
        if reboot != super::mig_mode::RebootWhen::Never && !target.sets_mode() {
            return Err(
                "mig.apply: `reboot` only applies with mig_parted (which switches MIG mode); put it on mig.mode otherwise"
                    .into(),
            );
        }
        Ok(MigApply {
            target,
            gpus: a.gpus()?,
            allow_destroy_in_use: a.bool("allow_destroy_in_use")?.unwrap_or(false),
            on_busy: a.on_busy()?,
            reset: reset.unwrap_or(true),
            reboot,
            timeout: a.seconds("timeout")?,
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let facts = cx.facts().await?;
        let selected = match select_gpus(&facts, self.gpus.as_deref()) {
            Ok(s) => s,
            Err(e) => return Ok(TaskResult::failed(format!("mig.apply: {e}"))),
        };
        let view = cx.view(&facts);
        let target = match self.target.bind(cx).await {
            Ok(t) => t,
            Err(e) => return Ok(TaskResult::failed(format!("mig.apply: {e}"))),
        };
        let wanted = match target.resolve_for(cx, &facts, &view, &selected).await {
            Ok(Ok(w)) => w,
            Ok(Err(e)) => return Ok(TaskResult::failed(format!("mig.apply: {e}"))),
            Err(stuck) => return Err(Lost::stuck(stuck)),
        };
        let mut results: BTreeMap<u32, GpuResult> = BTreeMap::new();
        let mut hints: Vec<String> = Vec::new();

        // mig-parted's `mig-enabled`: switch modes first, as mig-parted does.
        let facts = if self.target.sets_mode() {
            let modes: Vec<(u32, bool)> = wanted
                .iter()
                .filter_map(|(i, w)| match w {
                    Wanted::Layout(_) => Some((*i, true)),
                    Wanted::MigOff => Some((*i, false)),
                    Wanted::Leave => None,
                })
                .collect();
            let opts = SwitchOptions {
                reset: self.reset,
                on_busy: self.on_busy,
                timeout: self.timeout,
                reboot: self.reboot,
            };
            let sw = switch(cx, &facts, &modes, &opts).await?;
            if sw.fatal.is_some() {
                let msg = sw.fatal.clone().unwrap_or_default();
                return Ok(sw.into_result(format!("mig.apply: {msg}")));
            }
            hints.extend(sw.hints);
            for r in sw.gpus {
                results.insert(r.index, r);
            }
            cx.facts().await?
        } else {
            facts
        };

        let mut layouts = Vec::new();
        for (i, w) in &wanted {
            let Wanted::Layout(instances) = w else {
                continue;
            };
            if results.get(i).is_some_and(|r| r.error.is_some()) {
                continue;
            }
            let Some(g) = facts.gpus.iter().find(|g| g.index == *i) else {
                continue;
            };
            let on = g.mig.as_ref().is_some_and(|m| m.current);
            if !on {
                let r = results.entry(*i).or_insert_with(|| gpu_base(g));
                r.error =
                    Some("MIG mode is off: put mig.mode{ enabled = true } before this task".into());
                continue;
            }
            layouts.push(GpuLayout {
                index: *i,
                instances: instances.clone(),
            });
        }
        let mut fatal = None;
        if !layouts.is_empty() {
            let request = ApplyRequest {
                dry_run: cx.check,
                allow_destroy_in_use: self.allow_destroy_in_use,
                on_busy: self.on_busy,
                timeout: self.timeout,
            };
            match request.send(cx, &facts, layouts).await {
                Ok(Reply::Apply { gpus }) => {
                    for a in &gpus {
                        let base = facts
                            .gpus
                            .iter()
                            .find(|g| g.index == a.index)
                            .map(gpu_base)
                            .unwrap_or_default();
                        let r = results.entry(a.index).or_insert(base);
                        r.index = a.index;
                        r.before = Some(a.before.iter().map(|p| p.label.clone()).collect());
                        r.after = Some(a.after.iter().map(|p| p.label.clone()).collect());
                        r.destroyed += count(&a.ops, |o| matches!(o, NvmlOp::DestroyGi { .. }));
                        r.created += count(&a.ops, |o| matches!(o, NvmlOp::CreateGi { .. }));
                        r.ops = a.ops.clone();
                        r.changed |= a.changed;
                        if let Some(b) = &a.blocked {
                            r.error = Some(b.message.clone());
                            hints.extend(BUSY_HINTS.iter().map(|h| h.to_string()));
                        }
                    }
                    if cx.check {
                        project(cx, &facts, &gpus);
                    }
                }
                Ok(_) => fatal = Some("mig.apply: unexpected reply from the agent".to_string()),
                Err(CallFailure::Refused { kind, message }) => {
                    if kind == ErrorKind::InUse {
                        hints.extend(BUSY_HINTS.iter().map(|h| h.to_string()));
                    }
                    fatal = Some(format!("mig.apply: {message}"));
                }
                Err(CallFailure::Lost(l)) => return Err(l),
            }
        }
        let gpus: Vec<GpuResult> = results.into_values().collect();
        let message = fatal.clone().unwrap_or_else(|| summary(&gpus, cx.check));
        let mut r = TaskResult::from_gpus(message, gpus);
        if fatal.is_some() {
            r.status = Status::Failed;
        }
        for h in hints {
            r = r.hint(h);
        }
        Ok(r)
    }
}

fn count(ops: &[NvmlOp], pick: impl Fn(&NvmlOp) -> bool) -> usize {
    ops.iter().filter(|o| pick(o)).count()
}

/// `repartitioned GPU 0-3 with 16 NVML operation(s); GPU 4 left as it is`.
fn summary(gpus: &[GpuResult], check: bool) -> String {
    let changed: Vec<u32> = gpus
        .iter()
        .filter(|g| g.changed && g.error.is_none())
        .map(|g| g.index)
        .collect();
    let failed: Vec<u32> = gpus
        .iter()
        .filter(|g| g.error.is_some())
        .map(|g| g.index)
        .collect();
    let ops: usize = gpus.iter().map(|g| g.ops.len()).sum();
    let mut parts = Vec::new();
    if !changed.is_empty() {
        parts.push(format!(
            "{} GPU {} with {ops} NVML operation(s)",
            if check {
                "would repartition"
            } else {
                "repartitioned"
            },
            ranges(&changed)
        ));
    }
    if !failed.is_empty() {
        parts.push(format!("GPU {} left as it is", ranges(&failed)));
    }
    if parts.is_empty() {
        return if gpus.is_empty() {
            "no GPU to partition".to_string()
        } else {
            format!("{} GPU(s) already as wanted", gpus.len())
        };
    }
    parts.join("; ")
}

/// The instances of `g` as the protocol describes them.
pub(super) fn placed(g: &migfleet_proto::GpuFacts) -> Vec<PlacedInstance> {
    let Some(m) = &g.mig else {
        return Vec::new();
    };
    let labels = super::labels(g);
    let mut sorted: Vec<&GpuInstance> = m.instances.iter().collect();
    sorted.sort_by_key(|i| (i.start, i.gi_id));
    sorted
        .into_iter()
        .zip(labels)
        .map(|(i, label)| {
            let mut cis: Vec<u8> = i.cis.iter().map(|c| c.slices).collect();
            cis.sort_by(|a, b| b.cmp(a));
            PlacedInstance {
                gi_id: (i.gi_id < PLANNED_GI_ID).then_some(i.gi_id),
                profile: i.profile.clone(),
                start: i.start,
                cis,
                busy: i.cis.iter().any(|c| !c.processes.is_empty()),
                label,
            }
        })
        .collect()
}

/// An `apply` request to the agent, shared by `mig.apply` and `mig.assert` (a dry run).
pub(super) struct ApplyRequest {
    pub dry_run: bool,
    pub allow_destroy_in_use: bool,
    pub on_busy: OnBusy,
    pub timeout: Option<Duration>,
}

impl ApplyRequest {
    /// Sends it for `layouts`; in check mode, GPUs that earlier tasks would have changed
    /// are planned from that state.
    pub(super) async fn send(
        &self,
        cx: &mut TaskCx<'_>,
        facts: &Facts,
        layouts: Vec<GpuLayout>,
    ) -> Result<Reply, CallFailure> {
        let assume = if cx.check {
            assumptions(cx, facts, &layouts)
                .await
                .map_err(CallFailure::Lost)?
        } else {
            Vec::new()
        };
        let op = Op::Apply {
            gpus: layouts,
            dry_run: self.dry_run,
            allow_destroy_in_use: self.allow_destroy_in_use,
            on_busy: self.on_busy,
            assume,
        };
        cx.call(op, self.timeout).await
    }
}

/// Check mode: GPUs whose instances earlier tasks would have changed are planned from
/// that state, not from what NVML reports.
async fn assumptions(
    cx: &mut TaskCx<'_>,
    facts: &Facts,
    layouts: &[GpuLayout],
) -> Result<Vec<AssumedGpu>, Lost> {
    if cx.projected.is_none() {
        return Ok(Vec::new());
    }
    let real = cx.real_facts().await?;
    let mut out = Vec::new();
    for l in layouts {
        let (Some(p), Some(r)) = (
            facts.gpus.iter().find(|g| g.index == l.index),
            real.gpus.iter().find(|g| g.index == l.index),
        ) else {
            continue;
        };
        let projected = placed(p);
        if projected != placed(r) {
            out.push(AssumedGpu {
                index: l.index,
                instances: projected,
            });
        }
    }
    Ok(out)
}

/// Check mode: the facts after the planned changes, for the tasks that follow.
fn project(cx: &mut TaskCx<'_>, facts: &Facts, results: &[migfleet_proto::ApplyResult]) {
    let mut next = facts.clone();
    for a in results {
        if a.blocked.is_some() || !a.changed {
            continue;
        }
        let Some(g) = next.gpus.iter_mut().find(|g| g.index == a.index) else {
            continue;
        };
        let Some(m) = &mut g.mig else { continue };
        let old = std::mem::take(&mut m.instances);
        let mut planned = PLANNED_GI_ID;
        for p in &a.after {
            let gi_id = p.gi_id.unwrap_or_else(|| {
                planned += 1;
                planned
            });
            let processes: Vec<Process> = old
                .iter()
                .filter(|o| Some(o.gi_id) == p.gi_id)
                .flat_map(|o| o.cis.iter().flat_map(|c| c.processes.iter().copied()))
                .collect();
            let profile = m.profiles.iter().find(|x| x.name == p.profile);
            m.instances.push(GpuInstance {
                gi_id,
                profile: p.profile.clone(),
                profile_id: profile.map_or(0, |x| x.id),
                start: p.start,
                size: profile.map_or(0, |x| x.placement_size),
                cis: p
                    .cis
                    .iter()
                    .enumerate()
                    .map(|(k, slices)| ComputeInstance {
                        ci_id: u32::try_from(k).unwrap_or(0),
                        profile: String::new(),
                        slices: *slices,
                        uuid: None,
                        processes: if k == 0 {
                            processes.clone()
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
            });
        }
    }
    cx.project(next);
}
