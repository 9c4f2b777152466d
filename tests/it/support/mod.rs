//! Shared helpers for integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)] // test helpers panic on broken setups
pub mod kube_api;
pub mod lab;
pub mod lua;
pub mod proxy;
pub mod sim;
pub mod testhost;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// `target/<profile>`, with the agent and the NVML simulator (library and CLI) built in it.
/// They are other packages, so cargo does not build them for this package's tests; this
/// builds them once per test process, in the same profile.
// Each test binary uses a different part of the support module.
#[allow(dead_code)]
pub fn built_bins() -> &'static PathBuf {
    static CELL: OnceLock<PathBuf> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_BIN_EXE_migfleet"))
            .parent()
            .expect("target/<profile>")
            .to_path_buf();
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args([
            "build",
            "-q",
            "-p",
            "migfleet-agent",
            "-p",
            "migfleet-nvml-sim",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let ok = cmd.status().expect("cargo runs").success();
        assert!(ok, "building migfleet-agent and migfleet-nvml-sim failed");
        for f in ["migfleet-agent", "nvml-sim", "libnvidia_ml_sim.so"] {
            assert!(dir.join(f).exists(), "{f} missing in {}", dir.display());
        }
        dir
    })
}

/// One run of the `migfleet` binary: exit code, stdout, and everything (command, stdout,
/// stderr) for failure messages.
#[allow(dead_code)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub shown: String,
}

#[allow(dead_code)]
impl Run {
    /// The `PLAY RECAP` line of `host`.
    pub fn recap(&self, host: &str) -> String {
        self.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{host} ")))
            .unwrap_or_else(|| panic!("no recap line for {host}:\n{}", self.shown))
            .to_string()
    }
}

/// Runs `migfleet ARGS` from the repository root.
#[allow(dead_code)]
pub fn migfleet<S: AsRef<str>>(args: &[S]) -> Run {
    migfleet_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

/// Runs `migfleet ARGS` in `dir`.
#[allow(dead_code)]
pub fn migfleet_in<S: AsRef<str>>(dir: &std::path::Path, args: &[S]) -> Run {
    migfleet_env(dir, args, &[])
}

/// Runs `migfleet ARGS` in `dir` with these environment variables set (`HOME`, to give
/// it a `~/.ssh` of the test's own).
#[allow(dead_code)]
pub fn migfleet_env<S: AsRef<str>>(
    dir: &std::path::Path,
    args: &[S],
    env: &[(&str, &std::path::Path)],
) -> Run {
    let mut args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    // The checkout's own playbooks (given by relative path) leave no retry file in it;
    // playbooks in temp dirs keep the default, which the rolling tests check.
    if args.first() == Some(&"run")
        && args
            .get(1)
            .is_some_and(|p| std::path::Path::new(p).is_relative())
        && !args.iter().any(|a| a.starts_with("--retry-file"))
    {
        args.push("--no-retry-file");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_migfleet"))
        .args(&args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("the migfleet binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        shown: format!(
            "$ migfleet {}\n--- stdout\n{stdout}--- stderr\n{stderr}",
            args.join(" ")
        ),
        stdout,
        stderr,
    }
}
