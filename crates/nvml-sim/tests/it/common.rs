//! Test helpers: locating the built cdylib and CLI, per-test state files, and running each
//! NVML test body in its own child process (the library's init refcount and
//! `NVML_SIM_STATE` are process-global).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nvml_wrapper::Nvml;

/// Set in the child process; holds the state path (or `none`).
pub const CHILD: &str = "NVML_SIM_TEST_CHILD";

/// `target/<profile>/libnvidia_ml_sim.so`, next to the `deps/` dir holding this test binary.
pub fn lib_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps/");
    let lib = profile_dir.join("libnvidia_ml_sim.so");
    assert!(
        lib.exists(),
        "simulated NVML library not found at {}; cargo builds the cdylib alongside the \
         package's integration tests — run `cargo build -p migfleet-nvml-sim` first",
        lib.display()
    );
    lib
}

/// The `nvml-sim` CLI built for this package.
pub fn cli_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nvml-sim"))
}

/// Runs the CLI against `state` (subcommand words first, `--state` appended).
pub fn sim(state: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(cli_path());
    cmd.args(args).arg("--state").arg(state);
    cmd.output().expect("run nvml-sim")
}

/// Runs the CLI and asserts success.
pub fn sim_ok(state: &Path, args: &[&str]) -> String {
    let out = sim(state, args);
    assert!(
        out.status.success(),
        "nvml-sim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh, empty per-test directory.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("nvml-sim-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test dir");
    dir
}

/// A new state file made by `nvml-sim init <init...>`.
pub fn new_state(name: &str, init: &[&str]) -> PathBuf {
    let state = test_dir(name).join("state.json");
    let mut args = vec!["init"];
    args.extend_from_slice(init);
    sim_ok(&state, &args);
    state
}

/// Re-runs test `name` of the `nvml_abi` module of this binary in a child process.
/// `state = None` runs the child without `NVML_SIM_STATE`.
pub fn run_child(name: &str, state: Option<&Path>) {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    let full = format!("nvml_abi::{name}");
    cmd.args([full.as_str(), "--exact", "--nocapture", "--test-threads=1"]);
    match state {
        Some(s) => {
            cmd.env(CHILD, s).env("NVML_SIM_STATE", s);
        }
        None => {
            cmd.env(CHILD, "none").env_remove("NVML_SIM_STATE");
        }
    }
    let out = cmd.output().expect("spawn child test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child test {name} failed:\n{stdout}\n{stderr}"
    );
}

/// In the parent: makes a state with `init` and re-runs the test in a child, returning
/// `None`. In the child: returns the state path to run the body against.
pub fn isolate(name: &str, init: &[&str]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CHILD) {
        return Some(PathBuf::from(p));
    }
    let state = new_state(name, init);
    run_child(name, Some(&state));
    None
}

/// Loads the simulated library through nvml-wrapper's real dlopen path.
pub fn open() -> Nvml {
    Nvml::builder()
        .lib_path(lib_path().as_os_str())
        .init()
        .expect("nvml init against the simulator")
}

/// The parsed state file.
pub fn state_json(state: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(state).expect("read state")).expect("json")
}
