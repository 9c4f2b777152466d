//! MIG state that survives a reboot. `persist` installs three files: the target (MIG mode
//! and instances per GPU) in `/etc/migfleet/target.json`, a copy of this agent beside it
//! (the cached one may live on a tmpfs), and `migfleet-mig.service`, a systemd oneshot
//! that runs `migfleet-agent --restore-mig <target>` early at boot, ordered before the
//! units that use the GPUs (it stops them first and starts them after when it runs on a
//! running system). Each file is written atomically and only when it differs; the
//! directory must belong to the agent's user and be writable by nobody else.
//! `--restore-mig` turns MIG on or off per GPU and applies each layout, leaving alone a
//! GPU whose UUID is not the one the layout was saved for.

use super::run;
use crate::error::{AgentError, Result};
use crate::nvml::Session;
use migfleet_proto::{ErrorKind, GpuLayout, OnBusy, Persisted};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the target and the agent copy live (`MIGFLEET_PERSIST_DIR` moves it, for tests).
pub const ENV_PERSIST_DIR: &str = "MIGFLEET_PERSIST_DIR";
/// Where the unit goes (`MIGFLEET_UNIT_DIR` moves it, for tests).
pub const ENV_UNIT_DIR: &str = "MIGFLEET_UNIT_DIR";
pub const UNIT: &str = "migfleet-mig.service";
const TARGET: &str = "target.json";
const AGENT: &str = "migfleet-agent";

fn dir_from(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

pub fn persist_dir() -> PathBuf {
    dir_from(ENV_PERSIST_DIR, "/etc/migfleet")
}

fn unit_dir() -> PathBuf {
    dir_from(ENV_UNIT_DIR, "/etc/systemd/system")
}

fn io(what: &str, path: &Path, e: std::io::Error) -> AgentError {
    AgentError::command(format!("cannot {what} {}: {e}", path.display()))
}

/// The target persisted on this host, if any.
pub fn read_target() -> Result<Option<Persisted>> {
    let path = persist_dir().join(TARGET);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", &path, e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        AgentError::command(format!("{} is not a migfleet target: {e}", path.display()))
    })
}

