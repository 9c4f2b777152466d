//! Faults in the middle of a run, over real sshd test hosts with simulated GPUs. Each test
//! asserts what the host is left with — no instance in use destroyed, every GPU in a
//! state the next run starts from — and that a rerun converges.

use crate::support::proxy::Proxy;
use crate::support::sim::{SimHost, write_inventory};
use crate::support::testhost::{TestHost, write_known_hosts};
use crate::support::{Run, built_bins, migfleet};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Lab {
    hosts: Vec<TestHost>,
    inventory: PathBuf,
    known_hosts: PathBuf,
}

const LAYOUT: &str = r#"
return play { name = "p", hosts = "all", tasks = {
  task { name = "MIG on", mig.mode{ enabled = true } },
  task { name = "layout", mig.apply{ layout = "3g.40gb, 2g.20gb, 2x1g.10gb" } },
} }
"#;

// H100-80GB profile ids: 3g.40gb 9, 2g.20gb 14, 1g.10gb 19.
const WANT: [u64; 4] = [9, 14, 19, 19];

impl Lab {
    fn new(tag: &str, n: usize) -> Lab {
        let hosts: Vec<TestHost> = (0..n)
            .map(|i| TestHost::start(&format!("{tag}{i}")))
            .collect();
        let sims: Vec<SimHost> = hosts
            .iter()
            .map(|h| SimHost::ssh(h, &[("H100-80GB", 2)]))
            .collect();
        let inventory = write_inventory(&hosts[0].dir().join("inventory.yml"), &sims);
        let known_hosts = write_known_hosts(&hosts[0].dir().join("known_hosts"), hosts.iter());
        Lab {
            hosts,
            inventory,
            known_hosts,
        }
    }

