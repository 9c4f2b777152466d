//! `mig.mode{ enabled, gpus, reset, on_busy, timeout }`: switch MIG mode on the host's
//! MIG-capable GPUs (or those listed), resetting exactly the GPUs whose change stays
//! pending (Ampere) unless `reset = false`. Turning MIG off destroys idle instances
//! first; a GPU with an instance in use is left as it is and fails the task (the other
//! GPUs still switch), or with `on_busy = "fail_host"` nothing switches. The switching
//! itself is shared with `mig.apply{ mig_parted = ... }`.

use std::collections::BTreeMap;
use std::time::Duration;

use migfleet_mig::find_model;
use migfleet_proto::{ErrorKind, Facts, GpuFacts, OnBusy, Op, Reply};

use super::{Args, BUSY_HINTS, CallFailure, Lost, TaskCx, busy_instances, gpu_base, select_gpus};
use crate::fleet::{GpuResult, ModeChange, TaskResult};
use crate::report::text::ranges;

pub const KEYS: &[&str] = &[
    "enabled",
    "gpus",
    "reset",
    "on_busy",
    "timeout",
    "reboot",
    "reboot_timeout",
];

/// `reboot = "never" | "if_needed"`: may a mode change still pending after the resets
/// reboot the host.
/// `IfNeeded` carries how long the host may take to come back (`reboot_timeout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RebootWhen {
    #[default]
    Never,
    IfNeeded(Duration),
}

