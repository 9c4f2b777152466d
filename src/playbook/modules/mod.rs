//! The modules a task can call, as types. [`ModuleName`] is the one list of their names
//! (the Lua constructors, `--syntax-check`, the LuaLS annotations test and error hints all
//! read it); each module has a strict argument type, checked when the playbook loads
//! ([`args`]), and runs on one host through a [`TaskCx`].
//!
//! A module never fails the run: it returns the host's [`TaskResult`], or [`Lost`] when
//! the host's session is gone.

pub mod args;
mod command;
mod drain;
mod k8s;
mod mig_apply;
mod mig_assert;
mod mig_mode;
mod mig_persist;
pub mod reboot;
mod restore;
pub mod target;

use std::time::Duration;

use migfleet_proto::{ErrorKind as AgentErrorKind, Facts, GpuFacts, Op, Reply};
use serde_json::{Map, Value};

use crate::fleet::session::{Failed, Session};
use crate::fleet::{GpuResult, TaskResult};
use crate::inventory::Connection;

pub use args::{Args, ParseCx};
pub use k8s::{K8sDemand, OperatorMark, fail_on_the_way_out};

/// Every module a playbook can call: the one list of names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleName {
    MigMode,
    MigApply,
    MigAssert,
    MigPersist,
    Drain,
    Restore,
    Command,
    Reboot,
    K8sCordon,
    K8sUncordon,
    K8sLabel,
    K8sAnnotate,
    K8sDrain,
    K8sGpuOperator,
    K8sDemand,
}

impl ModuleName {
    pub const ALL: [ModuleName; 15] = [
        ModuleName::MigMode,
        ModuleName::MigApply,
        ModuleName::MigAssert,
        ModuleName::MigPersist,
        ModuleName::Drain,
        ModuleName::Restore,
        ModuleName::Command,
        ModuleName::Reboot,
        ModuleName::K8sCordon,
        ModuleName::K8sUncordon,
        ModuleName::K8sLabel,
        ModuleName::K8sAnnotate,
        ModuleName::K8sDrain,
        ModuleName::K8sGpuOperator,
        ModuleName::K8sDemand,
    ];

    /// The name as Lua spells it: `mig.apply`, `drain`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleName::MigMode => "mig.mode",
            ModuleName::MigApply => "mig.apply",
            ModuleName::MigAssert => "mig.assert",
            ModuleName::MigPersist => "mig.persist",
            ModuleName::Drain => "drain",
            ModuleName::Restore => "restore",
            ModuleName::Command => "command",
            ModuleName::Reboot => "reboot",
            ModuleName::K8sCordon => "k8s.cordon",
            ModuleName::K8sUncordon => "k8s.uncordon",
            ModuleName::K8sLabel => "k8s.label",
            ModuleName::K8sAnnotate => "k8s.annotate",
            ModuleName::K8sDrain => "k8s.drain",
            ModuleName::K8sGpuOperator => "k8s.gpu_operator",
            ModuleName::K8sDemand => "k8s.demand",
        }
    }

    pub fn from_name(name: &str) -> Option<ModuleName> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// The argument keys the module takes.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            ModuleName::MigMode => mig_mode::KEYS,
            ModuleName::MigApply => mig_apply::KEYS,
            ModuleName::MigAssert => mig_assert::KEYS,
            ModuleName::MigPersist => mig_persist::KEYS,
            ModuleName::Drain => drain::KEYS,
            ModuleName::Restore => restore::KEYS,
            ModuleName::Command => command::KEYS,
            ModuleName::Reboot => reboot::KEYS,
            ModuleName::K8sCordon | ModuleName::K8sUncordon => k8s::CORDON_KEYS,
            ModuleName::K8sLabel | ModuleName::K8sAnnotate => k8s::META_KEYS,
            ModuleName::K8sDrain => k8s::DRAIN_KEYS,
            ModuleName::K8sGpuOperator => k8s::OPERATOR_KEYS,
            ModuleName::K8sDemand => k8s::DEMAND_KEYS,
        }
    }
}

/// A module call with its checked arguments.
#[derive(Clone, Debug)]
pub enum Module {
    MigMode(mig_mode::MigMode),
    MigApply(mig_apply::MigApply),
    MigAssert(mig_assert::MigAssert),
    MigPersist(mig_persist::MigPersist),
    Drain(drain::Drain),
    Restore(restore::Restore),
    Command(command::Command),
    Reboot(reboot::Reboot),
    K8sCordon(k8s::K8sCordon),
    K8sMeta(k8s::K8sMeta),
    K8sDrain(k8s::K8sDrain),
    K8sGpuOperator(k8s::K8sGpuOperator),
    K8sDemand(k8s::K8sDemand),
}