    fn edit_inventory(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.inventory).unwrap();
        std::fs::write(&self.inventory, f(text)).unwrap();
    }

    fn playbook(&self, body: &str) -> String {
        let p = self.hosts[0].dir().join("p.lua");
        std::fs::write(&p, body).unwrap();
        p.display().to_string()
    }

    fn args(&self, playbook: &str) -> Vec<String> {
        vec![
            "run".into(),
            playbook.into(),
            "-i".into(),
            self.inventory.display().to_string(),
            "--known-hosts".into(),
            self.known_hosts.display().to_string(),
        ]
    }

    fn run(&self, playbook: &str) -> Run {
        migfleet(&self.args(playbook))
    }

    fn spawn(&self, playbook: &str) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_migfleet"))
            .args(self.args(playbook))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn state(&self, host: usize) -> Value {
        let p = self.hosts[host].dir().join("sim.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn sim(&self, host: usize, args: &[&str]) {
        let out = Command::new(built_bins().join("nvml-sim"))
            .args(args)
            .arg("--state")
            .arg(self.hosts[host].dir().join("sim.json"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nvml-sim {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Puts process `pid` on the first instance of `gpu`.
    fn busy(&self, host: usize, gpu: usize, pid: u32) -> (u64, u64) {
        let gi = &self.state(host)["gpus"][gpu]["gpu_instances"][0];
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
        self.sim(
            host,
            &[
                "process", "add", "--gpu", &gpu, "--gi", &g_s, "--ci", &c_s, "--pid", &pid,
                "--mem", "1000",
            ],
        );
        (g, c)
    }

    /// NVML calls of `host` whose name contains `what`.
    fn calls(&self, host: usize, what: &str) -> usize {
        std::fs::read_to_string(self.hosts[host].dir().join("sim.json.calls"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(what))
            .count()
    }
}

/// Driver profile ids of a GPU's instances, sorted.
fn profiles(state: &Value, gpu: usize) -> Vec<u64> {
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
fn has_instance(state: &Value, gpu: usize, gi: u64, ci: u64) -> bool {
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

/// Waits (bounded) until `cond` holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes whose environment names this host's simulator state: its agents (however
/// they were started: the agent may run from an open file descriptor).
fn agents_of(dir: &Path) -> Vec<i32> {
    let want = format!("NVML_SIM_STATE={}", dir.join("sim.json").display());
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if pid as u32 != std::process::id() && env.split(|b| *b == 0).any(|v| v == want.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn an_nvml_error_at_the_fifth_create_names_host_and_gpu_and_a_rerun_converges() {
    let lab = Lab::new("fnvml", 1);
    // The first four GPU instance creates succeed (GPU 0's layout), the fifth fails.
    lab.sim(
        0,
        &[
            "inject",
            "--function",
            "nvmlDeviceCreateGpuInstanceWithPlacement",
            "--code",
            "999",
            "--after",
            "4",
        ],
    );
    let pb = lab.playbook(LAYOUT);
    let r = lab.run(&pb);
    assert_eq!(r.code, 2, "{}", r.shown);
    let host = &lab.hosts[0].tag;
    assert!(
        r.stdout.contains(&format!("fatal: [{host}]")),
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains("GPU 1"),
        "the GPU is not named: {}",
        r.shown
    );
    assert!(
        r.stdout
            .contains("nvmlDeviceCreateGpuInstanceWithPlacement")
            || r.stdout.contains("Unknown Error")
            || r.stdout.contains("unknown error"),
        "the NVML failure is not named: {}",
        r.shown
    );
    let s = lab.state(0);
    assert_eq!(profiles(&s, 0), WANT, "GPU 0 was done before the fault");
    // GPU 1 holds no half-made instance: each GPU instance has its compute instance.
    for gi in s["gpus"][1]["gpu_instances"].as_array().unwrap() {
        assert!(
            !gi["compute_instances"].as_array().unwrap().is_empty(),
            "a GPU instance without its compute instance was left: {s}"
        );
    }
    let r = lab.run(&pb);
    assert_eq!(r.code, 0, "{}", r.shown);
    let s = lab.state(0);
    assert_eq!(profiles(&s, 0), WANT);
    assert_eq!(profiles(&s, 1), WANT);
}

#[test]
fn processes_that_do_not_exit_on_drain_are_named_and_nothing_is_destroyed() {
    let lab = Lab::new("fdrain", 1);
    let pb = lab.playbook(LAYOUT);
    assert_eq!(lab.run(&pb).code, 0);
    let (gi, ci) = lab.busy(0, 0, 4242);
    let before = lab.state(0);
    let pb = lab.playbook(
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "drain", drain{ gpus = {0}, timeout = 1 } },
            task { name = "layout", mig.apply{ layout = "7g.80gb", allow_destroy_in_use = true } },
        } }"#,
    );
    let r = lab.run(&pb);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains("4242"),
        "the PID is not named: {}",
        r.shown
    );
    let after = lab.state(0);
    assert!(has_instance(&after, 0, gi, ci), "the busy instance is gone");
    assert_eq!(profiles(&after, 0), profiles(&before, 0));
    assert_eq!(profiles(&after, 1), profiles(&before, 1));
}

#[test]
fn the_agent_killed_mid_apply_fails_its_host_and_a_rerun_converges_with_the_busy_instance_intact() {
    let lab = Lab::new("fkill", 2);
    // GPU 0 of host 0 is in use; GPU 1 gets a new layout, on host 0 slowly (a slow
    // driver, so that the kill lands in the middle).
    let ((gi, ci), pb) = slow_host_with_a_busy_instance(&lab);
    let run = lab.spawn(&pb);
    // Kill host 0's agent once GPU 1's new layout is under way.
    let creates = lab.calls(0, "CreateGpuInstance");
    wait_for("the apply to start creating", || {
        lab.calls(0, "CreateGpuInstance") >= creates + 2
    });
    for pid in agents_of(lab.hosts[0].dir()) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{stdout}");
    let recap = |h: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{h} ")))
            .unwrap_or_default()
            .to_string()
    };
    let killed = recap(&lab.hosts[0].tag);
    assert!(
        killed.contains("failed=1") || killed.contains("unreachable=1"),
        "{stdout}"
    );
    assert!(recap(&lab.hosts[1].tag).contains("changed=1"), "{stdout}");
    let s = lab.state(0);
    assert!(
        has_instance(&s, 0, gi, ci),
        "the busy instance was destroyed"
    );
    let r = lab.run(&pb);
    assert_eq!(r.code, 0, "{}", r.shown);
    let s = lab.state(0);
    assert_eq!(profiles(&s, 1), [19; 7], "{}", r.shown);
    assert!(has_instance(&s, 0, gi, ci));
}

#[test]
fn a_connection_cut_mid_run_behind_100ms_of_latency_fails_that_host_alone() {
    let lab = Lab::new("fcut", 2);
    let target = format!("{}:{}", lab.hosts[1].address, lab.hosts[1].port);
    let proxy = Proxy::start(&lab.hosts[1].address, &target, Duration::from_millis(100));
    // Host 1 is reached through the proxy.
    lab.edit_inventory(|t| {
        t.replace(
            &format!("ansible_port: {}\n", lab.hosts[1].port),
            &format!("ansible_port: {}\n", proxy.port),
        )
    });
    let mut kh = std::fs::read_to_string(&lab.known_hosts).unwrap();
    kh.push_str(&format!(
        "[{}]:{} {}\n",
        proxy.address,
        proxy.port,
        lab.hosts[1].host_key()
    ));
    std::fs::write(&lab.known_hosts, kh).unwrap();
    let marker = lab.hosts[1].dir().join("in-the-middle");
    let pb = lab.playbook(&format!(
        r#"return play {{ name = "p", hosts = "all", tasks = {{
            task {{ name = "MIG on", mig.mode{{ enabled = true }} }},
            task {{ name = "middle", when = function(h) return h.host == "{slow}" end,
                   command{{ argv = {{ "sh", "-c", "touch {m}; [ -e {m}.go ] || sleep 30" }}, timeout = 60 }} }},
            task {{ name = "layout", mig.apply{{ layout = "3g.40gb, 2g.20gb, 2x1g.10gb" }} }},
        }} }}"#,
        m = marker.display(),
        slow = lab.hosts[1].tag
    ));
    let run = lab.spawn(&pb);
    // Cut once the slow host is in the middle task.
    wait_for("the second task to start", || marker.exists());
    proxy.cut();
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    let line = |h: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{h} ")))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        line(&lab.hosts[1].tag).contains("unreachable=1"),
        "{stdout}"
    );
    assert!(line(&lab.hosts[0].tag).contains("changed=2"), "{stdout}");
    assert_eq!(profiles(&lab.state(0), 0), WANT);
    // MIG mode was set through the latency before the cut; nothing else changed there.
    assert_eq!(lab.state(1)["gpus"][0]["mig_mode_current"], 1);
    assert!(profiles(&lab.state(1), 0).is_empty());
    // Through a working proxy, the rerun converges.
    drop(proxy);
    std::fs::write(format!("{}.go", marker.display()), "").unwrap();
    let proxy = Proxy::start(&lab.hosts[1].address, &target, Duration::from_millis(100));
    lab.edit_inventory(|t| {
        let old = t
            .lines()
            .filter(|l| l.trim_start().starts_with("ansible_port:"))
            .nth(1)
            .unwrap()
            .to_string();
        t.replace(
            &format!("{old}\n"),
            &format!("      ansible_port: {}\n", proxy.port),
        )
    });
    let mut kh = std::fs::read_to_string(&lab.known_hosts).unwrap();
    kh.push_str(&format!(
        "[{}]:{} {}\n",
        proxy.address,
        proxy.port,
        lab.hosts[1].host_key()
    ));
    std::fs::write(&lab.known_hosts, kh).unwrap();
    let r = lab.run(&pb);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(profiles(&lab.state(1), 0), WANT);
    assert_eq!(profiles(&lab.state(1), 1), WANT);
}

