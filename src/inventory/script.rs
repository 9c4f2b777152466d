//! Executable (dynamic) inventories: run `<path> --list`, read Ansible's JSON contract (groups, `_meta.hostvars`, `--host` fallback).

use super::{Inventory, InventoryError};
use crate::input::MAX_INPUT_BYTES;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A regular file with an execute bit (Ansible tries the script plugin first for those).
pub(crate) fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// What the script printed, or why it was stopped.
enum Piped {
    Stdout(std::io::Result<Vec<u8>>),
    Stderr(Vec<u8>),
    Exited(std::io::Result<ExitStatus>),
}

/// The most of a script's stderr kept for an error message.
const STDERR_KEPT: u64 = 4096;

/// Runs the script once. It gets no stdin, runs in its own process group (so that what
/// it starts can be stopped with it) and must finish by `deadline`, printing at most
/// [`MAX_INPUT_BYTES`](crate::input::MAX_INPUT_BYTES).
fn run(
    path: &Path,
    args: &[&str],
    (deadline, timeout): (Instant, Duration),
) -> Result<String, InventoryError> {
    let err = |m: String| InventoryError::Script {
        path: path.to_path_buf(),
        message: m,
    };
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| err(format!("failed to execute with {args:?}: {e}")))?;
    let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let r = out
                .take(MAX_INPUT_BYTES + 1)
                .read_to_end(&mut buf)
                .map(|_| buf);
            let _ = tx.send(Piped::Stdout(r));
        });
    }
    if let Some(err_pipe) = child.stderr.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut err_pipe = err_pipe;
            let _ = (&mut err_pipe).take(STDERR_KEPT).read_to_end(&mut kept);
            // Drain the rest so the script never blocks on a full pipe.
            let _ = std::io::copy(&mut err_pipe, &mut std::io::sink());
            let _ = tx.send(Piped::Stderr(kept));
        });
    }
    std::thread::spawn(move || {
        let _ = tx.send(Piped::Exited(child.wait()));
    });
    let stop = |why: String| {
        // The whole group: a shell script's children hold its pipes open.
        let _ = killpg(group, Signal::SIGKILL);
        err(why)
    };
    let (mut stdout, mut stderr, mut status) = (None, None, None);
    while stdout.is_none() || stderr.is_none() || status.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Piped::Stdout(Ok(b))) if b.len() as u64 > MAX_INPUT_BYTES => {
                return Err(stop(format!(
                    "{args:?} printed more than {} MiB; stopped it",
                    MAX_INPUT_BYTES >> 20
                )));
            }
            Ok(Piped::Stdout(r)) => {
                stdout = Some(r.map_err(|e| err(format!("reading what {args:?} printed: {e}")))?)
            }
            Ok(Piped::Stderr(b)) => stderr = Some(b),
            Ok(Piped::Exited(r)) => {
                status = Some(r.map_err(|e| err(format!("waiting for {args:?}: {e}")))?)
            }
            Err(_) => {
                return Err(stop(format!(
                    "{args:?} did not finish within {} s (the inventory script timeout); stopped it",
                    timeout.as_secs()
                )));
            }
        }
    }
    let (stdout, stderr, status) = (
        stdout.unwrap_or_default(),
        stderr.unwrap_or_default(),
        status.unwrap_or_default(),
    );
    if !status.success() {
        return Err(err(format!(
            "{args:?} exited with {status}; stderr: {}",
            String::from_utf8_lossy(&stderr).trim()
        )));
    }
    String::from_utf8(stdout).map_err(|_| err(format!("{args:?} printed output that is not UTF-8")))
}

fn json_err(path: &Path, what: &str, e: &serde_json::Error) -> InventoryError {
    InventoryError::Script {
        path: path.to_path_buf(),
        message: format!("output of {what} is not valid JSON: {e}"),
    }
}