impl Module {
    pub fn name(&self) -> ModuleName {
        match self {
            Module::MigMode(_) => ModuleName::MigMode,
            Module::MigApply(_) => ModuleName::MigApply,
            Module::MigAssert(_) => ModuleName::MigAssert,
            Module::MigPersist(_) => ModuleName::MigPersist,
            Module::Drain(_) => ModuleName::Drain,
            Module::Restore(_) => ModuleName::Restore,
            Module::Command(_) => ModuleName::Command,
            Module::Reboot(_) => ModuleName::Reboot,
            Module::K8sCordon(c) if c.on => ModuleName::K8sCordon,
            Module::K8sCordon(_) => ModuleName::K8sUncordon,
            Module::K8sMeta(m) if m.which == crate::k8s::Meta::Labels => ModuleName::K8sLabel,
            Module::K8sMeta(_) => ModuleName::K8sAnnotate,
            Module::K8sDrain(_) => ModuleName::K8sDrain,
            Module::K8sGpuOperator(_) => ModuleName::K8sGpuOperator,
            Module::K8sDemand(_) => ModuleName::K8sDemand,
        }
    }

    /// Checks and types a call's arguments. The error names the module and the key, and
    /// suggests the closest valid key for an unknown one.
    pub fn parse(
        name: ModuleName,
        table: &mlua::Table,
        cx: &ParseCx<'_>,
    ) -> Result<Module, String> {
        let a = Args::new(name, table, cx)?;
        Ok(match name {
            ModuleName::MigMode => Module::MigMode(mig_mode::MigMode::parse(&a)?),
            ModuleName::MigApply => Module::MigApply(mig_apply::MigApply::parse(&a)?),
            ModuleName::MigAssert => Module::MigAssert(mig_assert::MigAssert::parse(&a)?),
            ModuleName::MigPersist => Module::MigPersist(mig_persist::MigPersist::parse(&a)?),
            ModuleName::Drain => Module::Drain(drain::Drain::parse(&a)?),
            ModuleName::Restore => Module::Restore(restore::Restore::parse(&a)?),
            ModuleName::Command => Module::Command(command::Command::parse(&a)?),
            ModuleName::Reboot => Module::Reboot(reboot::Reboot::parse(&a)?),
            ModuleName::K8sCordon => Module::K8sCordon(k8s::K8sCordon { on: true }),
            ModuleName::K8sUncordon => Module::K8sCordon(k8s::K8sCordon { on: false }),
            ModuleName::K8sLabel => {
                Module::K8sMeta(k8s::K8sMeta::parse(&a, crate::k8s::Meta::Labels)?)
            }
            ModuleName::K8sAnnotate => {
                Module::K8sMeta(k8s::K8sMeta::parse(&a, crate::k8s::Meta::Annotations)?)
            }
            ModuleName::K8sDrain => Module::K8sDrain(k8s::K8sDrain::parse(&a)?),
            ModuleName::K8sGpuOperator => Module::K8sGpuOperator(k8s::K8sGpuOperator::parse(&a)?),
            ModuleName::K8sDemand => Module::K8sDemand(k8s::K8sDemand::parse(&a)?),
        })
    }

    /// Carries the module out on one host (or, in check mode, says what it would do).
    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        match self {
            Module::MigMode(m) => m.run(cx).await,
            Module::MigApply(m) => m.run(cx).await,
            Module::MigAssert(m) => m.run(cx).await,
            Module::MigPersist(m) => m.run(cx).await,
            Module::Drain(m) => m.run(cx).await,
            Module::Restore(m) => m.run(cx).await,
            Module::Command(m) => m.run(cx).await,
            Module::Reboot(m) => m.run(cx).await,
            Module::K8sCordon(m) => m.run(cx).await,
            Module::K8sMeta(m) => m.run(cx).await,
            Module::K8sDrain(m) => m.run(cx).await,
            Module::K8sGpuOperator(m) => m.run(cx).await,
            Module::K8sDemand(m) => m.run(cx).await,
        }
    }
}

