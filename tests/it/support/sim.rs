//! Simulated GPU hosts and the inventory that reaches them, for tests and benches: each
//! host gets a simulator state file (GPUs of the given models), a stand-in `systemctl`
//! (test machines run no systemd), its own agent state directory, and the simulator's
//! reset as its GPU reset command. Hosts are reached over a real sshd test host or, for
//! `ansible_connection: local`, as a child process.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::testhost::{TestHost, client_key};

/// How a simulated host is reached.
pub enum Reach<'a> {
    Ssh(&'a TestHost),
    Local,
}

/// One simulated GPU host.
pub struct SimHost<'a> {
    pub name: String,
    /// Where its state, stand-ins and agent files live.
    pub dir: PathBuf,
    pub reach: Reach<'a>,
    /// `(model, count)`, e.g. `("H100-80GB", 2)`.
    pub gpus: Vec<(&'static str, u32)>,
    /// Inventory group (none: directly under `all`).
    pub group: Option<&'static str>,
}

impl<'a> SimHost<'a> {
    /// A host reached over `host`'s sshd, with its files in the test host's directory.
    pub fn ssh(host: &'a TestHost, gpus: &[(&'static str, u32)]) -> SimHost<'a> {
        SimHost {
            name: host.tag.clone(),
            dir: host.dir().to_path_buf(),
            reach: Reach::Ssh(host),
            gpus: gpus.to_vec(),
            group: None,
        }
    }

    /// A local host named `name` with its files in `dir/name`.
    pub fn local(dir: &Path, name: &str, gpus: &[(&'static str, u32)]) -> SimHost<'a> {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        SimHost {
            name: name.to_string(),
            dir: d,
            reach: Reach::Local,
            gpus: gpus.to_vec(),
            group: None,
        }
    }

    pub fn in_group(mut self, group: &'static str) -> SimHost<'a> {
        self.group = Some(group);
        self
    }

    /// The simulator's state file.
    pub fn state(&self) -> PathBuf {
        self.dir.join("sim.json")
    }

    /// Creates the simulated GPUs (empty, MIG off; kept if they exist already) and the
    /// stand-in systemctl.
    fn prepare(&self, bin: &Path) {
        if self.state().exists() {
            return;
        }
        let mut cmd = Command::new(bin.join("nvml-sim"));
        cmd.args(["init", "--state"]).arg(self.state());
        for (model, n) in &self.gpus {
            cmd.args(["--model", model, "--gpus", &n.to_string()]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "nvml-sim init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let systemctl = self.dir.join("systemctl");
        std::fs::write(
            &systemctl,
            "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/systemctl.log\"\ncase \"$1\" in is-active) exit 3 ;; esac\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let reboot = self.dir.join("reboot");
        std::fs::write(&reboot, reboot_script(bin)).unwrap();
        std::fs::set_permissions(&reboot, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// How many times the host rebooted (its reboot command ran).
    pub fn reboots(&self) -> usize {
        std::fs::read_to_string(self.dir.join("reboot.log"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// The simulated host's boot id now.
    pub fn boot_id(&self) -> String {
        std::fs::read_to_string(self.dir.join("sim.json.boot_id"))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// How the next reboots go: `Rebooting::Back` comes back after `delay`;
    /// `Rebooting::Never` stays down; `StaysPending` comes back with Ampere's pending
    /// mode still pending.
    pub fn rebooting(&self, how: Rebooting) {
        let d = &self.dir;
        let _ = std::fs::remove_file(d.join("reboot.never"));
        let _ = std::fs::remove_file(d.join("reboot.args"));
        match how {
            Rebooting::Back { delay_ms } => std::fs::write(
                d.join("reboot.delay"),
                format!("{}", delay_ms as f64 / 1000.0),
            )
            .unwrap(),
            Rebooting::Never => std::fs::write(d.join("reboot.never"), "").unwrap(),
            Rebooting::StaysPending => {
                std::fs::write(d.join("reboot.args"), "--pending-stays").unwrap()
            }
        }
    }

    fn yaml(&self, bin: &Path, indent: &str) -> String {
        let mut out = format!("{indent}{}:\n", self.name);
        let i = format!("{indent}  ");
        if let Reach::Ssh(h) = self.reach {
            out.push_str(&format!(
                "{i}ansible_host: {}\n{i}ansible_port: {}\n{i}migfleet_remote_dir: {}\n",
                h.address,
                h.port,
                h.remote_dir().display()
            ));
        } else {
            out.push_str(&format!("{i}ansible_connection: local\n"));
        }
        out.push_str(&format!(
            "{i}migfleet_agent_env: {{NVML_SIM_STATE: {}, MIGFLEET_SYSTEMCTL: {}, MIGFLEET_STATE_DIR: {}, MIGFLEET_PERSIST_DIR: {}, MIGFLEET_UNIT_DIR: {}}}\n",
            self.state().display(),
            self.dir.join("systemctl").display(),
            self.dir.join("agent-state").display(),
            self.dir.join("etc-migfleet").display(),
            self.dir.join("systemd").display(),
        ));
        out.push_str(&format!(
            "{i}migfleet_reboot_command: [{}]\n",
            self.dir.join("reboot").display()
        ));
        out.push_str(&format!(
            "{i}migfleet_gpu_reset_command: [{}, reset, --state, {}, -i, \"{{bus_ids}}\"]\n",
            bin.join("nvml-sim").display(),
            self.state().display()
        ));
        out
    }
}

/// How a test host's reboot goes.
#[derive(Clone, Copy, Debug)]
pub enum Rebooting {
    Back { delay_ms: u64 },
    Never,
    StaysPending,
}

/// The test hosts' reboot command: what a reboot does to a host, in the small. The host's
/// sshd with every connection it accepted and the agent that ran the command go away (a
/// real reboot kills every process, and nothing answers until the host is back), the
/// agent binary in the remote directory is gone (it lived on a tmpfs), the simulated GPUs
/// reboot (`nvml-sim reboot`: new boot id, instances gone, Hopper loses MIG mode), and
/// after a delay sshd listens again, unless `reboot.never` says the host does not come
/// back.
fn reboot_script(bin: &Path) -> String {
    format!(
        r#"#!/bin/sh
d="$(cd "$(dirname "$0")" && pwd)"
echo "reboot $(date +%s.%N)" >> "$d/reboot.log"
for f in listener.pid sshd.pid; do
  p="$(cat "$d/$f" 2>/dev/null)"
  [ -n "$p" ] || continue
  # Stop accepting, then end every connection it accepted, then the listener itself.
  kill -STOP "$p" 2>/dev/null && pkill -KILL -P "$p"; kill -KILL "$p" 2>/dev/null
done
kill -9 "$PPID" 2>/dev/null
rm -f "$d"/remote/migfleet-agent-*
{sim} reboot --state "$d/sim.json" $(cat "$d/reboot.args" 2>/dev/null) >/dev/null
[ -e "$d/reboot.never" ] && exit 0
sleep "$(cat "$d/reboot.delay" 2>/dev/null || echo 0.5)"
[ -f "$d/sshd_config" ] && exec /usr/sbin/sshd -f "$d/sshd_config" -E "$d/sshd.log"
exit 0
"#,
        sim = bin.join("nvml-sim").display()
    )
}

/// Prepares every host and writes the inventory reaching them to `path`: the sshd hosts
/// as root with the test client key, all with the simulator as their NVML.
pub fn write_inventory(path: &Path, hosts: &[SimHost<'_>]) -> PathBuf {
    write_inventory_as(path, hosts, "root")
}

/// [`write_inventory`], logging in to the sshd hosts as `user`.
pub fn write_inventory_as(path: &Path, hosts: &[SimHost<'_>], user: &str) -> PathBuf {
    let bin = super::built_bins();
    let mut yaml = format!(
        "all:\n  vars:\n    ansible_user: {user}\n    ansible_ssh_private_key_file: {}\n    migfleet_nvml_lib: {}\n",
        client_key().display(),
        bin.join("libnvidia_ml_sim.so").display()
    );
    let ungrouped: Vec<&SimHost> = hosts.iter().filter(|h| h.group.is_none()).collect();
    if !ungrouped.is_empty() {
        yaml.push_str("  hosts:\n");
        for h in &ungrouped {
            yaml.push_str(&h.yaml(bin, "    "));
        }
    }
    let mut groups: Vec<&str> = Vec::new();
    for g in hosts.iter().filter_map(|h| h.group) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    if !groups.is_empty() {
        yaml.push_str("  children:\n");
        for g in groups {
            yaml.push_str(&format!("    {g}:\n      hosts:\n"));
            for h in hosts.iter().filter(|h| h.group == Some(g)) {
                yaml.push_str(&h.yaml(bin, "        "));
            }
        }
    }
    for h in hosts {
        h.prepare(bin);
    }
    std::fs::write(path, yaml).unwrap();
    path.to_path_buf()
}
