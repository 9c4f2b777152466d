//! `reboot{ timeout, connect_timeout, pre_delay, post_delay }`, as Ansible's `reboot`:
//! note the host's boot id, have the agent start the reboot command
//! (`migfleet_reboot_command`, default `systemctl reboot`), let the session go, and
//! reconnect with backoff until the host answers with a NEW boot id (at most `timeout`,
//! default 600 s); then the agent is started again (uploaded again when the reboot took
//! it, as a tmpfs does), the host's lock taken again, facts gathered again, and the play
//! goes on with the next task. Hopper and later GPUs lose MIG mode at every boot: those
//! that had it on get it back (no reset is needed there). `mig.mode{ reboot = "if_needed" }`
//! reboots through the same path.

use std::time::{Duration, Instant};

use migfleet_mig::find_model;
use migfleet_proto::{Facts, OnBusy, Op, Reply};

use super::{Args, CallFailure, Lost, TaskCx};
use crate::fleet::TaskResult;
use crate::fleet::session::{self, Opening};
use crate::inventory::ConnectionKind;
use crate::report::text::ranges;

pub const KEYS: &[&str] = &["timeout", "connect_timeout", "pre_delay", "post_delay"];

/// Ansible's `reboot_timeout` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// How long one attempt to reach the host may take by default (TCP and SSH handshake).
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest pause between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Reboot {
    /// How long the host may take to come back (from the reboot command to a new boot id).
    pub timeout: Duration,
    /// How long one attempt to reach it (TCP and the SSH handshake) may take.
    pub connect_timeout: Duration,
    pub pre_delay: Duration,
    pub post_delay: Duration,
}

impl Default for Reboot {
    fn default() -> Reboot {
        Reboot {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pre_delay: Duration::ZERO,
            post_delay: Duration::ZERO,
        }
    }
}

/// What a reboot did.
pub struct Rebooted {
    pub took: Duration,
    /// GPUs that lost MIG mode at boot and had it turned on again.
    pub mig_restored: Vec<u32>,
    /// GPUs that lost MIG mode and could not get it back (with why).
    pub mig_lost: Vec<(u32, String)>,
}

impl Rebooted {
    pub fn summary(&self) -> String {
        let mut m = format!("rebooted in {:.1} s", self.took.as_secs_f64());
        if !self.mig_restored.is_empty() {
            m.push_str(&format!(
                "; MIG mode on again on GPU {}",
                ranges(&self.mig_restored)
            ));
        }
        for (i, why) in &self.mig_lost {
            m.push_str(&format!("; GPU {i} lost MIG mode: {why}"));
        }
        m
    }
}

/// Why a reboot did not happen or did not finish: the task fails (the host stays
/// reachable) or the host is lost.
pub enum RebootFailure {
    Refused(String),
    Lost(Lost),
}