/// Runs the script and adds its groups, hosts and variables to `inv`; all the calls it
/// takes (`--list`, then `--host` per host without `_meta`) end within the inventory's
/// script timeout.
pub(crate) fn parse(inv: &mut Inventory, path: &Path) -> Result<(), InventoryError> {
    let timeout = inv.limits.script_timeout;
    let deadline = (Instant::now() + timeout, timeout);
    let err = |m: String| InventoryError::Script {
        path: path.to_path_buf(),
        message: m,
    };
    let out = run(path, &["--list"], deadline)?;
    let data: Value = serde_json::from_str(&out).map_err(|e| json_err(path, "--list", &e))?;
    let Value::Object(top) = data else {
        return Err(err(format!(
            "--list printed {}, expected a JSON object of groups",
            kind(&data)
        )));
    };
    let mut meta: Option<serde_json::Map<String, Value>> = None;
    let mut seen_hosts: Vec<String> = Vec::new();
    for (group, gdata) in top {
        if group == "_meta" {
            match gdata.get("hostvars") {
                Some(Value::Object(m)) => meta = Some(m.clone()),
                Some(other) => {
                    return Err(err(format!(
                        "'_meta.hostvars' is {}, expected an object",
                        kind(other)
                    )));
                }
                None => {
                    return Err(err("'_meta' has no 'hostvars' object".into()));
                }
            }
            continue;
        }
        inv.add_group(&group);
        let gdata = match gdata {
            Value::Object(m)
                if ["hosts", "vars", "children"]
                    .iter()
                    .any(|k| m.contains_key(*k)) =>
            {
                m
            }
            // Legacy: a bare mapping is the vars of a host named like the group.
            Value::Object(m) => {
                let mut n = serde_json::Map::new();
                n.insert(
                    "hosts".into(),
                    Value::Array(vec![Value::String(group.clone())]),
                );
                n.insert("vars".into(), Value::Object(m));
                n
            }
            // Legacy: a list is the group's hosts.
            other => {
                let mut n = serde_json::Map::new();
                n.insert("hosts".into(), other);
                n
            }
        };
        if let Some(hosts) = gdata.get("hosts") {
            let Value::Array(hosts) = hosts else {
                return Err(err(format!(
                    "'{group}.hosts' is {}, expected a list",
                    kind(hosts)
                )));
            };
            for h in hosts {
                let Value::String(h) = h else {
                    return Err(err(format!(
                        "'{group}.hosts' contains {}, expected host name strings",
                        kind(h)
                    )));
                };
                if !seen_hosts.contains(h) {
                    seen_hosts.push(h.clone());
                }
                inv.add_host(h, Some(&group), None);
            }
        }
        if let Some(vars) = gdata.get("vars") {
            let Value::Object(vars) = vars else {
                return Err(err(format!(
                    "'{group}.vars' is {}, expected an object",
                    kind(vars)
                )));
            };
            for (k, v) in vars {
                inv.set_group_var(&group, k, v.clone())
                    .map_err(|m| err(format!("group '{group}': {m}")))?;
            }
        }
        if let Some(children) = gdata.get("children") {
            let Value::Array(children) = children else {
                return Err(err(format!(
                    "'{group}.children' is {}, expected a list",
                    kind(children)
                )));
            };
            for c in children {
                let Value::String(c) = c else {
                    return Err(err(format!(
                        "'{group}.children' contains {}, expected group names",
                        kind(c)
                    )));
                };
                inv.add_child_group(&group, c).map_err(&err)?;
            }
        }
    }
    for h in seen_hosts {
        let vars = match &meta {
            Some(m) => m
                .get(&h)
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
            None => {
                let out = run(path, &["--host", &h], deadline)?;
                if out.trim().is_empty() {
                    Value::Object(Default::default())
                } else {
                    serde_json::from_str(&out)
                        .map_err(|e| json_err(path, &format!("--host {h}"), &e))?
                }
            }
        };
        let Value::Object(vars) = vars else {
            return Err(err(format!(
                "variables of host '{h}' are {}, expected an object",
                kind(&vars)
            )));
        };
        for (k, v) in vars {
            inv.set_host_var(&h, &k, v);
        }
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
