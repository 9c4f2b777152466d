//! Host-side operations: `drain` (stop GPU clients, wait for GPU processes to end),
//! `restore` (start again what drain stopped), `reboot` (detached).

use super::run;
use crate::error::{AgentError, Result};
use crate::nvml::{self, Session};
use migfleet_proto::{DrainResult, ENV_STATE_DIR, ErrorKind, Event};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STOPPED_FILE: &str = "drained-units";

/// How often a drain that waits for the same processes says so.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

pub fn state_dir() -> PathBuf {
    std::env::var_os(ENV_STATE_DIR)
        .map_or_else(|| PathBuf::from("/var/lib/migfleet"), PathBuf::from)
}

/// The systemctl argv prefix alone (see [`systemctl`]).
pub fn systemctl_prefix(prefix: Option<&[String]>) -> Vec<String> {
    systemctl(prefix, &[])
}

/// The systemctl argv prefix: the request's, else `MIGFLEET_SYSTEMCTL` (whitespace-split;
/// set through the inventory's `migfleet_agent_env`, e.g. for hosts without systemd),
/// else `systemctl`.
fn systemctl(prefix: Option<&[String]>, args: &[&str]) -> Vec<String> {
    let from_env = || {
        std::env::var(migfleet_proto::ENV_SYSTEMCTL)
            .ok()
            .map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>())
            .filter(|v| !v.is_empty())
    };
    let mut argv = prefix
        .map(<[String]>::to_vec)
        .or_else(from_env)
        .unwrap_or_else(|| vec!["systemctl".to_string()]);
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

/// Unit names are passed as argv to systemctl; still refuse ones that could be read as an
/// option or hold odd characters, so a typo cannot become a different command.
pub fn check_unit(unit: &str) -> Result<()> {
    let ok = !unit.is_empty()
        && !unit.starts_with('-')
        && unit
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._-:\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AgentError::new(
            ErrorKind::BadRequest,
            format!("`{unit}` is not a systemd unit name"),
        ))
    }
}

pub fn drain(
    session: &Session,
    units: &[String],
    gpus: &[u32],
    timeout: Duration,
    signal: Option<&str>,
    systemctl_prefix: Option<&[String]>,
    emit: &mut dyn FnMut(Event),
) -> Result<DrainResult> {
    for u in units {
        check_unit(u)?;
    }
    let dir = state_dir();
    let mut remembered = read_stopped(&dir);
    let mut stopped = Vec::new();
    for unit in units {
        let argv = systemctl(systemctl_prefix, &["is-active", "--quiet", unit]);
        let active = Command::new(&argv[0])
            .args(&argv[1..])
            .status()
            .map_err(|e| AgentError::command(format!("cannot run systemctl: {e}")))?
            .success();
        if !active {
            continue;
        }
        emit(Event::Progress {
            message: format!("stopping {unit}"),
        });
        run(&systemctl(systemctl_prefix, &["stop", unit]))?;
        stopped.push(unit.clone());
        if !remembered.contains(unit) {
            remembered.push(unit.clone());
        }
        write_stopped(&dir, &remembered)?;
    }

    let indices = session.indices(gpus)?;
    let started = Instant::now();
    let mut signalled = Vec::new();
    let mut last_said: Option<(usize, Instant)> = None;
    loop {
        let mut pids = Vec::new();
        for i in &indices {
            for p in gpu_pids(session, *i)? {
                pids.push((*i, p));
            }
        }
        if pids.is_empty() {
            break;
        }
        if let Some(sig) = signal {
            for (_, pid) in &pids {
                if !signalled.contains(pid) {
                    // `kill` with argv: the signal name and pid are checked values.
                    run(&["kill".into(), "-s".into(), sig.to_string(), pid.to_string()])?;
                    signalled.push(*pid);
                }
            }
        }
        if started.elapsed() >= timeout {
            let list: Vec<String> = pids
                .iter()
                .map(|(g, p)| format!("GPU {g}: PID {p}"))
                .collect();
            return Err(AgentError::new(
                ErrorKind::Timeout,
                format!(
                    "GPU processes still running after {} s: {}",
                    timeout.as_secs(),
                    list.join(", ")
                ),
            ));
        }
        // Say so when the count changes, and every 10 s while it does not: the wait can
        // last minutes and every event is a line over SSH.
        if last_said.is_none_or(|(n, at): (usize, Instant)| {
            n != pids.len() || at.elapsed() >= PROGRESS_EVERY
        }) {
            emit(Event::Progress {
                message: format!(
                    "waiting for {} GPU process(es) to end ({}s of {}s)",
                    pids.len(),
                    started.elapsed().as_secs(),
                    timeout.as_secs()
                ),
            });
            last_said = Some((pids.len(), Instant::now()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(DrainResult {
        stopped,
        signalled,
        waited_ms: started.elapsed().as_millis() as u64,
    })
}

fn gpu_pids(session: &Session, index: u32) -> Result<Vec<u32>> {
    let dev = session.device(index)?;
    let mut pids: Vec<u32> = match dev.running_compute_processes() {
        Ok(p) => p.iter().map(|p| p.pid).collect(),
        Err(nvml_wrapper::error::NvmlError::NotSupported) => Vec::new(),
        Err(e) => return Err(AgentError::nvml(format!("running processes: {e}")).on_gpu(index)),
    };
    if nvml::mig_mode(&dev, index)?.is_some_and(|m| m.current) {
        // MIG processes appear on the parent handle only for privileged callers; the MIG
        // handles list them for everyone.
        for k in 0..dev.mig_device_count().unwrap_or(0) {
            if let Ok(mig) = dev.mig_device_by_index(k)
                && let Ok(procs) = mig.running_compute_processes()
            {
                pids.extend(procs.iter().map(|p| p.pid));
            }
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

pub fn restore(systemctl_prefix: Option<&[String]>) -> Result<Vec<String>> {
    let dir = state_dir();
    let units = read_stopped(&dir);
    let mut started = Vec::new();
    for unit in units.iter().rev() {
        check_unit(unit)?;
        run(&systemctl(systemctl_prefix, &["start", unit]))?;
        started.push(unit.clone());
        let rest: Vec<String> = units
            .iter()
            .filter(|u| !started.contains(u))
            .cloned()
            .collect();
        write_stopped(&dir, &rest)?;
    }
    Ok(started)
}

fn read_stopped(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(STOPPED_FILE))
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn write_stopped(dir: &std::path::Path, units: &[String]) -> Result<()> {
    let io = |e: std::io::Error| {
        AgentError::command(format!(
            "cannot record drained units in {}: {e}",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!("{STOPPED_FILE}.tmp"));
    let mut text = units.join("\n");
    text.push('\n');
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, dir.join(STOPPED_FILE)).map_err(io)
}

/// Starts the reboot command in its own process group, not waited for, so the agent's
/// reply reaches the controller before the connection drops.
pub fn reboot(command: Option<&[String]>) -> Result<()> {
    let argv = command.map_or_else(
        || vec!["systemctl".to_string(), "reboot".to_string()],
        <[String]>::to_vec,
    );
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| AgentError::new(ErrorKind::BadRequest, "empty reboot command"))?;
    use std::os::unix::process::CommandExt;
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(|_| ())
        .map_err(|e| AgentError::command(format!("cannot run `{}`: {e}", argv.join(" "))))
}
