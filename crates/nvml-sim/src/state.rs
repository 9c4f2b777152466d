//! The persisted simulator state (the JSON file named by `NVML_SIM_STATE`), its locking
//! and atomic replacement, the NDJSON call log and the error-injection queue.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::codes::Code;

/// Environment variable that names the state file for the library.
pub const STATE_ENV: &str = "NVML_SIM_STATE";

/// Names the GPUs to create when the state file does not exist yet, as
/// `MODEL:COUNT[,MODEL:COUNT...]` (e.g. `H100-80GB:4,A30-24GB:1`), so an inventory alone
/// can describe a simulated host without a separate `nvml-sim init`.
pub const INIT_ENV: &str = "NVML_SIM_INIT";

/// Milliseconds every call that changes the state takes (default 0): a slow driver, for
/// tests that must catch an operation in the middle.
pub const WRITE_DELAY_ENV: &str = "NVML_SIM_WRITE_DELAY_MS";

/// Schema version written into new state files.
pub const STATE_VERSION: u32 = 1;

/// One simulated host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Schema version (currently 1).
    #[serde(default = "default_version")]
    pub version: u32,
    /// Random hex; changes on every simulated reboot.
    pub boot_id: String,
    /// GPUs in NVML index order.
    pub gpus: Vec<Gpu>,
    /// Pending error injections, consumed in order.
    #[serde(default)]
    pub injections: Vec<Injection>,
    /// The driver version this host reports (`nvml-sim init --driver`); absent: the
    /// simulator's default, [`DEFAULT_DRIVER_VERSION`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
}

/// The driver version a host reports unless `init --driver` chose another.
pub const DEFAULT_DRIVER_VERSION: &str = "580.95.05-sim";

fn default_version() -> u32 {
    STATE_VERSION
}

/// One physical GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// NVML index.
    pub index: u32,
    /// Model key (see `hardware::MODELS`).
    pub model: String,
    /// `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub uuid: String,
    /// `00000000:XX:00.0`.
    pub pci_bus_id: String,
    /// Current MIG mode (0 disabled, 1 enabled).
    pub mig_mode_current: u32,
    /// Pending MIG mode (0 disabled, 1 enabled).
    pub mig_mode_pending: u32,
    /// GPU instances, in creation order.
    #[serde(default)]
    pub gpu_instances: Vec<GpuInstance>,
    /// Processes running on this GPU.
    #[serde(default)]
    pub processes: Vec<Process>,
}

/// One GPU instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuInstance {
    /// GI id (from 1).
    pub id: u32,
    /// Driver unique profile id (e.g. 19 for 1g on A100).
    pub profile_id: u32,
    /// Placement start, memory slices.
    pub start: u32,
    /// Placement size, memory slices.
    pub size: u32,
    /// Compute instances inside.
    #[serde(default)]
    pub compute_instances: Vec<ComputeInstance>,
}

/// One compute instance (= one MIG device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeInstance {
    /// CI id (from 0, per GI).
    pub id: u32,
    /// CI profile id (= NVML CI profile index).
    pub profile_id: u32,
    /// Placement start, compute slices within the GI.
    pub start: u32,
    /// Placement size, compute slices.
    pub size: u32,
    /// `MIG-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
    pub uuid: String,
}

/// One process holding a GPU context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Used GPU memory, MiB.
    pub used_memory_mib: u64,
    /// GI the process runs in; `None` = whole GPU.
    #[serde(default)]
    pub gpu_instance_id: Option<u32>,
    /// CI the process runs in; `None` = whole GPU.
    #[serde(default)]
    pub compute_instance_id: Option<u32>,
    /// Stands for a real process with this pid: it disappears from the GPU when that
    /// process ends, as the driver's list does. Lets tests kill a workload for real.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live: bool,
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|c| c != 'Z'),
        Err(_) => false,
    }
}

/// A pending error injection: after `skip` calls, the next `remaining` calls of
/// `function` return `code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injection {
    /// Exported NVML function name, e.g. `nvmlDeviceCreateGpuInstance`.
    pub function: String,
    /// `nvmlReturn_t` to return.
    pub code: Code,
    /// How many more calls fail.
    pub remaining: u32,
    /// How many calls succeed before the failing ones start.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skip: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl State {
    /// The driver version this host reports.
    pub fn driver(&self) -> &str {
        self.driver_version
            .as_deref()
            .unwrap_or(DEFAULT_DRIVER_VERSION)
    }

    /// Whether an injection for `function` is pending.
    pub fn has_injection(&self, function: &str) -> bool {
        self.injections
            .iter()
            .any(|i| i.function == function && i.remaining > 0)
    }

    /// Consumes one pending injection for `function`, returning its code.
    pub fn take_injection(&mut self, function: &str) -> Option<Code> {
        let pos = self
            .injections
            .iter()
            .position(|i| i.function == function && i.remaining > 0)?;
        let inj = self.injections.get_mut(pos)?;
        if inj.skip > 0 {
            inj.skip -= 1;
            return None;
        }
        inj.remaining -= 1;
        let code = inj.code;
        if inj.remaining == 0 {
            self.injections.remove(pos);
        }
        Some(code)
    }
}

/// An error reading or writing the state file; the message names the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// A state file plus its sibling `.lock` and `.calls` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    path: PathBuf,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

