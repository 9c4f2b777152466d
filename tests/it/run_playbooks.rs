//! `migfleet run` end to end: the example playbooks against real sshd test hosts with
//! simulated GPUs, asserting the simulator's state afterwards; idempotency (a second run
//! changes nothing and calls no NVML create/destroy); `--check` changes nothing; a
//! failing or escaping policy fails its host only.

use crate::support::testhost::{TestHost, client_key, write_known_hosts};
use crate::support::{Run, migfleet};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Two sshd hosts (an H100 host and an A100 host, two GPUs each), with a stand-in
/// systemctl (no systemd in test containers) and the simulator's reset as GPU reset.
struct Lab {
    hosts: Vec<TestHost>,
    inventory: PathBuf,
    known_hosts: PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let bin = crate::support::built_bins();
        let hosts = vec![
            TestHost::start(&format!("{tag}-h100")),
            TestHost::start(&format!("{tag}-a100")),
        ];
        let mut yaml = format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {}\n    migfleet_nvml_lib: {}\n  children:\n",
            client_key().display(),
            bin.join("libnvidia_ml_sim.so").display()
        );
        for (h, (group, model)) in hosts
            .iter()
            .zip([("hopper", "H100-80GB"), ("ampere", "A100-40GB")])
        {
            let state = h.dir().join("sim.json");
            let out = Command::new(bin.join("nvml-sim"))
                .args(["init", "--state"])
                .arg(&state)
                .args(["--model", model, "--gpus", "2"])
                .output()
                .unwrap();
            assert!(out.status.success());
            let systemctl = h.dir().join("systemctl");
            std::fs::write(&systemctl, "#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/systemctl.log\"\ncase \"$1\" in is-active) exit 3 ;; esac\nexit 0\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&systemctl, std::fs::Permissions::from_mode(0o755)).unwrap();
            yaml.push_str(&format!(
                "    {group}:\n      hosts:\n        {}:\n          ansible_host: {}\n          ansible_port: {}\n          migfleet_remote_dir: {}\n          migfleet_agent_env: {{NVML_SIM_STATE: {}, MIGFLEET_SYSTEMCTL: {}, MIGFLEET_STATE_DIR: {}}}\n          migfleet_gpu_reset_command: [{}, reset, --state, {}, -i, \"{{bus_ids}}\"]\n",
                h.tag,
                h.address,
                h.port,
                h.remote_dir().display(),
                state.display(),
                systemctl.display(),
                h.dir().join("agent-state").display(),
                bin.join("nvml-sim").display(),
                state.display(),
            ));
        }
        let inventory = hosts[0].dir().join("inventory.yml");
        std::fs::write(&inventory, yaml).unwrap();
        let known_hosts = write_known_hosts(&hosts[0].dir().join("known_hosts"), hosts.iter());
        Lab {
            hosts,
            inventory,
            known_hosts,
        }
    }

    fn run(&self, playbook: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "run".to_string(),
            playbook.to_string(),
            "-i".into(),
            self.inventory.display().to_string(),
            "--known-hosts".into(),
            self.known_hosts.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        migfleet(&args)
    }

    fn state(&self, host: usize) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(self.hosts[host].dir().join("sim.json")).unwrap(),
        )
        .unwrap()
    }

    /// Driver profile ids of each GPU's instances, sorted.
    fn layout(&self, host: usize) -> Vec<Vec<u64>> {
        self.state(host)["gpus"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let mut v: Vec<u64> = g["gpu_instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["profile_id"].as_u64().unwrap())
                    .collect();
                v.sort();
                v
            })
            .collect()
    }

    fn mutations(&self, host: usize) -> usize {
        let log = std::fs::read_to_string(self.hosts[host].dir().join("sim.json.calls"))
            .unwrap_or_default();
        log.lines()
            .filter(|l| {
                [
                    "CreateGpuInstance",
                    "CreateComputeInstance",
                    "GpuInstanceDestroy",
                    "ComputeInstanceDestroy",
                ]
                .iter()
                .any(|f| l.contains(f))
            })
            .count()
    }
}

// Driver profile ids on 7-slice GPUs: 1g 19, 2g 14, 3g 9, 4g 5, 7g 0.
const BALANCED: [u64; 4] = [9, 14, 19, 19];

