//! The host's lock: one session at a time changes a host. An exclusive `flock` on
//! `<state dir>/host.lock`, held by the agent process until it exits (the kernel lets go
//! of it however the process ends, so a killed run never leaves a stale lock). The holder
//! writes who it is into the file, for the message the next one gets.

use crate::error::{AgentError, Result};
use migfleet_proto::{ErrorKind, Event};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LOCK_FILE: &str = "host.lock";

/// How often a wait for the lock says so.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The lock, once taken; dropping it (or exiting) lets go.
pub struct HostLock {
    _file: File,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Who holds the lock, as the holder wrote it: `holder` and since when.
fn describe_holder(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|f| f.take(4096).read_to_string(&mut text));
    let mut lines = text.lines();
    let who = lines.next().unwrap_or("").trim();
    let since = lines
        .next()
        .and_then(|l| l.trim().parse::<u64>().ok())
        .map(|t| format!(", for {} s", now_s().saturating_sub(t)))
        .unwrap_or_default();
    if who.is_empty() {
        "another migfleet session".to_string()
    } else {
        format!("{who}{since}")
    }
}

/// Takes the host's lock in `dir`, waiting at most `wait` for its holder (and saying so
/// through `emit`). `holder` is written for whoever waits next.
pub fn take(
    dir: &Path,
    holder: &str,
    wait: Duration,
    emit: &mut dyn FnMut(Event),
) -> Result<(HostLock, Duration)> {
    let path: PathBuf = dir.join(LOCK_FILE);
    let io = |what: &str, e: std::io::Error| {
        AgentError::command(format!(
            "cannot {what} the host lock {}: {e}",
            path.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io("open", e))?;
    let started = Instant::now();
    let mut said = None::<Instant>;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                let waited = started.elapsed();
                if waited >= wait {
                    return Err(AgentError::new(
                        ErrorKind::Locked,
                        format!(
                            "this host is locked by {} ({}); waited {} s",
                            describe_holder(&path),
                            path.display(),
                            waited.as_secs()
                        ),
                    ));
                }
                if said.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
                    said = Some(Instant::now());
                    emit(Event::Progress {
                        message: format!(
                            "waiting for the host lock, held by {}",
                            describe_holder(&path)
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(50).min(wait - waited));
            }
            Err(TryLockError::Error(e)) => return Err(io("take", e)),
        }
    }
    let text = format!(
        "{} (agent pid {})\n{}\n",
        holder.lines().next().unwrap_or(""),
        std::process::id(),
        now_s()
    );
    file.set_len(0).map_err(|e| io("write", e))?;
    file.rewind().map_err(|e| io("write", e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| io("write", e))?;
    Ok((HostLock { _file: file }, started.elapsed()))
}
