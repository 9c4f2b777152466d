//! `restore{ systemctl }`: start again the units `drain{}` stopped on this host (the agent
//! remembers them, across agent processes).

use migfleet_proto::{Op, Reply};

use super::{Args, CallFailure, Lost, TaskCx};
use crate::fleet::TaskResult;

pub const KEYS: &[&str] = &["systemctl"];

#[derive(Clone, Debug)]
pub struct Restore {
    pub systemctl: Option<Vec<String>>,
}

impl Restore {
    pub fn parse(a: &Args<'_>) -> Result<Restore, String> {
        let systemctl = a.strings("systemctl", false)?;
        if systemctl.as_ref().is_some_and(Vec::is_empty) {
            return Err("restore: `systemctl` must name a program (argv)".into());
        }
        Ok(Restore { systemctl })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        if cx.check {
            return Ok(TaskResult::skipped(
                "check mode: would start again what drain stopped",
            ));
        }
        let op = Op::Restore {
            systemctl: self.systemctl.clone(),
        };
        match cx.call(op, None).await {
            Ok(Reply::Restore { started }) if started.is_empty() => {
                *cx.drained = false;
                Ok(TaskResult::ok("nothing to start"))
            }
            Ok(Reply::Restore { started }) => {
                *cx.drained = false;
                Ok(TaskResult::changed(format!(
                    "started {}",
                    started.join(", ")
                )))
            }
            Ok(_) => Ok(TaskResult::failed(
                "restore: unexpected reply from the agent",
            )),
            Err(CallFailure::Refused { message, .. }) => {
                Ok(TaskResult::failed(format!("restore: {message}")))
            }
            Err(CallFailure::Lost(l)) => Err(l),
        }
    }
}