#[test]
fn demo_partitions_every_gpu_and_a_second_run_changes_nothing() {
    let lab = Lab::new("demo");
    let r = lab.run("playbooks/demo.lua", &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    for host in 0..2 {
        assert_eq!(
            lab.layout(host),
            vec![BALANCED.to_vec(), BALANCED.to_vec()],
            "{}",
            r.shown
        );
        assert!(lab.state(host)["gpus"][0]["mig_mode_current"] == 1);
    }
    assert!(
        r.recap(&lab.hosts[1].tag).contains("changed=2"),
        "{}",
        r.shown
    );

    let before: Vec<usize> = (0..2).map(|h| lab.mutations(h)).collect();
    let r = lab.run("playbooks/demo.lua", &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    for (h, b) in before.iter().enumerate() {
        assert!(
            r.recap(&lab.hosts[h].tag).contains("ok=3    changed=0"),
            "{}",
            r.shown
        );
        assert_eq!(
            lab.mutations(h),
            *b,
            "second run made NVML create/destroy calls"
        );
    }
}

#[test]
fn check_mode_prints_the_plan_and_changes_nothing() {
    let lab = Lab::new("check");
    let before: Vec<String> = (0..2).map(|h| lab.state(h).to_string()).collect();
    let r = lab.run("playbooks/training.lua", &["--check"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.stdout.contains("[CHECK MODE]"), "{}", r.shown);
    assert!(
        r.stdout.contains(&format!(
            "changed: [{}] => GPU 0-1: MIG off -> on (GPU reset)",
            lab.hosts[1].tag
        )),
        "{}",
        r.shown
    );
    for (h, b) in before.iter().enumerate() {
        assert_eq!(&lab.state(h).to_string(), b, "--check changed host {h}");
        assert_eq!(lab.mutations(h), 0);
    }
    // With MIG on, check mode shows the NVML operations per GPU.
    lab.run("playbooks/demo.lua", &["--tags", "never"]);
    let r = lab.run(
        "playbooks/training.lua",
        &["--skip-tags", "drain", "-e", "hosts=hopper"],
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    let r = lab.run(
        "playbooks/demo.lua",
        &["--check", "--diff", "-e", "hosts=hopper"],
    );
    assert!(r.stdout.contains("create GI #0 2g.20gb"), "{}", r.shown);
    assert!(
        r.stdout.contains(
            "GPU 0-1: 7g.80gb@0 -> 2g.20gb@0 1g.10gb@2 1g.10gb@3 3g.40gb@4 (1 destroyed, 4 created)"
        ),
        "{}",
        r.shown
    );
    assert_eq!(
        lab.layout(0),
        vec![vec![0], vec![0]],
        "--check changed the layout"
    );
}

#[test]
fn every_example_playbook_runs_and_leaves_the_expected_state() {
    let lab = Lab::new("examples");
    let r = lab.run("playbooks/inference.lua", &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.layout(0)[0], vec![19; 7], "7 x 1g.10gb on H100");
    assert_eq!(lab.layout(1)[0], vec![19; 7], "7 x 1g.5gb on A100-40GB");
    let log = std::fs::read_to_string(lab.hosts[0].dir().join("systemctl.log")).unwrap_or_default();
    assert!(
        log.contains("is-active --quiet nvidia-dcgm.service"),
        "drain did not ask systemd: {log}"
    );

    let r = lab.run("playbooks/training.lua", &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.layout(0), vec![vec![0], vec![0]]);

    let r = lab.run("playbooks/mixed.lua", &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.layout(0)[0], vec![9, 9], "by-model: two 3g on H100");
    assert_eq!(
        lab.layout(1)[0],
        vec![9, 14, 14],
        "by-model: 2g+2g+3g on A100-40GB"
    );

    let r = lab.run("playbooks/from-mig-parted.lua", &["-e", "config=balanced"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.layout(1)[0], BALANCED.to_vec());

    let r = lab.run("playbooks/disable.lua", &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    for h in 0..2 {
        assert_eq!(lab.layout(h), vec![Vec::<u64>::new(), Vec::new()]);
        assert_eq!(lab.state(h)["gpus"][1]["mig_mode_current"], 0);
    }
}

fn write_playbook(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn a_failing_or_escaping_policy_fails_its_host_only() {
    let lab = Lab::new("policy");
    let pb = write_playbook(
        lab.hosts[0].dir(),
        "bad.lua",
        r#"
local function picky(gpu, ctx)
  if gpu.model == "A100-40GB" then
    error("no plan for " .. gpu.model)
  end
  return { gpu.profile_by_slices[7] }
end
return {
  name = "picky",
  hosts = "all",
  tasks = {
    { name = "on", mig.mode{ enabled = true } },
    { name = "apply", mig.apply{ policy = picky } },
  },
}
"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.recap(&lab.hosts[0].tag).contains("failed=0"),
        "{}",
        r.shown
    );
    assert!(
        r.recap(&lab.hosts[1].tag).contains("failed=1"),
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains("bad.lua:4") && r.stdout.contains("no plan for A100-40GB"),
        "{}",
        r.shown
    );
    assert_eq!(lab.layout(0), vec![vec![0], vec![0]]);

    let pb = write_playbook(
        lab.hosts[0].dir(),
        "escape.lua",
        r#"
return {
  name = "escape",
  hosts = "all",
  tasks = {
    { name = "try", run = function(host)
        if host.host:find("a100") then os.execute("touch /tmp/migfleet-escaped") end
        return { changed = false, msg = "fine" }
      end },
  },
}
"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(r.recap(&lab.hosts[0].tag).contains("ok=1"), "{}", r.shown);
    assert!(r.stdout.contains("escape.lua:7"), "{}", r.shown);
    assert!(!Path::new("/tmp/migfleet-escaped").exists());

    // A policy returning a layout that cannot exist on the model is told why.
    let pb = write_playbook(
        lab.hosts[0].dir(),
        "impossible.lua",
        r#"return { name = "x", hosts = "hopper", tasks = {
  { name = "apply", mig.apply{ layout = { "4g.40gb", "4g.40gb" } } } } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(r.stdout.contains("exceed its maximum of 1"), "{}", r.shown);
}

#[test]
fn list_and_syntax_options_stop_before_running() {
    let lab = Lab::new("list");
    let r = lab.run("playbooks/inference.lua", &["--list-tasks"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains("Stop GPU clients\tTAGS: [drain]"),
        "{}",
        r.shown
    );
    let r = lab.run(
        "playbooks/inference.lua",
        &["--list-hosts", "-e", "hosts=ampere"],
    );
    assert!(
        r.stdout.contains(&lab.hosts[1].tag) && !r.stdout.contains(&lab.hosts[0].tag),
        "{}",
        r.shown
    );
    let r = lab.run("playbooks/demo.lua", &["--syntax-check"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let bad = write_playbook(
        lab.hosts[0].dir(),
        "syntax.lua",
        "return {\n  name = 'x',\n  hosts = ,\n}\n",
    );
    let r = lab.run(&bad, &["--syntax-check"]);
    assert_eq!(r.code, 4, "{}", r.shown);
    assert!(r.shown.contains("syntax.lua:3"), "{}", r.shown);
    assert_eq!(lab.mutations(0), 0);
}