/// Host 0 of `lab` gets a slow driver (each NVML change takes 100 ms), GPU 0 of it an
/// instance in use; returns that instance and the playbook that re-partitions GPU 1.
fn slow_host_with_a_busy_instance(lab: &Lab) -> ((u64, u64), String) {
    let pb = lab.playbook(LAYOUT);
    let r = lab.run(&pb);
    assert_eq!(r.code, 0, "{}", r.shown);
    let busy = lab.busy(0, 0, 4545);
    lab.edit_inventory(|t| {
        let at = t.find(&format!("    {}:\n", lab.hosts[0].tag)).unwrap();
        let (head, tail) = t.split_at(at);
        format!(
            "{head}{}",
            tail.replacen(
                "{NVML_SIM_STATE:",
                "{NVML_SIM_WRITE_DELAY_MS: 100, NVML_SIM_STATE:",
                1
            )
        )
    });
    let pb = lab.playbook(
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "layout", mig.apply{ layout = "7x1g.10gb", gpus = {1} } },
        } }"#,
    );
    (busy, pb)
}

#[test]
fn sshd_killed_mid_apply_makes_its_host_unreachable_and_a_rerun_converges() {
    let mut lab = Lab::new("fsshd", 1);
    let ((gi, ci), pb) = slow_host_with_a_busy_instance(&lab);
    let run = lab.spawn(&pb);
    let creates = lab.calls(0, "CreateGpuInstance");
    wait_for("the apply to start creating", || {
        lab.calls(0, "CreateGpuInstance") > creates
    });
    // sshd and every connection it holds go; the agent loses its controller.
    let listener: i32 = std::fs::read_to_string(lab.hosts[0].dir().join("listener.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = Command::new("pkill")
        .args(["-KILL", "-P", &listener.to_string()])
        .status();
    lab.hosts[0].stop();
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("unreachable=1"), "{stdout}");
    assert!(
        has_instance(&lab.state(0), 0, gi, ci),
        "the busy instance was destroyed"
    );
    lab.hosts[0].restart();
    let r = lab.run(&pb);
    assert_eq!(r.code, 0, "{}", r.shown);
    let s = lab.state(0);
    assert_eq!(profiles(&s, 1), [19; 7], "{}", r.shown);
    assert!(has_instance(&s, 0, gi, ci));
}

#[test]
fn the_controller_killed_mid_apply_then_a_rerun_converges_with_the_busy_instance_intact() {
    let lab = Lab::new("fctl", 1);
    let ((gi, ci), pb) = slow_host_with_a_busy_instance(&lab);
    let mut run = lab.spawn(&pb);
    let creates = lab.calls(0, "CreateGpuInstance");
    wait_for("the apply to start creating", || {
        lab.calls(0, "CreateGpuInstance") > creates
    });
    run.kill().unwrap();
    run.wait().unwrap();
    // The rerun waits for the orphaned agent's lock, if it still holds it, then converges.
    let r = lab.run(&pb);
    assert_eq!(r.code, 0, "{}", r.shown);
    let s = lab.state(0);
    assert_eq!(profiles(&s, 1), [19; 7], "{}", r.shown);
    assert!(
        has_instance(&s, 0, gi, ci),
        "the busy instance was destroyed"
    );
    for g in s["gpus"][1]["gpu_instances"].as_array().unwrap() {
        assert!(
            !g["compute_instances"].as_array().unwrap().is_empty(),
            "{s}"
        );
    }
}
