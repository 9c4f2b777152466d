//! `mig.persist{ state, units, systemctl }`: make the host's MIG state as it is now (after
//! the tasks before this one) survive a reboot. The agent installs the target (MIG mode
//! and instances per GPU, by placement), a copy of itself and `migfleet-mig.service`, a
//! systemd oneshot that restores them at boot before `units` start; `state = "absent"`
//! removes all three. Idempotent: nothing is written when the host has it already.

use migfleet_proto::{Op, Persisted, Reply};

use super::{Args, CallFailure, Lost, TaskCx};
use crate::fleet::TaskResult;
use crate::report::text::ranges;

pub const KEYS: &[&str] = &["state", "units", "systemctl"];

#[derive(Clone, Debug)]
pub struct MigPersist {
    pub present: bool,
    pub units: Vec<String>,
    pub systemctl: Option<Vec<String>>,
}

impl MigPersist {
    pub fn parse(a: &Args<'_>) -> Result<MigPersist, String> {
        let present = match a.string("state")?.as_deref() {
            None | Some("present") => true,
            Some("absent") => false,
            Some(other) => {
                return Err(format!(
                    "mig.persist: `state` must be \"present\" or \"absent\", got \"{other}\""
                ));
            }
        };
        let units = a.strings("units", true)?.unwrap_or_default();
        if !present && !units.is_empty() {
            return Err("mig.persist: `units` goes with state = \"present\"".into());
        }
        let systemctl = a.strings("systemctl", false)?;
        if systemctl.as_ref().is_some_and(Vec::is_empty) {
            return Err("mig.persist: `systemctl` must name a program (argv)".into());
        }
        Ok(MigPersist {
            present,
            units,
            systemctl,
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let facts = cx.facts().await?;
        let target = self.present.then(|| {
            Persisted::of(
                &facts,
                cx.conn.nvml_lib.clone(),
                &self.units,
                &cx.conn.agent_env,
            )
        });
        let gpus: Vec<u32> = target
            .as_ref()
            .map(|t| t.gpus.iter().map(|g| g.index).collect())
            .unwrap_or_default();
        if cx.check {
            return Ok(match (&target, &facts.persisted) {
                (Some(t), Some(p)) if t == p => {
                    TaskResult::ok(format!("already persisted for boot: GPU {}", ranges(&gpus)))
                }
                (Some(_), _) => TaskResult::changed(format!(
                    "check mode: would persist the MIG state of GPU {} for boot",
                    ranges(&gpus)
                )),
                (None, Some(_)) => {
                    TaskResult::changed("check mode: would remove the boot-time MIG restore")
                }
                (None, None) => TaskResult::ok("nothing persisted"),
            });
        }
        let op = Op::Persist {
            target: target.clone(),
            systemctl: self.systemctl.clone(),
        };
        match cx.call(op, None).await {
            Ok(Reply::Persist { changed, files }) => Ok(match (self.present, changed) {
                (true, true) => TaskResult::changed(format!(
                    "persisted the MIG state of GPU {} for boot ({})",
                    ranges(&gpus),
                    files.join(", ")
                )),
                (true, false) => {
                    TaskResult::ok(format!("already persisted for boot: GPU {}", ranges(&gpus)))
                }
                (false, true) => TaskResult::changed(format!(
                    "removed the boot-time MIG restore ({})",
                    files.join(", ")
                )),
                (false, false) => TaskResult::ok("nothing persisted"),
            }),
            Ok(_) => Ok(TaskResult::failed(
                "mig.persist: unexpected reply from the agent",
            )),
            Err(CallFailure::Refused { message, .. }) => {
                Ok(TaskResult::failed(format!("mig.persist: {message}")))
            }
            Err(CallFailure::Lost(l)) => Err(l),
        }
    }
}