/// The directory exists (made 0755 if not), belongs to this process's user and nobody
/// else can write to it: what boot runs from it must be what we wrote.
fn private_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| io("set the mode of", dir, e))?;
    }
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| io("read", Path::new("/proc/self"), e))?;
    let m = std::fs::symlink_metadata(dir).map_err(|e| io("read", dir, e))?;
    if !m.is_dir() || m.uid() != me || m.mode() & 0o022 != 0 {
        return Err(AgentError::new(
            ErrorKind::Command,
            format!(
                "refusing to persist in {}: it must be a directory owned by uid {me} that no one else can write (owner uid {}, mode {:o})",
                dir.display(),
                m.uid(),
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Writes `bytes` to `path` (atomically, `mode`) unless it holds them already; whether
/// it wrote.
fn put(path: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|b| b == bytes)
        && std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o7777 == mode)
    {
        return Ok(false);
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(|e| io("write", &tmp, e))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io("set the mode of", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("replace", path, e)
    })?;
    Ok(true)
}

/// A value for systemd's `Environment="K=V"`: quotes and backslashes escaped, `%` doubled.
fn unit_quoted(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
}

/// The unit: runs the agent copy early at boot, before the GPU clients.
fn unit_text(
    agent: &Path,
    target: &Path,
    units: &[String],
    env: &[(String, String)],
    systemctl: &[String],
) -> String {
    let mut u = String::from(
        "# Written by migfleet (mig.persist): restores MIG mode and layouts at boot.\n\
         [Unit]\n\
         Description=migfleet: restore MIG mode and GPU instances\n\
         After=systemd-modules-load.service nvidia-persistenced.service\n",
    );
    if !units.is_empty() {
        u.push_str(&format!("Before={}\n", units.join(" ")));
    }
    u.push_str("\n[Service]\nType=oneshot\nRemainAfterExit=yes\n");
    for (k, v) in env {
        u.push_str(&format!("Environment=\"{}={}\"\n", k, unit_quoted(v)));
    }
    let ctl = systemctl.join(" ");
    if !units.is_empty() {
        u.push_str(&format!("ExecStartPre=-{ctl} stop {}\n", units.join(" ")));
    }
    u.push_str(&format!(
        "ExecStart={} --restore-mig {}\n",
        agent.display(),
        target.display()
    ));
    if !units.is_empty() {
        // --no-block: those units are ordered after this one; waiting would deadlock.
        u.push_str(&format!(
            "ExecStartPost=-{ctl} start --no-block {}\n",
            units.join(" ")
        ));
    }
    u.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    u
}

/// Installs (`Some`) or removes (`None`) the boot-time restore. Returns whether anything
/// changed and the files involved.
pub fn persist(target: Option<&Persisted>, systemctl: &[String]) -> Result<(bool, Vec<String>)> {
    let dir = persist_dir();
    let (target_path, agent_path) = (dir.join(TARGET), dir.join(AGENT));
    let unit_path = unit_dir().join(UNIT);
    let files = vec![
        target_path.display().to_string(),
        agent_path.display().to_string(),
        unit_path.display().to_string(),
    ];
    let ctl = |args: &[&str]| {
        let mut argv = systemctl.to_vec();
        argv.extend(args.iter().map(|s| s.to_string()));
        run(&argv)
    };
    let Some(target) = target else {
        let mut changed = false;
        if unit_path.exists() {
            let _ = ctl(&["disable", UNIT]);
            std::fs::remove_file(&unit_path).map_err(|e| io("remove", &unit_path, e))?;
            ctl(&["daemon-reload"])?;
            changed = true;
        }
        for p in [&target_path, &agent_path] {
            match std::fs::remove_file(p) {
                Ok(()) => changed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", p, e)),
            }
        }
        return Ok((changed, files));
    };
    for u in &target.units {
        super::host::check_unit(u)?;
    }
    private_dir(&dir)?;
    let me =
        std::fs::read("/proc/self/exe").map_err(|e| io("read", Path::new("/proc/self/exe"), e))?;
    let mut changed = put(&agent_path, &me, 0o755)?;
    let mut json = serde_json::to_string_pretty(target)
        .map_err(|e| AgentError::command(format!("cannot encode the target: {e}")))?;
    json.push('\n');
    changed |= put(&target_path, json.as_bytes(), 0o644)?;
    for (k, v) in &target.env {
        let name_ok = !k.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !k.starts_with(|c: char| c.is_ascii_digit());
        if !name_ok || v.contains('\n') {
            return Err(AgentError::new(
                ErrorKind::BadRequest,
                format!("persist: environment variable `{k}` cannot go into a unit file"),
            ));
        }
    }
    let unit = unit_text(
        &agent_path,
        &target_path,
        &target.units,
        &target.env,
        systemctl,
    );
    if let Some(parent) = unit_path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
    }
    let unit_changed = put(&unit_path, unit.as_bytes(), 0o644)?;
    let mut enabled_args = systemctl.to_vec();
    enabled_args.extend(["is-enabled", "--quiet", UNIT].map(String::from));
    let enabled = std::process::Command::new(&enabled_args[0])
        .args(&enabled_args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if unit_changed {
        ctl(&["daemon-reload"])?;
    }
    if unit_changed || !enabled {
        ctl(&["enable", UNIT])?;
        changed = true;
    }
    Ok((changed || unit_changed, files))
}

/// `--restore-mig FILE`: what the unit runs at boot. Every GPU is tried; the error lists
/// those that could not be restored.
pub fn restore_mig(file: &Path) -> Result<String> {
    let text = std::fs::read_to_string(file).map_err(|e| io("read", file, e))?;
    let target: Persisted = serde_json::from_str(&text).map_err(|e| {
        AgentError::command(format!("{} is not a migfleet target: {e}", file.display()))
    })?;
    // The target's environment (the inventory's migfleet_agent_env) must be the process's
    // before NVML loads: run again with it when it is not (as when run by hand).
    if target
        .env
        .iter()
        .any(|(k, v)| std::env::var_os(k).is_none_or(|have| have != v.as_str()))
    {
        let me = std::env::current_exe().map_err(|e| io("find", Path::new("/proc/self/exe"), e))?;
        let out = std::process::Command::new(&me)
            .arg("--restore-mig")
            .arg(file)
            .envs(target.env.iter().map(|(k, v)| (k, v)))
            .output()
            .map_err(|e| io("run", &me, e))?;
        let said = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .trim()
                .trim_start_matches("migfleet-agent: ")
                .to_string()
        };
        return if out.status.success() {
            Ok(said(&out.stdout))
        } else {
            Err(AgentError::command(said(&out.stderr)))
        };
    }
    let lib = target
        .nvml_lib
        .clone()
        .or_else(|| std::env::var(migfleet_proto::ENV_NVML_LIB).ok())
        .unwrap_or_else(|| migfleet_proto::DEFAULT_NVML_LIB.to_string());
    let session = Session::load(&lib)?;
    let mut failed = Vec::new();
    let mut done = Vec::new();
    let mut layouts = Vec::new();
    for g in &target.gpus {
        let uuid = session.device(g.index).and_then(|d| {
            d.uuid()
                .map_err(|e| AgentError::nvml(format!("UUID: {e}")).on_gpu(g.index))
        });
        match uuid {
            Ok(u) if u == g.uuid => {}
            Ok(u) => {
                failed.push(format!(
                    "GPU {}: it is {u}, not {} the layout was saved for; left alone",
                    g.index, g.uuid
                ));
                continue;
            }
            Err(e) => {
                failed.push(format!("GPU {}: {}", g.index, e.message));
                continue;
            }
        }
        let modes = super::mode::set_mig_mode(&session, &[g.index], g.mig_enabled, OnBusy::SkipGpu);
        match modes.as_deref() {
            Ok([m]) if m.current == g.mig_enabled => {}
            Ok([m]) => {
                failed.push(format!(
                    "GPU {}: MIG mode is {} (pending {}): it needs a GPU reset or another reboot",
                    g.index,
                    if m.current { "on" } else { "off" },
                    if m.pending { "on" } else { "off" }
                ));
                continue;
            }
            Ok(_) => {
                failed.push(format!("GPU {}: no mode result", g.index));
                continue;
            }
            Err(e) => {
                failed.push(format!("GPU {}: {}", g.index, e.message));
                continue;
            }
        }
        if g.mig_enabled {
            layouts.push(GpuLayout {
                index: g.index,
                instances: g.instances.clone(),
            });
        }
        done.push(g.index.to_string());
    }
    let opts = super::apply::Options {
        dry_run: false,
        allow_destroy_in_use: false,
        on_busy: OnBusy::SkipGpu,
        assume: &[],
    };
    if !layouts.is_empty() {
        let results = super::apply::apply(&session, &layouts, &opts, &mut |_| {})?;
        for r in results {
            if let Some(b) = r.blocked {
                failed.push(format!("GPU {}: {}", r.index, b.message));
            }
        }
    }
    if failed.is_empty() {
        Ok(format!("restored MIG on GPU {}", done.join(", ")))
    } else {
        Err(AgentError::command(failed.join("; ")))
    }
}
