//! Rebooting and resuming, over real sshd test hosts whose reboot command does what a
//! reboot does in the small (support::sim::reboot_script): the agent and sshd go away,
//! the agent binary with them (tmpfs), the simulated GPUs reboot (new boot id, instances
//! gone, Hopper loses MIG mode, Ampere's pending mode becomes current), sshd comes back
//! after a delay, or never. Also: the host lock between two runs.

use crate::support::lab::{Lab, profiles};
use crate::support::sim::Rebooting;

const PARTITION: &str = r#"
return play {
  name = "partition",
  hosts = "all",
  tasks = {
    task { name = "MIG on", mig.mode{ enabled = true, reboot = "if_needed" } },
    task { name = "layout", mig.apply{ layout = "3g.20gb, 2g.10gb, 2x1g.5gb" } },
  },
}
"#;

// A100-40GB profile ids: 3g.20gb 9, 2g.10gb 14, 1g.5gb 19.
const A100_LAYOUT: [u64; 4] = [9, 14, 19, 19];

#[test]
fn ampere_that_cannot_reset_reboots_once_resumes_and_a_rerun_changes_nothing() {
    let lab = Lab::new("rbamp", &[&[("A100-40GB", 2)]]);
    lab.forbid_resets();
    let boot_before = lab.sim(0).boot_id();
    let pb = lab.playbook("partition.lua", PARTITION);
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let s = lab.state(0);
    for gpu in 0..2 {
        assert_eq!(s["gpus"][gpu]["mig_mode_current"], 1, "{}", r.shown);
        assert_eq!(profiles(&s, gpu), A100_LAYOUT, "{}", r.shown);
    }
    assert_eq!(lab.sim(0).reboots(), 1, "{}", r.shown);
    assert_ne!(lab.sim(0).boot_id(), boot_before);
    assert!(
        r.stdout.contains("GPU 0-1: MIG off -> on (reboot)"),
        "{}",
        r.shown
    );
    assert!(
        r.recap(&lab.hosts[0].tag).contains("changed=2"),
        "{}",
        r.shown
    );
    // The agent was gone after the reboot (tmpfs): it was uploaded again.
    let agents = std::fs::read_dir(lab.hosts[0].remote_dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("migfleet-agent-")
        })
        .count();
    assert!(
        agents >= 1,
        "the agent was not pushed again after the reboot"
    );

    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.recap(&lab.hosts[0].tag).contains("changed=0"),
        "{}",
        r.shown
    );
    assert_eq!(
        lab.sim(0).reboots(),
        1,
        "a converged host was rebooted again"
    );
}

#[test]
fn check_mode_says_it_would_reboot_and_does_not() {
    let lab = Lab::new("rbchk", &[&[("A100-40GB", 1)]]);
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "MIG on", mig.mode{ enabled = true, reset = false, reboot = "if_needed" } },
            task { name = "reboot", reboot{} },
        } }"#,
    );
    let r = lab.run(&pb, &["--check"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains("GPU 0: MIG off -> on (reboot)"),
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains("check mode: would reboot the host"),
        "{}",
        r.shown
    );
    assert_eq!(lab.sim(0).reboots(), 0);
    assert_eq!(lab.state(0)["gpus"][0]["mig_mode_pending"], 0);
}

#[test]
fn hopper_gets_mig_mode_back_after_a_reboot_and_the_next_task_recreates_the_layout() {
    let lab = Lab::new("rbhop", &[&[("H100-80GB", 2)]]);
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "MIG on", mig.mode{ enabled = true } },
            task { name = "layout", mig.apply{ layout = "3g.40gb, 2g.20gb, 2x1g.10gb" } },
            task { name = "reboot", reboot{ timeout = 60, post_delay = 0 } },
            task { name = "layout again", mig.apply{ layout = "3g.40gb, 2g.20gb, 2x1g.10gb" } },
        } }"#,
    );
    let boot_before = lab.sim(0).boot_id();
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains("MIG mode on again on GPU 0-1"),
        "{}",
        r.shown
    );
    assert_ne!(lab.sim(0).boot_id(), boot_before);
    let s = lab.state(0);
    for gpu in 0..2 {
        assert_eq!(s["gpus"][gpu]["mig_mode_current"], 1);
        assert_eq!(profiles(&s, gpu), [9, 14, 19, 19], "{}", r.shown);
    }
    assert!(
        r.recap(&lab.hosts[0].tag).contains("changed=4"),
        "{}",
        r.shown
    );
}