impl Reboot {
    pub fn parse(a: &Args<'_>) -> Result<Reboot, String> {
        let d = Reboot::default();
        Ok(Reboot {
            timeout: a.seconds("timeout")?.unwrap_or(d.timeout),
            connect_timeout: a.seconds("connect_timeout")?.unwrap_or(d.connect_timeout),
            pre_delay: a.delay("pre_delay")?.unwrap_or(d.pre_delay),
            post_delay: a.delay("post_delay")?.unwrap_or(d.post_delay),
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        if let Some(why) = refuse_local(cx) {
            return Ok(TaskResult::failed(format!("reboot refused: {why}")));
        }
        if cx.check {
            return Ok(TaskResult::changed("check mode: would reboot the host"));
        }
        match reboot(cx, self).await {
            Ok(r) if r.mig_lost.is_empty() => Ok(TaskResult::changed(r.summary())),
            Ok(r) => Ok(TaskResult::failed(r.summary())),
            Err(RebootFailure::Refused(m)) => Ok(TaskResult::failed(m)),
            Err(RebootFailure::Lost(l)) => Err(l),
        }
    }
}

/// A host reached as `ansible_connection: local` is the machine migfleet runs on:
/// rebooting it would end the run (Ansible's `reboot` refuses it too).
pub fn refuse_local(cx: &TaskCx<'_>) -> Option<String> {
    (cx.conn.kind == ConnectionKind::Local).then(|| {
        "this host is reached with ansible_connection: local, so rebooting it would reboot the machine migfleet runs on".to_string()
    })
}

/// GPUs with MIG on whose generation loses it at boot (Hopper and later).
fn loses_mig_at_boot(facts: &Facts) -> Vec<u32> {
    facts
        .gpus
        .iter()
        .filter(|g| g.mig.as_ref().is_some_and(|m| m.current))
        .filter(|g| {
            g.model
                .as_deref()
                .and_then(|m| find_model(m).ok())
                .is_some_and(|m| !m.generation.mode_survives_reboot())
        })
        .map(|g| g.index)
        .collect()
}

/// Reboots the host and waits for it to come back with a new boot id; see the module doc.
pub async fn reboot(cx: &mut TaskCx<'_>, opts: &Reboot) -> Result<Rebooted, RebootFailure> {
    let lost = |l: Lost| RebootFailure::Lost(l);
    let before = cx.real_facts().await.map_err(lost)?;
    let relight = loses_mig_at_boot(&before);
    let old_boot = cx.session.hello.boot_id.clone();
    if old_boot.is_empty() || old_boot == "unknown" {
        return Err(RebootFailure::Refused(
            "reboot: the agent cannot read this host's boot id, so migfleet could not tell when it has rebooted; refusing to reboot".into(),
        ));
    }
    if !opts.pre_delay.is_zero() {
        cx.events
            .progress(cx.host, format!("rebooting in {:?}", opts.pre_delay));
        tokio::time::sleep(opts.pre_delay).await;
    }
    // Under the GPU Operator protocol the node says it is rebooting first; if it cannot
    // say so, it is not rebooted (as the MIG manager refuses, so as never to reboot twice).
    if let Some(mark) = cx.operator.clone() {
        let said = match cx.k8s.client().await {
            Ok(client) => {
                crate::k8s::gpu_operator::set_state(
                    &client,
                    &mark.node,
                    crate::k8s::gpu_operator::State::Rebooting,
                )
                .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = said {
            return Err(RebootFailure::Refused(format!(
                "reboot: node {} could not be marked rebooting, so the host is not rebooted: {e}",
                mark.node
            )));
        }
    }
    let started = Instant::now();
    let op = Op::Reboot {
        command: cx.conn.reboot_command.clone(),
    };
    match cx.call(op, None).await {
        Ok(Reply::Reboot { .. }) => {}
        Ok(_) => {
            return Err(RebootFailure::Refused(
                "reboot: unexpected reply from the agent".into(),
            ));
        }
        Err(CallFailure::Refused { message, .. }) => {
            return Err(RebootFailure::Refused(format!("reboot: {message}")));
        }
        // The connection may drop before the reply when the reboot is quick: whether it
        // rebooted shows in the boot id.
        Err(CallFailure::Lost(_)) => {}
    }
    cx.session.close().await;
    let deadline = started + opts.timeout;
    // `connect_timeout` bounds reaching the host (TCP and the SSH handshake); starting the
    // agent (an upload, if the boot took it) has the rest of `timeout`.
    let mut context = cx.context.clone();
    context.ssh.connect_timeout = opts.connect_timeout;
    let mut backoff = Duration::from_millis(250);
    let mut attempts = 0u32;
    let mut last = String::from("no attempt yet");
    let fresh = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RebootFailure::Lost(Lost::new(
                format!(
                    "the host did not come back within {} s of its reboot ({attempts} attempts; last: {last})",
                    opts.timeout.as_secs()
                ),
                true,
            )));
        }
        attempts += 1;
        cx.events.progress(
            cx.host,
            format!(
                "rebooting: waiting for the host to come back ({} s left)",
                left.as_secs()
            ),
        );
        let attempt = session::open(cx.conn, &context, Opening::Facts, cx.events.clone());
        match tokio::time::timeout(left, attempt).await {
            Ok(Ok(s)) if s.hello.boot_id != old_boot => break s,
            Ok(Ok(mut s)) => {
                last = "the host answered with its old boot id (not rebooted yet)".into();
                s.close().await;
            }
            Ok(Err(e)) if e.untrusted => {
                return Err(RebootFailure::Lost(Lost::new(
                    format!("after its reboot: {}", e.message),
                    true,
                )));
            }
            Ok(Err(e)) => last = e.message,
            Err(_) => last = "the host was still starting when the time was up".into(),
        }
        let pause = backoff.min(deadline.saturating_duration_since(Instant::now()));
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    *cx.session = fresh;
    let took = started.elapsed();
    if !cx.check
        && let Err(f) = cx.session.lock(cx.conn.lock_wait_s).await
    {
        return Err(match CallFailure::from(f) {
            CallFailure::Refused { message, .. } => {
                RebootFailure::Refused(format!("after the reboot: {message}"))
            }
            CallFailure::Lost(l) => RebootFailure::Lost(l),
        });
    }
    if !opts.post_delay.is_zero() {
        tokio::time::sleep(opts.post_delay).await;
    }
    let after = cx.real_facts().await.map_err(lost)?;
    let off: Vec<u32> = relight
        .iter()
        .copied()
        .filter(|i| {
            after
                .gpus
                .iter()
                .any(|g| g.index == *i && g.mig.as_ref().is_some_and(|m| !m.current))
        })
        .collect();
    let mut done = Rebooted {
        took,
        mig_restored: Vec::new(),
        mig_lost: Vec::new(),
    };
    if off.is_empty() {
        return Ok(done);
    }
    let op = Op::SetMigMode {
        gpus: off.clone(),
        enabled: true,
        on_busy: OnBusy::SkipGpu,
    };
    match cx.call(op, None).await {
        Ok(Reply::SetMigMode { gpus }) => {
            for m in gpus {
                if m.current {
                    done.mig_restored.push(m.index);
                } else {
                    let why = m
                        .blocked
                        .map(|b| b.message)
                        .unwrap_or_else(|| "still off after turning it on".into());
                    done.mig_lost.push((m.index, why));
                }
            }
        }
        Ok(_) => {
            for i in off {
                done.mig_lost
                    .push((i, "unexpected reply from the agent".into()));
            }
        }
        Err(CallFailure::Refused { message, .. }) => {
            for i in off {
                done.mig_lost.push((i, message.clone()));
            }
        }
        Err(CallFailure::Lost(l)) => return Err(RebootFailure::Lost(l)),
    }
    Ok(done)
}