impl Store {
    /// A store for the state file at `path` (nothing is opened yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<state>.lock`.
    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock")
    }

    /// `<state>.calls` (NDJSON call log).
    pub fn calls_path(&self) -> PathBuf {
        sibling(&self.path, ".calls")
    }

    fn err(&self, what: &str, e: impl fmt::Display) -> StoreError {
        StoreError(format!("{what} {}: {e}", self.path.display()))
    }

    fn open_lock(&self) -> Result<File, StoreError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.lock_path())
            .map_err(|e| self.err("cannot open lock file for", e))
    }

    // `File::lock`/`lock_shared` are stable since Rust 1.89; the workspace MSRV predates them
    // but the toolchain in use has them, and the brief asks for std locking.
    fn lock_exclusive(&self) -> Result<File, StoreError> {
        let f = self.open_lock()?;
        f.lock().map_err(|e| self.err("cannot lock", e))?;
        Ok(f)
    }

    fn lock_shared(&self) -> Result<File, StoreError> {
        let f = self.open_lock()?;
        f.lock_shared().map_err(|e| self.err("cannot lock", e))?;
        Ok(f)
    }

    fn load_unlocked(&self) -> Result<State, StoreError> {
        let mut text = String::new();
        File::open(&self.path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| self.err("cannot read state", e))?;
        let mut state: State =
            serde_json::from_str(&text).map_err(|e| self.err("invalid state", e))?;
        for g in &mut state.gpus {
            g.processes.retain(|p| !p.live || pid_alive(p.pid));
        }
        Ok(state)
    }

    fn save_unlocked(&self, state: &State) -> Result<(), StoreError> {
        let mut text =
            serde_json::to_string_pretty(state).map_err(|e| self.err("cannot encode state", e))?;
        text.push('\n');
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = sibling(&self.path, &format!(".tmp.{}.{nanos}", std::process::id()));
        fs::write(&tmp, text).map_err(|e| self.err("cannot write temp file for", e))?;
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(self.err("cannot replace state", e));
        }
        // The simulated host's boot id, where the agent reads one (`MIGFLEET_BOOT_ID_FILE`),
        // as a real host's is in /proc/sys/kernel/random/boot_id.
        let boot = sibling(&self.path, ".boot_id");
        if fs::read_to_string(&boot).ok().as_deref() != Some(state.boot_id.as_str()) {
            fs::write(&boot, &state.boot_id)
                .map_err(|e| self.err("cannot write boot id for", e))?;
        }
        Ok(())
    }

    /// Reads the state under a shared lock.
    pub fn load(&self) -> Result<State, StoreError> {
        let _guard = self.lock_shared()?;
        self.load_unlocked()
    }

    /// Read-modify-write under the exclusive lock. `f` returns its result and whether the
    /// state changed; only a changed state is written (atomically, via rename).
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> (T, bool)) -> Result<T, StoreError> {
        let _guard = self.lock_exclusive()?;
        let mut state = self.load_unlocked()?;
        let (out, dirty) = f(&mut state);
        if dirty {
            self.save_unlocked(&state)?;
        }
        Ok(out)
    }

    /// Writes a fresh state; refuses to replace an existing file unless `force`.
    /// Also truncates the call log.
    pub fn create(&self, state: &State, force: bool) -> Result<(), StoreError> {
        let _guard = self.lock_exclusive()?;
        if self.path.exists() && !force {
            return Err(StoreError(format!(
                "{} already exists (use --force to overwrite)",
                self.path.display()
            )));
        }
        self.save_unlocked(state)?;
        match fs::remove_file(self.calls_path()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("cannot truncate call log of", e)),
        }
    }

    /// Appends one NDJSON line to `<state>.calls` (a single `write` on an append-mode file).
    pub fn append_call(&self, entry: &serde_json::Value) -> Result<(), StoreError> {
        self.append_line(&entry.to_string())
    }

    /// Appends one raw line (without its newline) to `<state>.calls`.
    pub fn append_line(&self, line: &str) -> Result<(), StoreError> {
        let mut line = line.to_string();
        line.push('\n');
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.calls_path())
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .map_err(|e| self.err("cannot append call log of", e))
    }

    /// Reads every call-log entry (an absent log is empty).
    pub fn read_calls(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        let text = match fs::read_to_string(self.calls_path()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("cannot read call log of", e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| self.err("invalid call log line of", e)))
            .collect()
    }
}

/// `n` random bytes as lowercase hex (from `/dev/urandom`, falling back to std's hasher keys).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let ok = File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok();
    if !ok {
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            let v = h.finish().to_le_bytes();
            for (b, r) in chunk.iter_mut().zip(v) {
                *b = r;
            }
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh UUID string with the given prefix (`GPU` or `MIG`).
pub fn random_uuid(prefix: &str) -> String {
    let h = random_hex(16);
    let part = |a: usize, b: usize| h.get(a..b).unwrap_or("0");
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_shape() {
        let u = random_uuid("GPU");
        assert_eq!(u.len(), 40);
        assert!(u.starts_with("GPU-"));
        assert_eq!(u.matches('-').count(), 5);
    }

    #[test]
    fn injections_consume() {
        let mut s = State {
            version: 1,
            boot_id: "x".into(),
            gpus: vec![],
            driver_version: None,
            injections: vec![Injection {
                function: "f".into(),
                code: 23,
                remaining: 2,
                skip: 1,
            }],
        };
        assert_eq!(s.take_injection("g"), None);
        assert_eq!(s.take_injection("f"), None, "the first call is let through");
        assert_eq!(s.take_injection("f"), Some(23));
        assert_eq!(s.take_injection("f"), Some(23));
        assert_eq!(s.take_injection("f"), None);
        assert!(s.injections.is_empty());
    }
}