impl RebootWhen {
    pub fn parse(a: &Args<'_>) -> Result<RebootWhen, String> {
        let timeout = a.seconds("reboot_timeout")?;
        match a.string("reboot")?.as_deref() {
            None | Some("never") if timeout.is_some() => Err(format!(
                "{}: `reboot_timeout` needs reboot = \"if_needed\"",
                a.name()
            )),
            None | Some("never") => Ok(RebootWhen::Never),
            Some("if_needed") => Ok(RebootWhen::IfNeeded(
                timeout.unwrap_or(super::reboot::DEFAULT_TIMEOUT),
            )),
            Some(other) => Err(format!(
                "{}: `reboot` must be \"never\" or \"if_needed\", got \"{other}\"",
                a.name()
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct MigMode {
    pub enabled: bool,
    pub gpus: Option<Vec<u32>>,
    /// Reset GPUs whose change stays pending (default true).
    pub reset: bool,
    pub on_busy: OnBusy,
    pub timeout: Option<Duration>,
    pub reboot: RebootWhen,
}

impl MigMode {
    pub fn parse(a: &Args<'_>) -> Result<MigMode, String> {
        Ok(MigMode {
            enabled: a
                .bool("enabled")?
                .ok_or("mig.mode needs enabled = true or enabled = false")?,
            gpus: a.gpus()?,
            reset: a.bool("reset")?.unwrap_or(true),
            on_busy: a.on_busy()?,
            timeout: a.seconds("timeout")?,
            reboot: RebootWhen::parse(a)?,
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let facts = cx.facts().await?;
        let selected = match select_gpus(&facts, self.gpus.as_deref()) {
            Ok(s) => s,
            Err(e) => return Ok(TaskResult::failed(format!("mig.mode: {e}"))),
        };
        let wants: Vec<(u32, bool)> = selected.iter().map(|g| (g.index, self.enabled)).collect();
        let opts = SwitchOptions {
            reset: self.reset,
            on_busy: self.on_busy,
            timeout: self.timeout,
            reboot: self.reboot,
        };
        let sw = switch(cx, &facts, &wants, &opts).await?;
        let on = if self.enabled { "on" } else { "off" };
        let changed: Vec<u32> = sw
            .gpus
            .iter()
            .filter(|g| g.changed && g.error.is_none())
            .map(|g| g.index)
            .collect();
        let failed: Vec<u32> = sw
            .gpus
            .iter()
            .filter(|g| g.error.is_some())
            .map(|g| g.index)
            .collect();
        let would = if cx.check { "would turn" } else { "turned" };
        let rebooted = sw
            .rebooted
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let message = if let Some(f) = &sw.fatal {
            f.clone()
        } else if !failed.is_empty() {
            format!(
                "MIG could not be turned {on}: GPU {}{rebooted}",
                ranges(&failed)
            )
        } else if !changed.is_empty() {
            format!("{would} MIG {on} on GPU {}{rebooted}", ranges(&changed))
        } else if sw.gpus.is_empty() {
            "no MIG-capable GPU".to_string()
        } else {
            let all: Vec<u32> = sw.gpus.iter().map(|g| g.index).collect();
            format!("MIG already {on}: GPU {}", ranges(&all))
        };
        Ok(sw.into_result(message))
    }
}

/// How to switch.
pub(super) struct SwitchOptions {
    pub reset: bool,
    pub on_busy: OnBusy,
    pub timeout: Option<Duration>,
    pub reboot: RebootWhen,
}

/// What switching did, per GPU; `fatal` when the whole switch was refused.
pub(super) struct Switched {
    pub gpus: Vec<GpuResult>,
    pub fatal: Option<String>,
    pub hints: Vec<String>,
    /// The host was rebooted for pending GPUs: how that went.
    pub rebooted: Option<String>,
}

impl Switched {
    pub fn into_result(self, message: String) -> TaskResult {
        let fatal = self.fatal.is_some();
        let mut r = TaskResult::from_gpus(message, self.gpus);
        if fatal {
            r.status = crate::fleet::Status::Failed;
        }
        for h in self.hints {
            r = r.hint(h);
        }
        r
    }
}

/// The catalog says a mode change on this GPU waits for a reset (Ampere).
fn needs_reset(g: &GpuFacts) -> bool {
    g.model
        .as_deref()
        .and_then(|m| find_model(m).ok())
        .is_some_and(|m| m.generation.mode_change_needs_reset())
}

const RESET_HINT: &str = "the reset runs `nvidia-smi --gpu-reset -i {bus_ids}` unless the host sets migfleet_gpu_reset_command (an argv; `{bus_ids}` becomes the GPUs' PCI bus ids); reset = false leaves the change pending until you reset or reboot";

/// Switches each `(gpu, enabled)` of `wants` (GPUs already so are left alone). In check
/// mode nothing is sent: the outcome comes from `facts` and the catalog, and the facts
/// later tasks see are updated.
pub(super) async fn switch(
    cx: &mut TaskCx<'_>,
    facts: &Facts,
    wants: &[(u32, bool)],
    opts: &SwitchOptions,
) -> Result<Switched, Lost> {
    let mut results: BTreeMap<u32, GpuResult> = BTreeMap::new();
    let mut to_change: Vec<(u32, bool)> = Vec::new();
    for (i, want) in wants {
        let Some(g) = facts.gpus.iter().find(|g| g.index == *i) else {
            continue;
        };
        let Some(m) = &g.mig else { continue };
        let mut r = gpu_base(g);
        r.mode = Some(ModeChange {
            before: m.current,
            after: m.current,
            reset: false,
            reboot: false,
        });
        results.insert(*i, r);
        if m.current != *want || m.pending != *want {
            to_change.push((*i, *want));
        }
    }
    let mut sw = Switched {
        gpus: Vec::new(),
        fatal: None,
        hints: Vec::new(),
        rebooted: None,
    };
    if cx.check {
        check_switch(cx, facts, &to_change, opts, &mut results, &mut sw);
    } else {
        real_switch(cx, &to_change, opts, &mut results, &mut sw).await?;
    }
    sw.gpus = results.into_values().collect();
    Ok(sw)
}

async fn real_switch(
    cx: &mut TaskCx<'_>,
    to_change: &[(u32, bool)],
    opts: &SwitchOptions,
    results: &mut BTreeMap<u32, GpuResult>,
    sw: &mut Switched,
) -> Result<(), Lost> {
    let mut pending: Vec<(u32, bool)> = Vec::new();
    for enabled in [false, true] {
        let list: Vec<u32> = to_change
            .iter()
            .filter(|(_, w)| *w == enabled)
            .map(|(i, _)| *i)
            .collect();
        if list.is_empty() {
            continue;
        }
        let op = Op::SetMigMode {
            gpus: list,
            enabled,
            on_busy: opts.on_busy,
        };
        match cx.call(op, opts.timeout).await {
            Ok(Reply::SetMigMode { gpus }) => {
                for m in gpus {
                    let Some(r) = results.get_mut(&m.index) else {
                        continue;
                    };
                    r.destroyed += m.destroyed;
                    if let Some(b) = m.blocked {
                        r.error = Some(b.message);
                        sw.hints.extend(BUSY_HINTS.iter().map(|h| h.to_string()));
                        continue;
                    }
                    r.changed = m.changed;
                    if let Some(mode) = &mut r.mode {
                        mode.after = m.current;
                    }
                    if m.needs_reset {
                        pending.push((m.index, enabled));
                    }
                }
            }
            Ok(_) => {
                sw.fatal = Some("mig.mode: unexpected reply from the agent".into());
                return Ok(());
            }
            Err(CallFailure::Refused { kind, message }) => {
                if kind == ErrorKind::InUse {
                    sw.hints.extend(BUSY_HINTS.iter().map(|h| h.to_string()));
                }
                sw.fatal = Some(message);
                return Ok(());
            }
            Err(CallFailure::Lost(l)) => return Err(l),
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    reset_pending(cx, &pending, opts, results, sw).await?;
    let still: Vec<(u32, bool)> = pending
        .iter()
        .copied()
        .filter(|(i, _)| results.get(i).is_some_and(|r| r.error.is_some()))
        .collect();
    if let RebootWhen::IfNeeded(timeout) = opts.reboot
        && !still.is_empty()
    {
        reboot_for_pending(cx, &still, timeout, results, sw).await?;
    }
    Ok(())
}

/// Reboots the host for GPUs whose mode change is still pending, once per run (a GPU
/// still pending after that reboot fails, and the host is not rebooted again), then
/// checks each GPU's mode.
async fn reboot_for_pending(
    cx: &mut TaskCx<'_>,
    still: &[(u32, bool)],
    timeout: Duration,
    results: &mut BTreeMap<u32, GpuResult>,
    sw: &mut Switched,
) -> Result<(), Lost> {
    let gpus: Vec<u32> = still.iter().map(|(i, _)| *i).collect();
    if !cx.rebooted_for_pending.is_empty() {
        let before = ranges(cx.rebooted_for_pending);
        for i in &gpus {
            if let Some(r) = results.get_mut(i) {
                r.error = Some(format!(
                    "MIG mode is still pending, and this run already rebooted the host once for GPU {before}: not rebooting again (reboot-loop guard)"
                ));
            }
        }
        return Ok(());
    }
    // A reboot nobody asked for in so many words must not kill work: GPU processes
    // anywhere on the host hold it off (a drain{} task first stops them).
    let facts = cx.real_facts().await?;
    let users: Vec<String> = facts
        .gpus
        .iter()
        .flat_map(|g| {
            gpu_pids(g)
                .into_iter()
                .map(move |pid| format!("{pid} (GPU {})", g.index))
        })
        .collect();
    let refused = super::reboot::refuse_local(cx)
        .map(|why| format!("the host would need a reboot, but {why}"))
        .or_else(|| {
            (!users.is_empty()).then(|| {
                format!(
                    "not rebooting the host while processes use its GPUs: {}; drain first",
                    users.join(", ")
                )
            })
        });
    if let Some(why) = refused {
        for i in &gpus {
            if let Some(r) = results.get_mut(i) {
                r.error = Some(format!("MIG mode is still pending: {why}"));
            }
        }
        return Ok(());
    }
    *cx.rebooted_for_pending = gpus.clone();
    let opts = super::reboot::Reboot {
        timeout,
        ..super::reboot::Reboot::default()
    };
    let done = match super::reboot::reboot(cx, &opts).await {
        Ok(d) => d,
        Err(super::reboot::RebootFailure::Refused(m)) => {
            for i in &gpus {
                if let Some(r) = results.get_mut(i) {
                    r.error = Some(format!("the host needs a reboot for this GPU: {m}"));
                }
            }
            return Ok(());
        }
        Err(super::reboot::RebootFailure::Lost(l)) => return Err(l),
    };
    sw.rebooted = Some(done.summary());
    sw.hints.retain(|h| h != RESET_HINT);
    let facts = cx.real_facts().await?;
    for (i, want) in still {
        let (Some(g), Some(r)) = (
            facts.gpus.iter().find(|g| g.index == *i),
            results.get_mut(i),
        ) else {
            continue;
        };
        let Some(m) = &g.mig else { continue };
        if m.current == *want {
            r.error = None;
            r.changed = true;
            if let Some(mode) = &mut r.mode {
                mode.after = m.current;
                mode.reboot = true;
            }
        } else {
            r.error = Some(format!(
                "MIG mode is still pending after rebooting the host (now {}, pending {}): the platform does not apply it at boot; migfleet does not reboot it again (reboot-loop guard)",
                onoff(m.current),
                onoff(m.pending)
            ));
        }
    }
    Ok(())
}

fn onoff(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Resets the GPUs whose change is pending, when allowed; a GPU still pending afterwards
/// gets an error saying why.
async fn reset_pending(
    cx: &mut TaskCx<'_>,
    pending: &[(u32, bool)],
    opts: &SwitchOptions,
    results: &mut BTreeMap<u32, GpuResult>,
    sw: &mut Switched,
) -> Result<(), Lost> {
    let gpus: Vec<u32> = pending.iter().map(|(i, _)| *i).collect();
    if !opts.reset {
        for i in &gpus {
            if let Some(r) = results.get_mut(i) {
                r.error = Some(
                    "the mode change waits for a GPU reset (Ampere), and reset = false: reset the GPU or reboot the host (reboot = \"if_needed\")".into(),
                );
            }
        }
        return Ok(());
    }
    let op = Op::ResetGpus {
        gpus: gpus.clone(),
        command: cx.conn.gpu_reset_command.clone(),
    };
    match cx.call(op, None).await {
        Ok(Reply::ResetGpus { gpus: after }) => {
            for m in after {
                let want = pending
                    .iter()
                    .find(|(i, _)| *i == m.index)
                    .is_some_and(|(_, w)| *w);
                let Some(r) = results.get_mut(&m.index) else {
                    continue;
                };
                if let Some(mode) = &mut r.mode {
                    mode.after = m.current;
                    mode.reset = true;
                }
                if m.current != want {
                    r.error = Some(
                        "MIG mode is still pending after the GPU reset; the host needs a reboot"
                            .into(),
                    );
                }
            }
        }
        Ok(_) => sw.fatal = Some("mig.mode: unexpected reply from the agent".into()),
        Err(CallFailure::Refused { message, .. }) => {
            for i in &gpus {
                if let Some(r) = results.get_mut(i) {
                    r.error = Some(format!("GPU reset failed: {message}"));
                }
            }
            sw.hints.push(RESET_HINT.to_string());
        }
        Err(CallFailure::Lost(l)) => return Err(l),
    }
    Ok(())
}

/// The processes that use the GPU, on the whole GPU or in an instance (a reset would be
/// refused while there are any).
fn gpu_pids(g: &GpuFacts) -> Vec<u32> {
    let in_instances = g.mig.iter().flat_map(|m| {
        m.instances
            .iter()
            .flat_map(|i| i.cis.iter().flat_map(|c| c.processes.iter()))
    });
    g.processes
        .iter()
        .chain(in_instances)
        .map(|p| p.pid)
        .collect()
}

/// What switching would do, from the facts: busy instances block turning MIG off, and
/// an Ampere GPU needs a reset (allowed, and with no processes on it).
fn check_switch(
    cx: &mut TaskCx<'_>,
    facts: &Facts,
    to_change: &[(u32, bool)],
    opts: &SwitchOptions,
    results: &mut BTreeMap<u32, GpuResult>,
    sw: &mut Switched,
) {
    let mut blocked = Vec::new();
    for (i, want) in to_change {
        let (Some(g), Some(r)) = (
            facts.gpus.iter().find(|g| g.index == *i),
            results.get_mut(i),
        ) else {
            continue;
        };
        let Some(m) = &g.mig else { continue };
        let busy = busy_instances(g);
        if !*want && m.current && !busy.is_empty() {
            r.error = Some(format!(
                "cannot turn MIG off while instances are in use: {}",
                busy.join("; ")
            ));
            blocked.push(format!("GPU {i}: {}", busy.join("; ")));
            continue;
        }
        if !*want && m.current {
            r.destroyed = m.instances.len();
        }
        let reset = needs_reset(g) && m.current != *want;
        let reboot_ok = matches!(opts.reboot, RebootWhen::IfNeeded(_));
        let pids = gpu_pids(g);
        if reset && reboot_ok && (!opts.reset || !pids.is_empty()) {
            if let Some(busy) = facts.gpus.iter().find(|g| !gpu_pids(g).is_empty()) {
                r.error = Some(format!(
                    "MIG mode would stay pending: the host would need a reboot, and processes use GPU {}; drain first",
                    busy.index
                ));
                continue;
            }
            r.changed = true;
            r.mode = Some(ModeChange {
                before: m.current,
                after: *want,
                reset: false,
                reboot: true,
            });
            sw.rebooted = Some("would reboot the host for it".into());
            continue;
        }
        if reset && !opts.reset {
            r.changed = true;
            r.error = Some(
                "the mode change would wait for a GPU reset (Ampere), and reset = false".into(),
            );
            continue;
        }
        if reset && !pids.is_empty() {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            r.error = Some(format!(
                "the GPU reset this change needs would be refused: processes {} use the GPU; drain first",
                pids.join(", ")
            ));
            continue;
        }
        r.changed = true;
        r.mode = Some(ModeChange {
            before: m.current,
            after: *want,
            reset,
            reboot: false,
        });
    }
    if !blocked.is_empty() {
        sw.hints.extend(BUSY_HINTS.iter().map(|h| h.to_string()));
        if opts.on_busy == OnBusy::FailHost {
            for r in results.values_mut() {
                if r.error.is_none() {
                    r.changed = false;
                    r.destroyed = 0;
                    if let Some(m) = &mut r.mode {
                        m.after = m.before;
                        m.reset = false;
                    }
                }
            }
            sw.fatal = Some(format!(
                "nothing would change (on_busy = fail_host): {}",
                blocked.join("; ")
            ));
            return;
        }
    }
    // What the tasks after this one would find.
    let mut next = facts.clone();
    for g in &mut next.gpus {
        let Some(r) = results.get(&g.index) else {
            continue;
        };
        if !r.changed || r.error.is_some() {
            continue;
        }
        if let (Some(m), Some(mode)) = (&mut g.mig, &r.mode) {
            m.current = mode.after;
            m.pending = mode.after;
            m.instances.clear();
        }
    }
    cx.project(next);
}
