//! Faults in the middle of a run, over real sshd test hosts with simulated GPUs. Each test
//! asserts what the host is left with — no instance in use destroyed, every GPU in a
//! state the next run starts from — and that a rerun converges.

use crate::support::lab::{Lab, has_instance, profiles, recap_of, wait_for};
use crate::support::proxy::Proxy;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const H100: &[(&str, u32)] = &[("H100-80GB", 2)];

const LAYOUT: &str = r#"
return play { name = "p", hosts = "all", tasks = {
  task { name = "MIG on", mig.mode{ enabled = true } },
  task { name = "layout", mig.apply{ layout = "3g.40gb, 2g.20gb, 2x1g.10gb" } },
} }
"#;

// H100-80GB profile ids: 3g.40gb 9, 2g.20gb 14, 1g.10gb 19.
const WANT: [u64; 4] = [9, 14, 19, 19];

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
    let lab = Lab::new("fnvml", &[H100]);
    // The first four GPU instance creates succeed (GPU 0's layout), the fifth fails.
    lab.nvml_sim(
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
    let pb = lab.playbook("p.lua", LAYOUT);
    let r = lab.run(&pb, &[]);
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
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let s = lab.state(0);
    assert_eq!(profiles(&s, 0), WANT);
    assert_eq!(profiles(&s, 1), WANT);
}

#[test]
fn processes_that_do_not_exit_on_drain_are_named_and_nothing_is_destroyed() {
    let lab = Lab::new("fdrain", &[H100]);
    let pb = lab.playbook("p.lua", LAYOUT);
    assert_eq!(lab.run(&pb, &[]).code, 0);
    let (gi, ci) = lab.busy(0, 0, 4242);
    let before = lab.state(0);
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "drain", drain{ gpus = {0}, timeout = 1 } },
            task { name = "layout", mig.apply{ layout = "7g.80gb", allow_destroy_in_use = true } },
        } }"#,
    );
    let r = lab.run(&pb, &[]);
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
    let lab = Lab::new("fkill", &[H100, H100]);
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
    let recap = |h: &str| recap_of(&stdout, h);
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
    rerun_converges(&lab, &pb, (gi, ci));
}

#[test]
fn a_connection_cut_mid_run_behind_100ms_of_latency_fails_that_host_alone() {
    let lab = Lab::new("fcut", &[H100, H100]);
    let target = format!("{}:{}", lab.hosts[1].address, lab.hosts[1].port);
    let proxy = Proxy::start(&lab.hosts[1].address, &target, Duration::from_millis(100));
    // Host 1 is reached through the proxy.
    lab.reach_at(1, proxy.port);
    let marker = lab.hosts[1].dir().join("in-the-middle");
    let pb = lab.playbook("p.lua", &format!(
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
    let line = |h: &str| recap_of(&stdout, h);
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
    lab.reach_at(1, proxy.port);
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(profiles(&lab.state(1), 0), WANT);
    assert_eq!(profiles(&lab.state(1), 1), WANT);
}

/// A rerun of `pb` gives GPU 1 of host 0 its 7 x 1g.10gb, and the busy instance `(gi, ci)`
/// of GPU 0 is still there.
fn rerun_converges(lab: &Lab, pb: &str, (gi, ci): (u64, u64)) {
    let r = lab.run(pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let s = lab.state(0);
    assert_eq!(profiles(&s, 1), [19; 7], "{}", r.shown);
    assert!(
        has_instance(&s, 0, gi, ci),
        "the busy instance was destroyed"
    );
}

/// Host 0 of `lab` gets a slow driver (each NVML change takes 100 ms), GPU 0 of it an
/// instance in use; returns that instance and the playbook that re-partitions GPU 1.
fn slow_host_with_a_busy_instance(lab: &Lab) -> ((u64, u64), String) {
    let pb = lab.playbook("p.lua", LAYOUT);
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let busy = lab.busy(0, 0, 4545);
    lab.agent_env(0, "NVML_SIM_WRITE_DELAY_MS", "100");
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "layout", mig.apply{ layout = "7x1g.10gb", gpus = {1} } },
        } }"#,
    );
    (busy, pb)
}

#[test]
fn sshd_killed_mid_apply_makes_its_host_unreachable_and_a_rerun_converges() {
    let mut lab = Lab::new("fsshd", &[H100]);
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
    rerun_converges(&lab, &pb, (gi, ci));
}

#[test]
fn the_controller_killed_mid_apply_then_a_rerun_converges_with_the_busy_instance_intact() {
    let lab = Lab::new("fctl", &[H100]);
    let ((gi, ci), pb) = slow_host_with_a_busy_instance(&lab);
    let mut run = lab.spawn(&pb);
    let creates = lab.calls(0, "CreateGpuInstance");
    wait_for("the apply to start creating", || {
        lab.calls(0, "CreateGpuInstance") > creates
    });
    run.kill().unwrap();
    run.wait().unwrap();
    // The rerun waits for the orphaned agent's lock, if it still holds it, then converges.
    let r = lab.run(&pb, &[]);
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
