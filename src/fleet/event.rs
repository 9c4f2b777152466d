//! The one event type the fleet emits. TTY bars, plain lines and `--output json` are three
//! consumers of it, chosen once in `report`.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Unreachable,
    Skipped,
}

/// How one host's work ended.
#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub status: Status,
    /// One line for people: what was done, or why it failed.
    pub message: String,
    /// Command-specific result (facts, plans), also what `--output json` carries.
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

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run begins: how many hosts, in how many batches.
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
    /// Something worth showing while a host works (connecting, uploading, an NVML step).
    HostProgress {
        host: String,
        message: String,
    },
    /// Finer progress (one NVML call): shown on bars and in JSON, not as plain lines.
    HostDetail {
        host: String,
        message: String,
    },
    HostDone {
        host: String,
        outcome: Outcome,
    },
    /// The failure budget ran out; the hosts named were not started.
    Aborted {
        reason: String,
        not_run: Vec<String>,
    },
}
