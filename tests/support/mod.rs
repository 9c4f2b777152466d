//! Shared helpers for integration tests.
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
