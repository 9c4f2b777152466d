//! Fan-out benchmark: `migfleet facts` over 50 sshd test hosts on 127.0.x.y, side by side in
//! one run with (a) 50 parallel OpenSSH clients running `true` and (b) `ansible all -m
//! command -a true -f 50` on the same inventory (skipped with a note when ansible-core is
//! not installed). Wall time and the controller-side CPU (children's user+system time).
//! Prints Markdown for `docs/benchmarks.md`. Run with `cargo bench --bench fleet`.

// A benchmark harness, like a test: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used)]

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::testhost::{TestFleet, client_key};

const HOSTS: usize = 50;
const RUNS: usize = 3;

/// CPU seconds used by this process's waited-for children so far (cutime + cstime).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command name start at field 3; cutime and cstime are fields 16, 17.
    let ticks: f64 = [13, 14]
        .iter()
        .filter_map(|i| f.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

fn measure(mut f: impl FnMut()) -> (Duration, f64) {
    let cpu = children_cpu();
    let t = Instant::now();
    f();
    (t.elapsed(), children_cpu() - cpu)
}

fn median(mut v: Vec<(Duration, f64)>) -> (Duration, f64) {
    v.sort_by_key(|x| x.0);
    v[v.len() / 2]
}

fn main() {
    let bin = support::built_bins().clone();

    let fleet = TestFleet::start(HOSTS);
    let kh = fleet.known_hosts_all();
    let key = client_key();
    let mut yaml = format!(
        "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {}\n    ansible_python_interpreter: /usr/bin/python3\n    migfleet_nvml_lib: {}\n  hosts:\n",
        key.display(),
        bin.join("libnvidia_ml_sim.so").display()
    );
    for h in &fleet.hosts {
        let state = h.dir().join("sim.json");
        let ok = Command::new(bin.join("nvml-sim"))
            .args(["init", "--force", "--state"])
            .arg(&state)
            .args(["--model", "H100-80GB", "--gpus", "8"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success());
        yaml.push_str(&format!(
            "    {}:\n      ansible_host: {}\n      ansible_port: {}\n      migfleet_remote_dir: {}\n      migfleet_agent_env: {{NVML_SIM_STATE: {}}}\n",
            h.tag,
            h.address,
            h.port,
            h.remote_dir().display(),
            state.display()
        ));
    }
    let inv = fleet.dir().join("inventory.yml");
    std::fs::write(&inv, yaml).unwrap();

    let facts = |quiet: bool| {
        let out = Command::new(env!("CARGO_BIN_EXE_migfleet"))
            .args(["facts", "-i"])
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh)
            .args(["--output", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success() || quiet,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The first run uploads the agent to every host; measured runs find it cached.
    facts(false);
    let ours = median((0..RUNS).map(|_| measure(|| facts(false))).collect());

    let ssh_all = || {
        let children: Vec<_> = fleet
            .hosts
            .iter()
            .map(|h| {
                Command::new("ssh")
                    .args([
                        "-q",
                        "-o",
                        "BatchMode=yes",
                        "-o",
                        "StrictHostKeyChecking=yes",
                    ])
                    .arg("-o")
                    .arg(format!("UserKnownHostsFile={}", kh.display()))
                    .arg("-i")
                    .arg(&key)
                    .args(["-p", &h.port.to_string()])
                    .arg(format!("root@{}", h.address))
                    .arg("true")
                    .stdin(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut c in children {
            assert!(c.wait().unwrap().success(), "ssh failed");
        }
    };
    let ssh = median((0..RUNS).map(|_| measure(ssh_all)).collect());

    let ansible_ok = Command::new("ansible")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let ansible = ansible_ok.then(|| {
        let run = || {
            let out = Command::new("ansible")
                .args(["all", "-i"])
                .arg(&inv)
                .args(["-m", "command", "-a", "true", "-f", "50"])
                .env("ANSIBLE_HOST_KEY_CHECKING", "True")
                .env(
                    "ANSIBLE_SSH_ARGS",
                    format!("-o UserKnownHostsFile={} -o ControlMaster=no", kh.display()),
                )
                .env("ANSIBLE_LOCAL_TEMP", fleet.dir().join("ansible-tmp"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(out.success(), "ansible failed");
        };
        median((0..RUNS).map(|_| measure(run)).collect())
    });

    // `migfleet run playbooks/inference.lua` on the same hosts: the first run turns MIG on
    // and creates 7 instances on each of 8 GPUs per host; the second finds nothing to do.
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_migfleet"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args([
                "run",
                "playbooks/inference.lua",
                "--skip-tags",
                "drain",
                "-i",
            ])
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh)
            .args(["--output", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    };
    let first = measure(run);
    let second = median((0..RUNS).map(|_| measure(run)).collect());

    let s = |d: Duration| d.as_secs_f64();
    println!("### Fan-out over {HOSTS} sshd hosts on loopback (median of {RUNS})\n");
    println!("| | wall | controller CPU | wall vs ssh |");
    println!("|---|---|---|---|");
    println!(
        "| `migfleet facts` (8 simulated GPUs per host, agent cached) | {:.2} s | {:.2} s | {:.2}× |",
        s(ours.0),
        ours.1,
        s(ours.0) / s(ssh.0)
    );
    println!(
        "| (a) {HOSTS} parallel `ssh host true` | {:.2} s | {:.2} s | 1.00× |",
        s(ssh.0),
        ssh.1
    );
    println!(
        "| `migfleet run playbooks/inference.lua`, first run (MIG on, 7 instances x 8 GPUs x {HOSTS} hosts) | {:.2} s | {:.2} s | {:.2}× |",
        s(first.0),
        first.1,
        s(first.0) / s(ssh.0)
    );
    println!(
        "| `migfleet run playbooks/inference.lua`, second run (no change) | {:.2} s | {:.2} s | {:.2}× |",
        s(second.0),
        second.1,
        s(second.0) / s(ssh.0)
    );
    match ansible {
        Some(a) => println!(
            "| (b) `ansible all -m command -a true -f 50` | {:.2} s | {:.2} s | {:.2}× |",
            s(a.0),
            a.1,
            s(a.0) / s(ssh.0)
        ),
        None => println!("| (b) ansible | not installed (`pip install ansible-core`) | | |"),
    }
}