#[test]
fn a_host_that_never_comes_back_fails_alone_within_its_timeout() {
    let lab = Lab::new("rbnev", &[&[("H100-80GB", 1)], &[("H100-80GB", 1)]]);
    lab.sim(1).rebooting(Rebooting::Never);
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "reboot", reboot{ timeout = 4, connect_timeout = 2 } },
            task { name = "MIG on", mig.mode{ enabled = true } },
        } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(
        r.code,
        4,
        "unreachable hosts exit 4: {}\nreboot log: {}",
        r.shown,
        std::fs::read_to_string(lab.hosts[1].dir().join("reboot.log")).unwrap_or_default()
    );
    let (ok, gone) = (&lab.hosts[0].tag, &lab.hosts[1].tag);
    assert!(r.recap(ok).contains("changed=2"), "{}", r.shown);
    assert!(r.recap(ok).contains("unreachable=0"), "{}", r.shown);
    assert!(r.recap(gone).contains("unreachable=1"), "{}", r.shown);
    assert!(
        r.stdout
            .contains("did not come back within 4 s of its reboot"),
        "{}",
        r.shown
    );
    assert_eq!(lab.state(0)["gpus"][0]["mig_mode_current"], 1);
    assert_eq!(lab.sim(1).reboots(), 1);
}

#[test]
fn a_host_still_pending_after_its_reboot_fails_and_is_rebooted_once_only() {
    let lab = Lab::new("rbloop", &[&[("A100-40GB", 2)]]);
    lab.forbid_resets();
    lab.sim(0).rebooting(Rebooting::StaysPending);
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "MIG on", mig.mode{ enabled = true, reboot = "if_needed" }, retries = 2, delay = 0.1 },
        } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert_eq!(
        lab.sim(0).reboots(),
        1,
        "rebooted more than once: {}",
        r.shown
    );
    assert!(r.stdout.contains("GPU 0-1"), "{}", r.shown);
    assert!(r.stdout.contains("reboot-loop guard"), "{}", r.shown);
    let s = lab.state(0);
    assert_eq!(s["gpus"][0]["mig_mode_current"], 0);
    assert_eq!(s["gpus"][0]["mig_mode_pending"], 1);
}

#[test]
fn a_second_run_on_a_locked_host_waits_its_bound_and_names_the_holder() {
    let lab = Lab::new("rblock", &[&[("H100-80GB", 1)]]);
    let marker = lab.hosts[0].dir().join("first-run-holds-the-lock");
    // The first run holds the host's lock while its command waits for the marker to go.
    std::fs::write(&marker, "").unwrap();
    let holder = lab.playbook(
        "hold.lua",
        &format!(
            r#"return play {{ name = "hold", hosts = "all", tasks = {{
                task {{ name = "hold", command{{ argv = {{ "sh", "-c", "while [ -e {m} ]; do sleep 0.05; done" }}, timeout = 60 }} }},
            }} }}"#,
            m = marker.display()
        ),
    );
    let mut first = lab.spawn(&holder);
    // The first run has the lock once its agent wrote who it is into the lock file.
    let lock = lab.hosts[0].dir().join("agent-state").join("host.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("agent pid")) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    lab.all_var("migfleet_lock_wait: 1");
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "MIG on", mig.mode{ enabled = true } },
        } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains("this host is locked by migfleet (pid"),
        "{}",
        r.shown
    );
    assert!(r.stdout.contains("waited 1 s"), "{}", r.shown);
    assert!(
        r.stdout.contains(&format!("(pid {})", first.id())),
        "the holder is not named: {}",
        r.shown
    );
    assert_eq!(lab.state(0)["gpus"][0]["mig_mode_current"], 0);
    std::fs::remove_file(&marker).unwrap();
    assert!(first.wait().unwrap().success());
    // Free again: the same run goes through.
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.state(0)["gpus"][0]["mig_mode_current"], 1);
}

