//! `hello`: who and where the agent is.

use migfleet_proto::{ENV_BOOT_ID_FILE, Hello, PROTOCOL_VERSION};

pub fn hello() -> Hello {
    Hello {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: PROTOCOL_VERSION,
        arch: std::env::consts::ARCH.to_string(),
        hostname: read_trimmed("/proc/sys/kernel/hostname")
            .or_else(|| read_trimmed("/etc/hostname"))
            .unwrap_or_else(|| "unknown".to_string()),
        boot_id: boot_id(),
        pid: std::process::id(),
    }
}

/// The kernel's boot id, or the file named by `MIGFLEET_BOOT_ID_FILE`. A host whose GPUs
/// are the NVML simulator's (`NVML_SIM_STATE` set, no `MIGFLEET_BOOT_ID_FILE`) boots when
/// the simulator does: its boot id is the one the simulator keeps beside its state.
pub fn boot_id() -> String {
    let path = std::env::var(ENV_BOOT_ID_FILE)
        .ok()
        .or_else(|| {
            std::env::var("NVML_SIM_STATE")
                .ok()
                .map(|s| format!("{s}.boot_id"))
                .filter(|p| std::path::Path::new(p).is_file())
        })
        .unwrap_or_else(|| "/proc/sys/kernel/random/boot_id".to_string());
    read_trimmed(&path).unwrap_or_else(|| "unknown".to_string())
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
