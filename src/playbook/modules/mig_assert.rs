//! `mig.assert{ enabled, layout | policy | mig_parted, gpus }`: fail the host unless its
//! GPUs are as described; never changes anything. A layout is as asserted when the
//! planner finds nothing to do, so counts (no `@start`, or a mig-parted config) compare
//! as counts and pinned placements as placements. In check mode it asserts the state the
//! earlier tasks would have left.

use migfleet_proto::{GpuLayout, Reply};

use super::mig_apply::ApplyRequest;
use super::target::{Target, Wanted};
use super::{Args, CallFailure, Lost, TaskCx, gpu_base, labels, select_gpus};
use crate::fleet::{GpuResult, TaskResult};
use crate::report::text::{layout, ranges};

pub const KEYS: &[&str] = &["enabled", "layout", "policy", "mig_parted", "gpus"];

#[derive(Clone, Debug)]
pub struct MigAssert {
    pub enabled: Option<bool>,
    pub target: Option<Target>,
    pub gpus: Option<Vec<u32>>,
}

impl MigAssert {
    pub fn parse(a: &Args<'_>) -> Result<MigAssert, String> {
        let m = MigAssert {
            enabled: a.bool("enabled")?,
            target: Target::parse(a, false)?,
            gpus: a.gpus()?,
        };
        if m.enabled.is_none() && m.target.is_none() {
            return Err(
                "mig.assert needs something to check: enabled = true/false, a layout, a policy or a mig_parted config"
                    .into(),
            );
        }
        Ok(m)
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let facts = cx.facts().await?;
        let selected = match select_gpus(&facts, self.gpus.as_deref()) {
            Ok(s) => s,
            Err(e) => return Ok(TaskResult::failed(format!("mig.assert: {e}"))),
        };
        let mut results: Vec<GpuResult> = selected
            .iter()
            .map(|g| {
                let mut r = gpu_base(g);
                r.before = Some(labels(g));
                r.after = r.before.clone();
                r
            })
            .collect();
        let on_of = |i: u32| {
            facts
                .gpus
                .iter()
                .find(|g| g.index == i)
                .and_then(|g| g.mig.as_ref())
                .is_some_and(|m| m.current)
        };
        let onoff = |b: bool| if b { "on" } else { "off" };
        let mut expect: Vec<(u32, Option<bool>)> =
            selected.iter().map(|g| (g.index, self.enabled)).collect();
        let mut layouts = Vec::new();
        if let Some(target) = &self.target {
            let view = cx.view(&facts);
            let target = match target.bind(cx).await {
                Ok(t) => t,
                Err(e) => return Ok(TaskResult::failed(format!("mig.assert: {e}"))),
            };
            let wanted = match target.resolve_for(cx, &facts, &view, &selected).await {
                Ok(Ok(w)) => w,
                Ok(Err(e)) => return Ok(TaskResult::failed(format!("mig.assert: {e}"))),
                Err(stuck) => return Err(Lost::stuck(stuck)),
            };
            for (i, w) in wanted {
                let mode = match w {
                    Wanted::Leave => continue,
                    Wanted::MigOff => false,
                    Wanted::Layout(instances) => {
                        layouts.push(GpuLayout {
                            index: i,
                            instances,
                        });
                        true
                    }
                };
                if let Some(e) = expect.iter_mut().find(|(g, _)| *g == i) {
                    e.1 = Some(mode);
                }
            }
        }
        for (i, want) in &expect {
            if let Some(want) = want
                && on_of(*i) != *want
                && let Some(r) = results.iter_mut().find(|r| r.index == *i)
            {
                r.error = Some(format!(
                    "MIG is {}, expected {}",
                    onoff(!want),
                    onoff(*want)
                ));
            }
        }
        layouts.retain(|l| on_of(l.index));
        if !layouts.is_empty() {
            let request = ApplyRequest {
                dry_run: true,
                allow_destroy_in_use: false,
                on_busy: Default::default(),
                timeout: None,
            };
            match request.send(cx, &facts, layouts).await {
                Ok(Reply::Apply { gpus }) => {
                    for a in gpus {
                        let differs = a.changed || a.blocked.is_some();
                        if let (true, Some(r)) =
                            (differs, results.iter_mut().find(|r| r.index == a.index))
                        {
                            let want: Vec<String> =
                                a.after.iter().map(|p| p.label.clone()).collect();
                            r.error = Some(if a.blocked.is_some() {
                                format!(
                                    "has {}, which differs from the asserted layout",
                                    layout(r.after.as_deref().unwrap_or_default())
                                )
                            } else {
                                format!(
                                    "has {}, asserted {} ({} NVML operation(s) away)",
                                    layout(r.after.as_deref().unwrap_or_default()),
                                    layout(&want),
                                    a.ops.len()
                                )
                            });
                        }
                    }
                }
                Ok(_) => {
                    return Ok(TaskResult::failed(
                        "mig.assert: unexpected reply from the agent",
                    ));
                }
                Err(CallFailure::Refused { message, .. }) => {
                    return Ok(TaskResult::failed(format!("mig.assert: {message}")));
                }
                Err(CallFailure::Lost(l)) => return Err(l),
            }
        }
        let failed: Vec<u32> = results
            .iter()
            .filter(|r| r.error.is_some())
            .map(|r| r.index)
            .collect();
        let message = if failed.is_empty() {
            format!("{} GPU(s) as asserted", results.len())
        } else {
            format!("GPU {} not as asserted", ranges(&failed))
        };
        Ok(TaskResult::from_gpus(message, results))
    }
}
