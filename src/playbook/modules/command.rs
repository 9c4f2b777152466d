//! `command{ argv, timeout }`: run a program on the host over the host's SSH connection
//! (as `sudo -n` when the host becomes root). An argv only: no shell, so nothing in it is
//! ever interpreted. Changed when it exits 0, failed otherwise with its stderr.

use std::time::Duration;

use super::{Args, Lost, TaskCx};
use crate::fleet::TaskResult;
use crate::transport::RemoteCommand;

pub const KEYS: &[&str] = &["argv", "timeout"];

#[derive(Clone, Debug)]
pub struct Command {
    pub argv: Vec<String>,
    /// How long it may run (default 300 s).
    pub timeout: Duration,
}

impl Command {
    pub fn parse(a: &Args<'_>) -> Result<Command, String> {
        let argv = match a.strings("argv", false) {
            Ok(Some(v)) if !v.is_empty() => v,
            Ok(_) => return Err("command needs argv = { \"program\", \"arg\", ... }".into()),
            Err(e) => {
                return Err(format!(
                    "{e} (an argv such as {{ \"systemctl\", \"restart\", \"x\" }}; no shell string)"
                ));
            }
        };
        Ok(Command {
            argv,
            timeout: a.seconds("timeout")?.unwrap_or(Duration::from_secs(300)),
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let shown = self.argv.join(" ");
        if cx.check {
            return Ok(TaskResult::skipped(format!(
                "check mode: would run {shown}"
            )));
        }
        let cmd = RemoteCommand {
            argv: self.argv.clone(),
            env: Vec::new(),
            sudo: cx.conn.become_,
        };
        let out = match tokio::time::timeout(self.timeout, cx.session.exec(&cmd)).await {
            Err(_) => {
                return Ok(TaskResult::failed(format!(
                    "{shown}: still running after {} s",
                    self.timeout.as_secs()
                )));
            }
            Ok(Err(e)) if e.is_unreachable() => return Err(Lost::new(e.to_string(), true)),
            Ok(Err(e)) => return Ok(TaskResult::failed(e.to_string())),
            Ok(Ok(out)) => out,
        };
        let first = |b: &[u8]| {
            let text = String::from_utf8_lossy(b);
            let t = text.trim();
            if t.len() > 400 {
                format!("{}...", t.chars().take(400).collect::<String>())
            } else {
                t.to_string()
            }
        };
        if out.status == Some(0) {
            let stdout = first(&out.stdout);
            Ok(TaskResult::changed(if stdout.is_empty() {
                shown
            } else {
                format!("{shown}: {stdout}")
            }))
        } else {
            Ok(TaskResult::failed(format!(
                "{shown} exited with {}: {}",
                out.status
                    .map_or_else(|| "a signal".to_string(), |s| format!("status {s}")),
                first(&out.stderr)
            )))
        }
    }
}
