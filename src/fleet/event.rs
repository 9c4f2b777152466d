//! The one event type the fleet emits, and the typed results it carries. TTY bars, plain
//! lines and `--output json` are three consumers of it, chosen once in `report`.

use migfleet_mig::plan::Op as NvmlOp;
use serde::Serialize;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Unreachable,
    Skipped,
}

impl Status {
    /// The host cannot go on in this run.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Failed | Status::Unreachable)
    }
}

/// How one host's work ended, for single-step commands (`ping`, `facts`).
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub status: Status,
    /// One line for people: what was done, or why it failed.
    pub message: String,
    /// Command-specific result (facts, hello), also what `--output json` carries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

impl Outcome {
    pub fn ok(message: impl Into<String>, data: Option<serde_json::Value>) -> Outcome {
        Outcome {
            status: Status::Ok,
            message: message.into(),
            data,
        }
    }
    pub fn failed(message: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Failed,
            message: message.into(),
            data: None,
        }
    }
    pub fn unreachable(message: impl Into<String>) -> Outcome {
        Outcome {
            status: Status::Unreachable,
            message: message.into(),
            data: None,
        }
    }
}

/// What one task did on one host.
#[derive(Clone, Debug, Serialize)]
pub struct TaskResult {
    pub status: Status,
    /// One line for people: what was done, or why it failed.
    pub message: String,
    /// What to do about a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// Each GPU the task looked at, by index: what changed (or would, in check mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuResult>,
    /// Tries made; more than 1 when `retries` were used.
    pub attempts: u32,
}

impl TaskResult {
    fn new(status: Status, message: impl Into<String>) -> TaskResult {
        TaskResult {
            status,
            message: message.into(),
            hints: Vec::new(),
            gpus: Vec::new(),
            attempts: 1,
        }
    }
    pub fn ok(message: impl Into<String>) -> TaskResult {
        TaskResult::new(Status::Ok, message)
    }
    pub fn changed(message: impl Into<String>) -> TaskResult {
        TaskResult::new(Status::Changed, message)
    }
    pub fn failed(message: impl Into<String>) -> TaskResult {
        TaskResult::new(Status::Failed, message)
    }
    pub fn skipped(message: impl Into<String>) -> TaskResult {
        TaskResult::new(Status::Skipped, message)
    }
    pub fn unreachable(message: impl Into<String>) -> TaskResult {
        TaskResult::new(Status::Unreachable, message)
    }

    pub fn hint(mut self, hint: impl Into<String>) -> TaskResult {
        let hint = hint.into();
        if !self.hints.contains(&hint) {
            self.hints.push(hint);
        }
        self
    }

    /// Ok, changed or failed from the GPUs: failed when one failed, changed when one
    /// changed. The message is kept.
    pub fn from_gpus(message: impl Into<String>, gpus: Vec<GpuResult>) -> TaskResult {
        let status = if gpus.iter().any(|g| g.error.is_some()) {
            Status::Failed
        } else if gpus.iter().any(|g| g.changed) {
            Status::Changed
        } else {
            Status::Ok
        };
        TaskResult {
            gpus,
            ..TaskResult::new(status, message)
        }
    }
}

/// One GPU's part in a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GpuResult {
    pub index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub changed: bool,
    /// MIG mode before and after, when the task is about the mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ModeChange>,
    /// Instances before (labels such as `3g.40gb@4`, by placement), when the task is about
    /// the layout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Vec<String>>,
    /// Instances afterwards (or, in check mode, those the plan leads to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<String>>,
    /// GPU instances destroyed and created.
    pub destroyed: usize,
    pub created: usize,
    /// The NVML operations carried out (or, in check mode, planned), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<NvmlOp>,
    /// Why this GPU failed (or, in check mode, would fail).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// MIG mode of one GPU around a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ModeChange {
    pub before: bool,
    pub after: bool,
    /// The change needed (or, in check mode, would need) a GPU reset.
    pub reset: bool,
    /// The change needed (or would need) a host reboot.
    #[serde(default)]
    pub reboot: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A fan-out begins: how many hosts, in how many batches.
    Start {
        hosts: usize,
        batches: usize,
    },
    /// A `serial` batch begins.
    Batch {
        index: usize,
        hosts: Vec<String>,
    },
    HostStart {
        host: String,
    },
    /// Something worth showing while a host works: a step (connecting, a task starting)
    /// or, with `waiting`, news from a long wait on the host (a drain, a reset).
    HostProgress {
        host: String,
        message: String,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        waiting: bool,
    },
    /// A single-step command (`ping`, `facts`) finished on a host.
    HostDone {
        host: String,
        outcome: Outcome,
    },
    /// The failure budget ran out; the hosts named were not started.
    Aborted {
        reason: String,
        not_run: Vec<String>,
    },
    /// The first Ctrl-C: the operations in flight finish, nothing new starts.
    Interrupted,
    /// A play begins (1-based `play`), on these hosts in this order.
    PlayStart {
        play: usize,
        name: String,
        pattern: String,
        hosts: Vec<String>,
        check: bool,
    },
    /// A task begins on the hosts of the current batch (1-based `task`).
    TaskStart {
        play: usize,
        task: usize,
        name: String,
        /// `file:line` of the task.
        pos: String,
        /// Hosts it runs on now.
        hosts: usize,
    },
    /// A task's result on one host. Sent when the task is done on every host of the
    /// batch, in host order.
    TaskResult {
        host: String,
        play: usize,
        task: usize,
        name: String,
        result: TaskResult,
    },
    /// A host could not start its session (connection, host key, agent): it takes no
    /// part in the rest of the run.
    HostDown {
        host: String,
        status: Status,
        message: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        hints: Vec<String>,
    },
    /// A host's part in a playbook run is over: its counters, and why it stopped early
    /// if it did. Sent at the end of the run, in the order hosts joined it.
    HostFinished {
        host: String,
        stats: crate::report::recap::HostStats,
        #[serde(skip_serializing_if = "Option::is_none")]
        down: Option<Status>,
        /// A Ctrl-C stopped it before this task.
        #[serde(skip_serializing_if = "Option::is_none")]
        interrupted_before: Option<String>,
    },
    /// One NVML operation done by an agent.
    Nvml {
        host: String,
        gpu: u32,
        step: usize,
        of: usize,
        op: NvmlOp,
    },
    /// A line a playbook or policy printed (Lua's `print`) while running for a host.
    Print {
        host: String,
        line: String,
    },
    /// A line the agent wrote to its stderr (driver and simulator messages).
    AgentStderr {
        host: String,
        line: String,
    },
}

/// Where events go: the monitor's channel. Sending never fails the run; a monitor that
/// went away just misses them.
#[derive(Clone, Debug)]
pub struct Events(UnboundedSender<Event>);

impl Events {
    pub fn new(tx: UnboundedSender<Event>) -> Events {
        Events(tx)
    }

    pub fn send(&self, e: Event) {
        let _ = self.0.send(e);
    }

    /// A step of a host's work (shown on progress bars).
    pub fn progress(&self, host: &str, message: impl Into<String>) {
        self.send(Event::HostProgress {
            host: host.to_string(),
            message: message.into(),
            waiting: false,
        });
    }

    /// News from a long wait on a host (also shown, throttled, as plain lines).
    pub fn waiting(&self, host: &str, message: impl Into<String>) {
        self.send(Event::HostProgress {
            host: host.to_string(),
            message: message.into(),
            waiting: true,
        });
    }
}