/// The closest of `candidates` to a misspelt `name`, if one is close enough to be meant.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d > 0 && *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The host's session (or its Lua state) is gone: the host takes no further part.
#[derive(Debug)]
pub struct Lost {
    pub message: String,
    /// Connection-level (Ansible's unreachable), rather than an agent that stopped
    /// answering properly.
    pub unreachable: bool,
    /// The host's Lua got stuck: its state must be abandoned, not used or dropped.
    pub lua_stuck: bool,
}

impl Lost {
    pub fn new(message: impl Into<String>, unreachable: bool) -> Lost {
        Lost {
            message: message.into(),
            unreachable,
            lua_stuck: false,
        }
    }

    /// A policy (or other Lua) that did not come back.
    pub fn stuck(stuck: crate::playbook::offload::Stuck) -> Lost {
        Lost {
            message: stuck.to_string(),
            unreachable: false,
            lua_stuck: true,
        }
    }
}

/// What a module works with on one host.
pub struct TaskCx<'a> {
    pub host: &'a str,
    pub lua: &'a mlua::Lua,
    /// The Lua budgets: how long a call into `lua` may take before it is given up on.
    pub limits: &'a crate::playbook::sandbox::Limits,
    pub session: &'a mut Session,
    pub conn: &'a Connection,
    /// Variables as Lua sees them (`host.vars`).
    pub vars: &'a Map<String, Value>,
    pub check: bool,
    /// Check mode: the facts as earlier tasks would have left them.
    pub projected: &'a mut Option<Facts>,
    /// What reopening the session takes (after a reboot).
    pub context: &'a crate::fleet::session::Context,
    pub events: &'a crate::fleet::Events,
    /// GPUs this run already rebooted the host for, because their MIG mode was pending:
    /// a reboot-loop guard (the host is never rebooted twice for that).
    pub rebooted_for_pending: &'a mut Vec<u32>,
    /// A `drain` ran on the host and no `restore` since: units it stopped may be down.
    pub drained: &'a mut bool,
    /// The run's Kubernetes client (made on first use).
    pub k8s: &'a crate::k8s::K8s,
    /// The host's node was set `pending` (GPU Operator protocol) and not finished yet.
    pub operator: &'a mut Option<OperatorMark>,
    /// The host's share of the pending pods' demand (`k8s.demand`), or why it has none.
    pub demand: Option<&'a Result<Value, String>>,
}

/// A failed agent call, sorted: the agent refused (the task fails, the host goes on) or
/// the session is gone.
pub enum CallFailure {
    Refused {
        kind: AgentErrorKind,
        message: String,
    },
    Lost(Lost),
}

impl From<Failed> for CallFailure {
    fn from(f: Failed) -> CallFailure {
        use crate::transport::agent::CallError;
        match &f.error {
            CallError::Agent(e) => CallFailure::Refused {
                kind: e.kind,
                message: f.message(),
            },
            CallError::Lost(_) => CallFailure::Lost(Lost::new(f.message(), true)),
            CallError::Protocol(_) | CallError::Timeout { .. } => {
                CallFailure::Lost(Lost::new(f.message(), false))
            }
        }
    }
}

impl TaskCx<'_> {
    /// The facts tasks and Lua see: the host's own, or in check mode what the earlier
    /// tasks would have left.
    pub async fn facts(&mut self) -> Result<Facts, Lost> {
        if self.check
            && let Some(p) = self.projected.as_ref()
        {
            return Ok(p.clone());
        }
        self.real_facts().await
    }

    /// The host's facts as NVML reports them now.
    pub async fn real_facts(&mut self) -> Result<Facts, Lost> {
        match self.session.facts().await {
            Ok(f) => Ok(f.clone()),
            Err(e) => Err(match CallFailure::from(e) {
                CallFailure::Lost(l) => l,
                CallFailure::Refused { message, .. } => {
                    Lost::new(format!("cannot read the host's facts: {message}"), false)
                }
            }),
        }
    }

    /// The host as Lua sees it, with `facts` (policies get it as `ctx`).
    pub fn view(&self, facts: &Facts) -> Value {
        crate::playbook::host_view::view(
            self.host,
            self.vars,
            facts,
            self.check,
            self.demand.and_then(|d| d.as_ref().ok()),
        )
    }

    /// Check mode: records what this task would leave, for the tasks after it.
    pub fn project(&mut self, facts: Facts) {
        if self.check {
            *self.projected = Some(facts);
        }
    }

    /// Sends `op` to the agent.
    pub async fn call(&mut self, op: Op, limit: Option<Duration>) -> Result<Reply, CallFailure> {
        self.session
            .call(op, limit)
            .await
            .map_err(CallFailure::from)
    }
}

