//! A lab for whole runs: sshd test hosts with simulated GPUs (each its own list), their
//! inventory and known_hosts, and what tests read back (the simulator's state and call
//! log) or poke (processes, injections, inventory edits).
#![allow(dead_code)]

use super::sim::{Rebooting, SimHost, write_inventory};
use super::testhost::{TestHost, write_known_hosts};
use super::{Run, built_bins, migfleet};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Lab {
    pub hosts: Vec<TestHost>,
    gpus: Vec<Vec<(&'static str, u32)>>,
    pub inventory: PathBuf,
    pub known_hosts: PathBuf,
}

impl Lab {
    /// One sshd host per entry of `gpus`, named `<tag><i>`; their reboots come back
    /// after 300 ms.
    pub fn new(tag: &str, gpus: &[&[(&'static str, u32)]]) -> Lab {
        let hosts: Vec<TestHost> = (0..gpus.len())
            .map(|i| TestHost::start(&format!("{tag}{i}")))
            .collect();
        let sims: Vec<SimHost> = hosts
            .iter()
            .zip(gpus)
            .map(|(h, g)| SimHost::ssh(h, g))
            .collect();
        let inventory = write_inventory(&hosts[0].dir().join("inventory.yml"), &sims);
        for s in &sims {
            s.rebooting(Rebooting::Back { delay_ms: 300 });
        }
        let known_hosts = write_known_hosts(&hosts[0].dir().join("known_hosts"), hosts.iter());
        Lab {
            gpus: gpus.iter().map(|g| g.to_vec()).collect(),
            hosts,
            inventory,
            known_hosts,
        }
    }

    pub fn sim(&self, i: usize) -> SimHost<'_> {
        SimHost::ssh(&self.hosts[i], &self.gpus[i])
    }

    pub fn edit_inventory(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.inventory).unwrap();
        std::fs::write(&self.inventory, f(text)).unwrap();
    }

    /// Adds `line` under `all: vars:` of the inventory.
    pub fn all_var(&self, line: &str) {
        self.edit_inventory(|t| t.replacen("  vars:\n", &format!("  vars:\n    {line}\n"), 1));
    }

    /// Adds `NAME: value` to host `i`'s agent environment.
    pub fn agent_env(&self, i: usize, name: &str, value: &str) {
        let tag = format!("    {}:\n", self.hosts[i].tag);
        self.edit_inventory(|t| {
            let (head, tail) = t.split_at(t.find(&tag).unwrap());
            let tail = tail.replacen(
                "migfleet_agent_env: {",
                &format!("migfleet_agent_env: {{{name}: {value}, "),
                1,
            );
            format!("{head}{tail}")
        });
    }

    /// Host `i` is reached at `port` of its address (a proxy in front of its sshd): the
    /// inventory says so and known_hosts knows the host's key there.
    pub fn reach_at(&self, i: usize, port: u16) {
        let tag = format!("    {}:\n", self.hosts[i].tag);
        self.edit_inventory(|t| {
            let (head, tail) = t.split_at(t.find(&tag).unwrap());
            let at = tail.find("ansible_port: ").unwrap();
            let end = at + tail[at..].find('\n').unwrap();
            format!("{head}{}ansible_port: {port}{}", &tail[..at], &tail[end..])
        });
        let mut kh = std::fs::read_to_string(&self.known_hosts).unwrap();
        kh.push_str(&format!(
            "[{}]:{port} {}\n",
            self.hosts[i].address,
            self.hosts[i].host_key()
        ));
        std::fs::write(&self.known_hosts, kh).unwrap();
    }

    /// Every host's GPU reset command fails, as on a platform that forbids resets.
    pub fn forbid_resets(&self) {
        self.edit_inventory(|t| {
            t.lines()
                .map(|l| match l.find("migfleet_gpu_reset_command:") {
                    Some(i) => format!("{}migfleet_gpu_reset_command: [/bin/false]\n", &l[..i]),
                    None => format!("{l}\n"),
                })
                .collect()
        });
    }

    /// Writes a playbook into the lab; returns its path.
    pub fn playbook(&self, name: &str, body: &str) -> String {
        let p = self.hosts[0].dir().join(name);
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }

    fn args(&self, playbook: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "run".to_string(),
            playbook.to_string(),
            "-i".into(),
            self.inventory.display().to_string(),
            "--known-hosts".into(),
            self.known_hosts.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    pub fn run(&self, playbook: &str, extra: &[&str]) -> Run {
        migfleet(&self.args(playbook, extra))
    }

    /// Starts a run in the background (stdout and stderr piped).
    pub fn spawn(&self, playbook: &str) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_migfleet"))
            .args(self.args(playbook, &[]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `migfleet facts` over the lab.
    pub fn facts(&self) -> Run {
        let inv = self.inventory.display().to_string();
        let kh = self.known_hosts.display().to_string();
        migfleet(&["facts", "-i", &inv, "--known-hosts", &kh])
    }

    /// The simulator's state of host `i`.
    pub fn state(&self, i: usize) -> Value {
        let p = self.hosts[i].dir().join("sim.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    /// Runs `nvml-sim ARGS --state <host i's state>`; it must succeed.
    pub fn nvml_sim(&self, i: usize, args: &[&str]) {
        let out = Command::new(built_bins().join("nvml-sim"))
            .args(args)
            .arg("--state")
            .arg(self.hosts[i].dir().join("sim.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nvml-sim {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Puts process `pid` on the first instance of `gpu` of host `i`; returns the
    /// instance's (GI, CI) ids.
    pub fn busy(&self, i: usize, gpu: usize, pid: u32) -> (u64, u64) {
        self.busy_where(i, gpu, pid, |_| true)
    }

    /// Puts process `pid` on the first instance of `gpu` of host `i` that `pick` accepts
    /// (given the simulator's GI object); returns the instance's (GI, CI) ids.
    pub fn busy_where(
        &self,
        i: usize,
        gpu: usize,
        pid: u32,
        pick: impl Fn(&Value) -> bool,
    ) -> (u64, u64) {
        let state = self.state(i);
        let gi = state["gpus"][gpu]["gpu_instances"]
            .as_array()
            .and_then(|a| a.iter().find(|g| pick(g)))
            .unwrap_or_else(|| panic!("no such instance on GPU {gpu} of host {i}"));
        let (g, c) = (
            gi["id"].as_u64().unwrap(),
            gi["compute_instances"][0]["id"].as_u64().unwrap(),
        );
        let (gpu, g_s, c_s, pid) = (
            gpu.to_string(),
            g.to_string(),
            c.to_string(),
            pid.to_string(),
        );
        self.nvml_sim(
            i,
            &[
                "process", "add", "--gpu", &gpu, "--gi", &g_s, "--ci", &c_s, "--pid", &pid,
                "--mem", "1000",
            ],
        );
        (g, c)
    }

    /// NVML calls of host `i` whose name contains `what`.
    pub fn calls(&self, i: usize, what: &str) -> usize {
        std::fs::read_to_string(self.hosts[i].dir().join("sim.json.calls"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    }
}

/// Driver profile ids of a GPU's instances, sorted.
pub fn profiles(state: &Value, gpu: usize) -> Vec<u64> {
    let mut v: Vec<u64> = state["gpus"][gpu]["gpu_instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["profile_id"].as_u64().unwrap())
        .collect();
    v.sort();
    v
}

/// Whether GPU instance `gi` of `gpu` still exists with compute instance `ci`.
pub fn has_instance(state: &Value, gpu: usize, gi: u64, ci: u64) -> bool {
    state["gpus"][gpu]["gpu_instances"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| {
            i["id"] == gi
                && i["compute_instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["id"] == ci)
        })
}

/// The recap line of `host` in a run's stdout (empty if none).
pub fn recap_of(stdout: &str, host: &str) -> String {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{host} ")))
        .unwrap_or_default()
        .to_string()
}

/// Waits (at most a minute) until `cond` holds.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
