//! `drain{ units, gpus, timeout, signal, systemctl }`: stop the listed systemd units that
//! are active (remembered for `restore{}`), then wait until no compute process remains on
//! the GPUs (all, or those listed), signalling them if asked. In check mode nothing is
//! stopped, and the tasks after it see the GPUs without processes, as they would.

use std::time::Duration;

use migfleet_proto::{Op, Reply};

use super::{Args, CallFailure, Lost, TaskCx};
use crate::fleet::TaskResult;

pub const KEYS: &[&str] = &["units", "gpus", "timeout", "signal", "systemctl"];

/// Signals `drain{ signal = ... }` may send (names as `kill -s` takes them).
const SIGNALS: &[&str] = &["TERM", "INT", "HUP", "QUIT", "KILL", "USR1", "USR2"];

#[derive(Clone, Debug)]
pub struct Drain {
    pub units: Vec<String>,
    pub gpus: Option<Vec<u32>>,
    /// How long to wait for GPU processes (default 300 s).
    pub timeout: Duration,
    pub signal: Option<String>,
    pub systemctl: Option<Vec<String>>,
}

impl Drain {
    pub fn parse(a: &Args<'_>) -> Result<Drain, String> {
        let signal = match a.string("signal")? {
            None => None,
            Some(s) => {
                let name = s.trim_start_matches("SIG").to_ascii_uppercase();
                if !SIGNALS.contains(&name.as_str()) {
                    return Err(format!(
                        "drain: `signal` must be one of {}, got \"{s}\"",
                        SIGNALS.join(", ")
                    ));
                }
                Some(name)
            }
        };
        let systemctl = a.strings("systemctl", false)?;
        if systemctl.as_ref().is_some_and(Vec::is_empty) {
            return Err("drain: `systemctl` must name a program (argv)".into());
        }
        Ok(Drain {
            units: a.strings("units", true)?.unwrap_or_default(),
            gpus: a.gpus()?,
            timeout: a.seconds("timeout")?.unwrap_or(Duration::from_secs(300)),
            signal,
            systemctl,
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        if cx.check {
            // The plan assumes the drain succeeds: afterwards no process holds the GPUs.
            let mut next = cx.facts().await?;
            for g in &mut next.gpus {
                if self.gpus.as_ref().is_some_and(|l| !l.contains(&g.index)) {
                    continue;
                }
                g.processes.clear();
                if let Some(m) = &mut g.mig {
                    for i in &mut m.instances {
                        for c in &mut i.cis {
                            c.processes.clear();
                        }
                    }
                }
            }
            cx.project(next);
            let units = if self.units.is_empty() {
                String::new()
            } else {
                format!("stop {} if active, then ", self.units.join(", "))
            };
            return Ok(TaskResult::skipped(format!(
                "check mode: would {units}wait for GPU processes to end"
            )));
        }
        // From here on units may be stopped: the host counts as drained until `restore`.
        *cx.drained = true;
        let op = Op::Drain {
            units: self.units.clone(),
            gpus: self.gpus.clone().unwrap_or_default(),
            timeout_s: self.timeout.as_secs().max(1),
            signal: self.signal.clone(),
            systemctl: self.systemctl.clone(),
        };
        match cx.call(op, None).await {
            Ok(Reply::Drain(d)) if d.stopped.is_empty() && d.signalled.is_empty() => {
                Ok(TaskResult::ok("nothing to stop"))
            }
            Ok(Reply::Drain(d)) => {
                let mut parts = Vec::new();
                if !d.stopped.is_empty() {
                    parts.push(format!("stopped {}", d.stopped.join(", ")));
                }
                if !d.signalled.is_empty() {
                    let pids: Vec<String> = d.signalled.iter().map(u32::to_string).collect();
                    parts.push(format!("signalled PIDs {}", pids.join(", ")));
                }
                Ok(TaskResult::changed(parts.join("; ")))
            }
            Ok(_) => Ok(TaskResult::failed("drain: unexpected reply from the agent")),
            Err(CallFailure::Refused { message, .. }) => Ok(TaskResult::failed(format!(
                "drain: {message}"
            ))
            .hint(
                "stop what holds the GPUs, raise `timeout`, or let drain send `signal = \"TERM\"`",
            )),
            Err(CallFailure::Lost(l)) => Err(l),
        }
    }
}