/// The GPUs a task works on: the MIG-capable ones, or those `gpus` names (each must
/// exist and be able to do MIG).
pub fn select_gpus<'f>(
    facts: &'f Facts,
    gpus: Option<&[u32]>,
) -> Result<Vec<&'f GpuFacts>, String> {
    match gpus {
        None => Ok(facts.gpus.iter().filter(|g| g.mig.is_some()).collect()),
        Some(list) => {
            let mut out = Vec::new();
            for i in list {
                let Some(g) = facts.gpus.iter().find(|g| g.index == *i) else {
                    return Err(format!(
                        "GPU {i} does not exist on this host (it has {} GPU(s))",
                        facts.gpus.len()
                    ));
                };
                if g.mig.is_none() {
                    return Err(format!("GPU {i} ({}) cannot do MIG", g.name));
                }
                out.push(g);
            }
            Ok(out)
        }
    }
}

/// A GPU's result before anything is known about the task's effect.
pub fn gpu_base(g: &GpuFacts) -> GpuResult {
    GpuResult {
        index: g.index,
        model: g.model.clone(),
        ..GpuResult::default()
    }
}

/// Instance labels of a GPU, by placement (`3g.40gb@4`, `3g.40gb@4[2c,1c]`).
pub fn labels(g: &GpuFacts) -> Vec<String> {
    let Some(m) = &g.mig else {
        return Vec::new();
    };
    let mut v: Vec<(u8, String)> = m
        .instances
        .iter()
        .map(|i| {
            let full = m
                .profiles
                .iter()
                .find(|p| p.name == i.profile)
                .map(|p| p.compute_slices);
            let mut sizes: Vec<u8> = i.cis.iter().map(|c| c.slices).collect();
            sizes.sort_by(|a, b| b.cmp(a));
            let mut label = format!("{}@{}", i.profile, i.start);
            if Some(sizes.as_slice()) != full.as_ref().map(std::slice::from_ref) {
                let cis: Vec<String> = sizes.iter().map(|c| format!("{c}c")).collect();
                label.push_str(&format!("[{}]", cis.join(",")));
            }
            (i.start, label)
        })
        .collect();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

/// The instances of a GPU that have processes: `3g.40gb@4 (GI 2) has processes 4242`.
pub fn busy_instances(g: &GpuFacts) -> Vec<String> {
    let Some(m) = &g.mig else {
        return Vec::new();
    };
    m.instances
        .iter()
        .filter_map(|i| {
            let pids: Vec<String> = i
                .cis
                .iter()
                .flat_map(|c| c.processes.iter().map(|p| p.pid.to_string()))
                .collect();
            (!pids.is_empty()).then(|| {
                format!(
                    "{}@{} (GI {}) has processes {}",
                    i.profile,
                    i.start,
                    i.gi_id,
                    pids.join(", ")
                )
            })
        })
        .collect()
}

/// What to do about a GPU blocked by instances in use.
pub const BUSY_HINTS: [&str; 3] = [
    "stop the GPU's clients first (a drain{ ... } task before this one), or leave busy GPUs alone (a policy can return nil when gpu.busy, or list the others in gpus = {...})",
    "allow_destroy_in_use = true lets the plan destroy them (NVML still refuses while processes run)",
    "on_busy = \"fail_host\" leaves the whole host untouched when one GPU is blocked",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_near_misses_only() {
        let keys = ["layout", "policy", "mig_parted", "gpus"];
        assert_eq!(closest("polcy", keys), Some("policy"));
        assert_eq!(closest("gpu", keys), Some("gpus"));
        assert_eq!(closest("unit", ["units", "gpus"]), Some("units"));
        assert_eq!(closest("zzzzzz", keys), None);
        assert_eq!(
            closest("policy", keys),
            None,
            "an exact match is not a suggestion"
        );
    }

    #[test]
    fn names_round_trip() {
        for m in ModuleName::ALL {
            assert_eq!(ModuleName::from_name(m.as_str()), Some(m));
        }
        assert_eq!(ModuleName::from_name("reboot"), Some(ModuleName::Reboot));
        assert_eq!(ModuleName::from_name("restart"), None);
    }
}