#[test]
fn a_persisted_layout_is_restored_by_the_boot_unit_after_a_reboot() {
    let lab = Lab::new("rbpersist", &[&[("H100-80GB", 2)]]);
    let dir = lab.hosts[0].dir().to_path_buf();
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "MIG on", mig.mode{ enabled = true } },
            task { name = "layout", mig.apply{ layout = "3g.40gb, 2g.20gb, 2x1g.10gb" } },
            task { name = "persist", mig.persist{ units = { "gpu-app.service" } } },
        } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.recap(&lab.hosts[0].tag).contains("changed=3"),
        "{}",
        r.shown
    );
    let unit = std::fs::read_to_string(dir.join("systemd/migfleet-mig.service")).unwrap();
    let agent = dir.join("etc-migfleet/migfleet-agent");
    let target = dir.join("etc-migfleet/target.json");
    assert!(
        unit.contains(&format!(
            "ExecStart={} --restore-mig {}",
            agent.display(),
            target.display()
        )),
        "{unit}"
    );
    assert!(unit.contains("Before=gpu-app.service"), "{unit}");
    let log = std::fs::read_to_string(dir.join("systemctl.log")).unwrap();
    assert!(
        log.contains("daemon-reload") && log.contains("enable migfleet-mig.service"),
        "{log}"
    );
    let f = lab.facts();
    assert_eq!(f.code, 0, "{}", f.shown);
    assert_eq!(f.stdout.matches("  same  ").count(), 2, "{}", f.shown);

    // The host reboots: Hopper loses MIG mode and every instance.
    lab.nvml_sim(0, &["reboot"]);
    assert_eq!(lab.state(0)["gpus"][0]["mig_mode_current"], 0);
    let f = lab.facts();
    assert_eq!(f.stdout.matches("  differs  ").count(), 2, "{}", f.shown);
    // What the unit runs at boot brings both back.
    // Run as systemd would, with nothing of the test's environment: the unit carries the
    // inventory's agent environment, and so does the target for a run by hand.
    assert!(
        unit.contains(&format!(
            "Environment=\"NVML_SIM_STATE={}\"",
            dir.join("sim.json").display()
        )),
        "{unit}"
    );
    let out = std::process::Command::new(&agent)
        .arg("--restore-mig")
        .arg(&target)
        .env_clear()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = lab.state(0);
    for gpu in 0..2 {
        assert_eq!(s["gpus"][gpu]["mig_mode_current"], 1);
        assert_eq!(profiles(&s, gpu), [9, 14, 19, 19]);
    }
    // Nothing to do on a rerun; then the restore is removed.
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.recap(&lab.hosts[0].tag).contains("changed=0"),
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains("already persisted for boot: GPU 0-1"),
        "{}",
        r.shown
    );
    let pb = lab.playbook(
        "absent.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "forget", mig.persist{ state = "absent" } },
        } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains("removed the boot-time MIG restore"),
        "{}",
        r.shown
    );
    assert!(!target.exists() && !agent.exists());
    assert!(!dir.join("systemd/migfleet-mig.service").exists());
}

#[test]
fn a_reboot_nobody_asked_for_in_so_many_words_waits_for_the_gpus_to_be_drained() {
    let lab = Lab::new("rbbusy", &[&[("A100-40GB", 2)]]);
    lab.forbid_resets();
    lab.nvml_sim(
        0,
        &[
            "process", "add", "--gpu", "1", "--pid", "7777", "--mem", "100",
        ],
    );
    let pb = lab.playbook("partition.lua", PARTITION);
    let r = lab.run(&pb, &["--check"]);
    assert!(
        r.stdout.contains("processes use GPU 1; drain first"),
        "{}",
        r.shown
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout
            .contains("not rebooting the host while processes use its GPUs: 7777 (GPU 1)"),
        "{}",
        r.shown
    );
    assert_eq!(lab.sim(0).reboots(), 0);
}

#[test]
fn a_mig_parted_config_on_ampere_reboots_when_the_mode_cannot_be_reset() {
    let lab = Lab::new("rbparted", &[&[("A100-40GB", 1)]]);
    lab.forbid_resets();
    lab.playbook(
        "mig-parted.yaml",
        "version: v1\nmig-configs:\n  all-1g:\n    - devices: all\n      mig-enabled: true\n      mig-devices:\n        \"1g.5gb\": 7\n",
    );
    let pb = lab.playbook(
        "p.lua",
        r#"return play { name = "p", hosts = "all", tasks = {
            task { name = "config", mig.apply{ mig_parted = { file = "mig-parted.yaml", config = "all-1g" }, reboot = "if_needed", reboot_timeout = 60 } },
        } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.sim(0).reboots(), 1);
    assert_eq!(profiles(&lab.state(0), 0), [19; 7], "{}", r.shown);
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.recap(&lab.hosts[0].tag).contains("changed=0"),
        "{}",
        r.shown
    );
    assert_eq!(lab.sim(0).reboots(), 1);
}
