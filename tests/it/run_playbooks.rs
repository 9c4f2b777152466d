//! `migfleet run` end to end: the example playbooks against real sshd test hosts with
//! simulated GPUs, asserting the simulator's state afterwards; idempotency (a second run
//! changes nothing and calls no NVML create/destroy); `--check` changes nothing and plans
//! from what earlier tasks would leave; a busy GPU blocks only itself; mig-parted configs
//! as mig-parted applies them; one SSH connection per host per run; a failing or escaping
//! policy fails its host only.

use crate::support::sim::{SimHost, write_inventory};
use crate::support::testhost::{TestHost, write_known_hosts};
use crate::support::{Run, migfleet, migfleet_in};
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
        let hosts = vec![
            TestHost::start(&format!("{tag}-h100")),
            TestHost::start(&format!("{tag}-a100")),
        ];
        let inventory = write_inventory(
            &hosts[0].dir().join("inventory.yml"),
            &[
                SimHost::ssh(&hosts[0], &[("H100-80GB", 2)]).in_group("hopper"),
                SimHost::ssh(&hosts[1], &[("A100-40GB", 2)]).in_group("ampere"),
            ],
        );
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

    /// Puts a process `pid` on the first instance of `gpu` of `host`.
    fn busy(&self, host: usize, gpu: usize, pid: u32) {
        let state = self.state(host);
        let gi = &state["gpus"][gpu]["gpu_instances"][0];
        let (gi_id, ci_id) = (
            gi["id"].to_string(),
            gi["compute_instances"][0]["id"].to_string(),
        );
        let sim = self.hosts[host].dir().join("sim.json");
        let out = Command::new(crate::support::built_bins().join("nvml-sim"))
            .args(["process", "add", "--state"])
            .arg(&sim)
            .args(["--gpu", &gpu.to_string(), "--gi", &gi_id, "--ci", &ci_id])
            .args(["--pid", &pid.to_string(), "--mem", "1000"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A playbook file in the lab's directory.
    fn playbook(&self, name: &str, body: &str) -> String {
        write_playbook(self.hosts[0].dir(), name, body)
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
    // A typo in a module argument, and a named policy that does not exist: caught by
    // --syntax-check (no inventory needed), each at its task's line.
    for (body, needle) in [
        (
            "return { hosts = 'all', tasks = {\n  { drain{ unit = {'dcgm'} } },\n} }",
            "typo.lua:2: task #1: drain: unknown argument `unit` (did you mean `units`?)",
        ),
        (
            "return { hosts = 'all', tasks = {\n  { mig.mode{ enabled = true } },\n  { mig.apply{ policy = 'balancd' } },\n} }",
            "typo.lua:3: task #2: mig.apply: policy: policy 'balancd' not found (did you mean 'balanced'?)",
        ),
    ] {
        let pb = write_playbook(lab.hosts[0].dir(), "typo.lua", body);
        let r = migfleet(&["run", &pb, "--syntax-check"]);
        assert_eq!(r.code, 4, "{}", r.shown);
        assert!(r.stderr.contains(needle), "{needle}\n{}", r.shown);
    }
    assert_eq!(lab.mutations(0), 0);
}

/// Driver profile ids of the H100 host's GPUs after `balanced`.
fn balanced_everywhere(lab: &Lab) {
    let r = lab.run("playbooks/demo.lua", &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
}

#[test]
fn mig_parted_configs_apply_as_mig_parted_does() {
    let lab = Lab::new("parted");
    let h100 = &lab.hosts[0].tag;
    // all-disabled on a fleet with MIG off leaves MIG off (it used to turn it on).
    let r = lab.run(
        "playbooks/from-mig-parted.lua",
        &["-e", "config=all-disabled"],
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    for h in 0..2 {
        assert_eq!(
            lab.state(h)["gpus"][0]["mig_mode_current"],
            0,
            "{}",
            r.shown
        );
        assert!(
            r.recap(&lab.hosts[h].tag).contains("changed=0"),
            "{}",
            r.shown
        );
    }
    // balanced turns MIG on (resetting the Ampere GPUs) and partitions.
    let r = lab.run("playbooks/from-mig-parted.lua", &["-e", "config=balanced"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.layout(0), vec![BALANCED.to_vec(), BALANCED.to_vec()]);
    assert!(
        r.stdout
            .contains(&format!("changed: [{}]", lab.hosts[1].tag))
            && r.stdout.contains("MIG off -> on (GPU reset)"),
        "{}",
        r.shown
    );
    // mig-devices are counts: the same counts at other placements are left alone.
    let pb = lab.playbook(
        "shuffle.lua",
        r#"return { hosts = "hopper", tasks = {
  { mig.apply{ layout = "1g.10gb@0, 1g.10gb@1, 2g.20gb@2, 3g.40gb@4" } } } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let before = lab.mutations(0);
    // So are layouts without `@start`: asserted and applied as counts.
    let pb = lab.playbook(
        "counts.lua",
        r#"return { hosts = "hopper", tasks = {
  { mig.assert{ layout = "2x1g.10gb, 2g.20gb, 3g.40gb" } },
  { mig.apply{ layout = { "3g.40gb", "2g.20gb", "2x1g.10gb" } } } } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.recap(h100).contains("ok=2    changed=0"), "{}", r.shown);
    assert_eq!(lab.mutations(0), before, "{}", r.shown);
    lab.busy(0, 1, 4242);
    let r = lab.run("playbooks/from-mig-parted.lua", &["-e", "config=balanced"]);
    assert_eq!(
        r.code, 0,
        "a busy GPU that already matches is fine: {}",
        r.shown
    );
    assert_eq!(
        lab.mutations(0),
        before,
        "counts already right: no NVML create/destroy"
    );
    assert!(r.recap(h100).contains("changed=0"), "{}", r.shown);
    // all-disabled turns MIG off where it can; the busy GPU is named with its PID.
    let r = lab.run(
        "playbooks/from-mig-parted.lua",
        &["-e", "config=all-disabled"],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert_eq!(
        lab.state(0)["gpus"][0]["mig_mode_current"],
        0,
        "{}",
        r.shown
    );
    assert_eq!(
        lab.state(0)["gpus"][1]["mig_mode_current"],
        1,
        "{}",
        r.shown
    );
    assert_eq!(
        lab.state(1)["gpus"][1]["mig_mode_current"],
        0,
        "{}",
        r.shown
    );
    assert!(
        r.stdout
            .contains("GPU 1: FAILED: cannot turn MIG off while instances are in use"),
        "{}",
        r.shown
    );
    assert!(r.stdout.contains("4242"), "{}", r.shown);
}

#[test]
fn a_busy_gpu_blocks_only_itself_unless_asked_to_fail_the_host() {
    let lab = Lab::new("busy");
    balanced_everywhere(&lab);
    lab.busy(0, 0, 4242);
    let whole = |on_busy: &str| {
        lab.playbook(
            &format!("whole-{on_busy}.lua"),
            &format!(
                r#"return {{ hosts = "hopper", tasks = {{
  {{ name = "one instance per GPU", mig.apply{{ layout = "7g.80gb", on_busy = "{on_busy}" }} }} }} }}"#
            ),
        )
    };
    // fail_host: nothing changes on the host, and it says why.
    let before = lab.mutations(0);
    let r = lab.run(&whole("fail_host"), &[]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert_eq!(lab.mutations(0), before, "{}", r.shown);
    assert!(
        r.stdout
            .contains("nothing was changed (on_busy = fail_host)"),
        "{}",
        r.shown
    );
    // The default: GPU 1 is repartitioned, GPU 0 is named with the instance and PID, and
    // the hints say what to do.
    let r = lab.run(&whole("skip_gpu"), &["-v"]);
    assert_eq!(r.code, 2, "{}", r.shown);
    // -v lists the NVML operations that ran under the GPU they ran on.
    assert!(
        r.stdout
            .contains("         1. destroy CI 0 (2g.20gb) in GI"),
        "{}",
        r.shown
    );
    assert_eq!(lab.layout(0)[1], vec![0], "GPU 1 got its 7g: {}", r.shown);
    assert_eq!(lab.layout(0)[0], BALANCED.to_vec(), "GPU 0 untouched");
    let fatal = format!("fatal: [{}]: FAILED!", lab.hosts[0].tag);
    assert!(r.stdout.contains(&fatal), "{}", r.shown);
    for needle in [
        "GPU 1: 2g.20gb@0 1g.10gb@2 1g.10gb@3 3g.40gb@4 -> 7g.80gb@0 (4 destroyed, 1 created)",
        "GPU 0: FAILED: would destroy instances in use: 2g.20gb@0 (GI",
        "has processes 4242",
        "hint: stop the GPU's clients first",
        "allow_destroy_in_use",
        "on_busy = \"fail_host\"",
    ] {
        assert!(r.stdout.contains(needle), "{needle}: {}", r.shown);
    }
    assert!(
        r.recap(&lab.hosts[0].tag).contains("failed=1"),
        "{}",
        r.shown
    );
}

#[test]
fn check_mode_plans_from_what_earlier_tasks_would_leave() {
    let lab = Lab::new("plan");
    // The README's demo on a fresh fleet: every task sees what the ones before would do.
    let r = lab.run("playbooks/demo.lua", &["--check"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout
            .contains("would repartition GPU 0-1 with 16 NVML operation(s)"),
        "{}",
        r.shown
    );
    assert!(r.stdout.contains("2 GPU(s) as asserted"), "{}", r.shown);
    for h in 0..2 {
        assert_eq!(lab.mutations(h), 0);
        assert_eq!(lab.state(h)["gpus"][0]["mig_mode_current"], 0);
    }
    // `check_mode` is visible to Lua, and what check mode cannot do is said to fail.
    balanced_everywhere(&lab);
    lab.busy(0, 0, 777);
    let pb = lab.playbook(
        "plan.lua",
        r#"return { hosts = "all", tasks = {
  { name = "only for real", when = function(host) return not host.check_mode end,
    mig.mode{ enabled = false } },
  { name = "knows", run = function(host)
      print("hello from " .. host.host)
      return { msg = "check_mode=" .. tostring(host.check_mode) .. " " .. tostring(host.vars.ansible_check_mode) } end },
  { name = "whole GPUs", mig.apply{ layout = "7g.80gb", gpus = {0} }, when = function(host) return host.host:find("h100") ~= nil end },
} }"#,
    );
    let r = lab.run(&pb, &["--check"]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout
            .contains(&format!("skipping: [{}]", lab.hosts[0].tag)),
        "{}",
        r.shown
    );
    assert!(r.stdout.contains("check_mode=true true"), "{}", r.shown);
    // What Lua prints reaches the user, with the host it ran for.
    let printed = format!("[{h}] print: hello from {h}", h = lab.hosts[1].tag);
    assert!(r.stderr.contains(&printed), "{}", r.shown);
    assert!(r.stdout.contains("has processes 777"), "{}", r.shown);
    // Turning MIG off in check mode: the busy GPU is reported, the reset is not forgotten.
    let pb = lab.playbook(
        "off.lua",
        r#"return { hosts = "all", tasks = { { mig.mode{ enabled = false, reset = false } } } }"#,
    );
    let r = lab.run(&pb, &["--check"]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout
            .contains("cannot turn MIG off while instances are in use"),
        "{}",
        r.shown
    );
    assert!(
        r.stdout
            .contains("would wait for a GPU reset (Ampere), and reset = false"),
        "{}",
        r.shown
    );
    for h in 0..2 {
        assert_eq!(
            lab.state(h)["gpus"][1]["mig_mode_current"],
            1,
            "--check changed host {h}"
        );
    }
}

#[test]
fn one_ssh_connection_per_host_for_the_whole_run_and_json_per_gpu() {
    let lab = Lab::new("conn");
    let pb = lab.playbook(
        "two-plays.lua",
        r#"return {
  { name = "first", hosts = "all", tasks = { { mig.mode{ enabled = true } } } },
  { name = "second", hosts = "all", tasks = {
      { mig.apply{ policy = "one-per-gpu" } },
      { mig.assert{ policy = "one-per-gpu" } } } },
}"#,
    );
    let before: Vec<usize> = lab
        .hosts
        .iter()
        .map(TestHost::accepted_connections)
        .collect();
    let r = lab.run(&pb, &["--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    for (h, b) in lab.hosts.iter().zip(before) {
        assert_eq!(h.accepted_connections() - b, 1, "{}: {}", h.tag, h.log());
    }
    let events: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let apply = events
        .iter()
        .find(|e| {
            e["event"] == "task_result"
                && e["play"] == 2
                && e["task"] == 1
                && e["host"] == lab.hosts[0].tag
        })
        .unwrap_or_else(|| panic!("{}", r.shown));
    assert_eq!(apply["result"]["status"], "changed");
    let gpu = &apply["result"]["gpus"][1];
    assert_eq!(gpu["index"], 1);
    assert_eq!(gpu["before"], serde_json::json!([]));
    assert_eq!(gpu["after"], serde_json::json!(["7g.80gb@0"]));
    assert_eq!(
        (gpu["destroyed"].as_u64(), gpu["created"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(gpu["ops"].as_array().map(Vec::len), Some(2));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "nvml" && e["host"] == lab.hosts[1].tag)
    );
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "host_finished")
        .collect();
    assert_eq!(finished.len(), 2, "{}", r.shown);
    assert_eq!(finished[0]["stats"]["ok"], 3);
    let last = events.last().unwrap();
    assert_eq!(last["event"], "summary");
    assert_eq!(last["stats"][&lab.hosts[0].tag]["changed"], 2);
}

#[test]
fn failures_say_what_the_agent_and_the_reset_command_said() {
    let lab = Lab::new("faults");
    let a100 = &lab.hosts[1].tag;
    // The simulator's own complaint reaches the user, not only "cannot load NVML".
    let bad_state = lab.hosts[1].dir().join("broken-sim.json");
    std::fs::write(&bad_state, "{not json").unwrap();
    let extra = lab.hosts[0].dir().join("broken.yml");
    std::fs::write(
        &extra,
        format!(
            "all:\n  hosts:\n    {a100}:\n      migfleet_agent_env: {{NVML_SIM_STATE: {}}}\n",
            bad_state.display()
        ),
    )
    .unwrap();
    let r = lab.run("playbooks/demo.lua", &["-i", extra.to_str().unwrap(), "-v"]);
    assert_eq!(r.code, 2, "{}", r.shown);
    // -v also shows what agents write to stderr as it comes.
    assert!(
        r.stderr.contains(&format!(
            "[{a100}] agent: nvml-sim: NVML_SIM_STATE: invalid state"
        )),
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains(&format!("fatal: [{a100}]: FAILED!")),
        "{}",
        r.shown
    );
    assert!(r.stdout.contains("agent stderr:"), "{}", r.shown);
    assert!(
        r.stdout.contains("nvml-sim: NVML_SIM_STATE: invalid state"),
        "{}",
        r.shown
    );
    assert!(
        r.recap(&lab.hosts[0].tag).contains("failed=0"),
        "{}",
        r.shown
    );

    // A reset command that fails is named, with the variable that sets it.
    std::fs::write(
        &extra,
        format!("all:\n  hosts:\n    {a100}:\n      migfleet_gpu_reset_command: [\"false\", \"{{bus_ids}}\"]\n"),
    )
    .unwrap();
    let r = lab.run("playbooks/demo.lua", &["-i", extra.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains("GPU 0-1: FAILED: GPU reset failed"),
        "{}",
        r.shown
    );
    assert!(r.stdout.contains("hint: the reset runs `nvidia-smi --gpu-reset -i {bus_ids}` unless the host sets migfleet_gpu_reset_command"), "{}", r.shown);
}

#[test]
fn built_in_policies_work_from_anywhere_and_policy_errors_point_at_the_policy() {
    let lab = Lab::new("builtin");
    let dir = lab.hosts[0].dir().join("elsewhere");
    std::fs::create_dir_all(dir.join("mine")).unwrap();
    std::fs::write(
        dir.join("site.lua"),
        r#"return { hosts = "hopper", tasks = {
  { mig.mode{ enabled = true } },
  { mig.apply{ policy = "balanced" } },
  { mig.apply{ policy = "picky" } },
} }"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("mine/picky.lua"),
        "return function(gpu, ctx)\n  if gpu.index == 1 then\n    error('no layout for GPU ' .. gpu.index)\n  end\n  return nil\nend\n",
    )
    .unwrap();
    let args = [
        "run".to_string(),
        "site.lua".into(),
        "-i".into(),
        lab.inventory.display().to_string(),
        "--known-hosts".into(),
        lab.known_hosts.display().to_string(),
        "--policy-dir".into(),
        "mine".into(),
    ];
    let r = migfleet_in(&dir, &args);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert_eq!(
        lab.layout(0),
        vec![BALANCED.to_vec(), BALANCED.to_vec()],
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains("mine/picky.lua:3: no layout for GPU 1"),
        "{}",
        r.shown
    );
}

/// The README's first command, as a newcomer types it (`migfleet run playbooks/demo.lua
/// -i inventory/demo.yml` from the checkout), run in a scratch copy of the checkout's
/// playbooks and demo inventory so that the demo's `.demo/` lands there: all four local
/// hosts partitioned, then a second run that changes nothing.
#[test]
fn the_readme_demo_runs_as_written_and_twice_changes_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = crate::support::testhost::TempDir::new("readme-demo");
    let d = scratch.path();
    crate::support::built_bins();
    let profile_dir = PathBuf::from(env!("CARGO_BIN_EXE_migfleet"))
        .parent()
        .unwrap()
        .to_path_buf();
    // The inventory names target/debug/...: point that at this build's binaries.
    std::fs::create_dir_all(d.join("target")).unwrap();
    std::os::unix::fs::symlink(&profile_dir, d.join("target/debug")).unwrap();
    for dir in ["playbooks", "inventory", "lua"] {
        let status = Command::new("cp")
            .arg("-r")
            .arg(root.join(dir))
            .arg(d)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let args = ["run", "playbooks/demo.lua", "-i", "inventory/demo.yml"];
    let r = migfleet_in(d, &args);
    assert_eq!(r.code, 0, "{}", r.shown);
    for host in ["h100-node", "h200-node", "a100-node", "a30-node"] {
        assert!(r.recap(host).contains("changed=2"), "{}", r.shown);
    }
    let r = migfleet_in(d, &args);
    assert_eq!(r.code, 0, "{}", r.shown);
    for host in ["h100-node", "h200-node", "a100-node", "a30-node"] {
        assert!(r.recap(host).contains("changed=0"), "{}", r.shown);
    }
}

/// NVIDIA's default `all-balanced`, applied by the example playbook to one host with an
/// RTX PRO 6000, a B300 and an A100: each GPU gets its own model's entry (by PCI id),
/// placed in its own units, and a second run changes nothing.
#[test]
fn nvidia_default_configs_apply_to_the_newest_gpus() {
    use crate::support::lab::Lab;
    let lab = Lab::new(
        "ndefault",
        &[&[
            ("RTX-PRO-6000-96GB", 1),
            ("B300-288GB", 1),
            ("A100-40GB", 1),
        ]],
    );
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/mig-parted/nvidia-defaults.yaml"
    );
    let file_var = format!("file={file}");
    let args = ["-e", &file_var, "-e", "config=all-balanced"];
    let r = lab.run("playbooks/from-mig-parted.lua", &args);
    assert_eq!(r.code, 0, "{}", r.shown);
    let state = lab.state(0);
    let placed = |gpu: usize| -> Vec<(u64, u64, u64)> {
        let mut v: Vec<(u64, u64, u64)> = state["gpus"][gpu]["gpu_instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| {
                let n = |k: &str| i[k].as_u64().unwrap_or(u64::MAX);
                (n("start"), n("size"), n("profile_id"))
            })
            .collect();
        v.sort_unstable();
        v
    };
    // RTX PRO 6000: 2g.48gb (id 5) in units 0..6, two 1g.24gb (id 14) at 6 and 9.
    assert_eq!(
        placed(0),
        [(0, 6, 5), (6, 3, 14), (9, 3, 14)],
        "{}",
        r.shown
    );
    // B300 and A100: 2×1g + 2g + 3g, the 7-slice way.
    for gpu in [1, 2] {
        let ids: Vec<u64> = placed(gpu).iter().map(|p| p.2).collect();
        let mut ids = ids;
        ids.sort_unstable();
        assert_eq!(ids, [9, 14, 19, 19], "GPU {gpu}: {}", r.shown);
    }
    let r = lab.run("playbooks/from-mig-parted.lua", &args);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.stdout.contains("changed=0"), "{}", r.shown);
    // The simulator and the catalog agree on these models: facts report no difference.
    let f = lab.facts();
    assert_eq!(f.code, 0, "{}", f.shown);
    assert!(!f.stdout.contains("differs from"), "{}", f.shown);
}

/// `migfleet run PLAYBOOK` as users type it: no -i, only an ansible.cfg in the working
/// directory naming the inventory (relative to the file) and the forks. Without it, the
/// error says every way to give an inventory.
#[test]
fn ansible_cfg_alone_names_the_inventory() {
    use crate::support::lab::Lab;
    let lab = Lab::new("anscfg", &[&[("H100-80GB", 1)]]);
    let work = lab.hosts[0].dir().join("project");
    std::fs::create_dir_all(work.join("inventories")).unwrap();
    std::fs::copy(&lab.inventory, work.join("inventories/gpus.yml")).unwrap();
    let playbook = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks/demo.lua");
    let kh = lab.known_hosts.display().to_string();
    let r = crate::support::migfleet_in(&work, &["run", playbook, "--known-hosts", &kh]);
    assert_eq!(r.code, 5, "{}", r.shown);
    for says in ["no inventory", "ANSIBLE_INVENTORY", "ansible.cfg", "-i INV"] {
        assert!(r.stderr.contains(says), "{says}: {}", r.shown);
    }
    std::fs::write(
        work.join("ansible.cfg"),
        "[defaults]\n# relative to this file\ninventory = inventories/gpus.yml\nforks = 3\n",
    )
    .unwrap();
    let r = crate::support::migfleet_in(&work, &["run", playbook, "--known-hosts", &kh]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.recap(&lab.hosts[0].tag).contains("failed=0"),
        "{}",
        r.shown
    );
    let r = crate::support::migfleet_in(&work, &["inventory", "--list-hosts"]);
    assert_eq!(r.stdout.trim(), lab.hosts[0].tag, "{}", r.shown);
}

/// Jinja in inventory variables, rendered where they are used: the SSH port and address
/// come from templates over other variables, the agent's directory from
/// `inventory_hostname`; `!unsafe` stays literal in what Lua sees; a broken template
/// fails the run before anything connects, naming host and variable.
#[test]
fn inventory_templates_render_where_the_values_are_used() {
    use crate::support::lab::Lab;
    let lab = Lab::new("jinja", &[&[("H100-80GB", 1)]]);
    let tag = lab.hosts[0].tag.clone();
    let base = lab.hosts[0].dir().join("agents");
    lab.edit_inventory(|t| {
        let mut out = String::new();
        for line in t.lines() {
            let trimmed = line.trim_start();
            let indent = &line[..line.len() - trimmed.len()];
            if let Some(port) = trimmed.strip_prefix("ansible_port: ") {
                out.push_str(&format!("{indent}sshd_port: {port}\n"));
                out.push_str(&format!(
                    "{indent}ansible_port: \"{{{{ sshd_port | int }}}}\"\n"
                ));
            } else if let Some(addr) = trimmed.strip_prefix("ansible_host: ") {
                out.push_str(&format!("{indent}real_address: {addr}\n"));
                out.push_str(&format!(
                    "{indent}ansible_host: \"{{{{ real_address }}}}\"\n"
                ));
            } else if trimmed.starts_with("migfleet_remote_dir: ") {
                out.push_str(&format!(
                    "{indent}migfleet_remote_dir: \"{}/{{{{ inventory_hostname | upper }}}}\"\n",
                    base.display()
                ));
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    });
    lab.all_var("raw_text: !unsafe '{{ not rendered }}'");
    let pb = lab.playbook(
        "show.lua",
        r#"return { hosts = "all", tasks = {
  { name = "show", run = function(h) return { msg = h.vars.raw_text .. " port " .. math.type(h.vars.ansible_port) } end } } }"#,
    );
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains("{{ not rendered }} port integer"),
        "{}",
        r.shown
    );
    assert!(
        base.join(tag.to_uppercase()).is_dir(),
        "the agent went to the rendered directory: {}",
        r.shown
    );
    // A broken template in a group_vars file: the error names host, variable and that file.
    let gv = lab.inventory.parent().unwrap().join("group_vars");
    std::fs::create_dir_all(&gv).unwrap();
    let gv = gv.join("all.yml");
    std::fs::write(&gv, "migfleet_agent_dir_typo: \"{{ no_such_var }}\"\n").unwrap();
    let r = lab.run(&pb, &[]);
    assert_eq!(r.code, 4, "{}", r.shown);
    assert!(
        r.stderr.contains(&format!("host `{tag}`"))
            && r.stderr.contains("variable `migfleet_agent_dir_typo`")
            && r.stderr.contains(&gv.display().to_string())
            && r.stderr.contains("undefined"),
        "{}",
        r.shown
    );
}

/// A target reached through a bastion: `ProxyJump` from ssh_config (`-F`), from
/// ansible.cfg's `ssh_common_args`, from `ansible_ssh_common_args` (one hop and two),
/// and from `~/.ssh/config` alone (an inventory of bare host
/// names), each hop's host key checked against known_hosts. The bastion's sshd logs each
/// forwarded channel to the target, and with the bastion down the target is unreachable.
#[test]
fn targets_are_reached_through_a_bastion() {
    use crate::support::lab::Lab;
    use crate::support::testhost::{TestHost, client_key, write_known_hosts};
    let lab = Lab::new("jumped", &[&[("H100-80GB", 1)]]);
    let mut bastion = TestHost::start("bastion");
    // At DEBUG1 sshd logs every direct-tcpip channel with its target.
    bastion.restart_with_log_level("DEBUG1");
    let forwarded = format!("target {} port {}", lab.hosts[0].address, lab.hosts[0].port);
    let kh = write_known_hosts(
        &lab.hosts[0].dir().join("known_hosts_all"),
        [&lab.hosts[0], &bastion].into_iter(),
    );
    let cfg = lab.hosts[0].dir().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host bastion\n  HostName {}\n  Port {}\n  User root\n  IdentityFile {}\n\nHost {}\n  ProxyJump bastion\n",
            bastion.address,
            bastion.port,
            client_key().display(),
            lab.hosts[0].address
        ),
    )
    .unwrap();
    let inv = lab.inventory.display().to_string();
    let kh = kh.display().to_string();
    let cfg_s = cfg.display().to_string();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "playbooks/demo.lua",
            "-i",
            &inv,
            "--known-hosts",
            &kh,
        ];
        args.extend_from_slice(extra);
        crate::support::migfleet(&args)
    };
    let before = bastion.accepted_connections();
    let r = run(&["--ssh-config", &cfg_s]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(bastion.accepted_connections() > before, "{}", bastion.log());
    let forwards = bastion.log().matches(&forwarded).count();
    assert!(
        forwards > 0,
        "no forwarding to the target in: {}",
        bastion.log()
    );
    // The same through ansible.cfg's `[ssh_connection] ssh_common_args`, found in the
    // working directory as Ansible finds it.
    let work = lab.hosts[0].dir().join("project");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("ansible.cfg"),
        format!(
            "[defaults]\ninventory = {inv}\n[ssh_connection]\nssh_common_args = -o ProxyJump=root@{}:{}\n",
            bastion.address, bastion.port
        ),
    )
    .unwrap();
    let key = client_key().display().to_string();
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/demo.lua");
    let demo = demo.display().to_string();
    let forwards = bastion.log().matches(&forwarded).count();
    let r = crate::support::migfleet_in(
        &work,
        &[
            "run",
            &demo,
            "--known-hosts",
            &kh,
            "--private-key",
            &key,
            "--no-retry-file",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        bastion.log().matches(&forwarded).count() > forwards,
        "not through the bastion: {}",
        bastion.log()
    );
    // The same through the inventory's SSH arguments (no ssh_config).
    lab.all_var(&format!(
        "ansible_ssh_common_args: '-o ProxyJump=root@{}:{}'",
        bastion.address, bastion.port
    ));
    let before = bastion.accepted_connections();
    let r = run(&["--private-key", &key]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(bastion.accepted_connections() > before, "{}", bastion.log());
    assert!(
        bastion.log().matches(&forwarded).count() > forwards,
        "no new forwarding to the target in: {}",
        bastion.log()
    );
    // Runs with another known_hosts file (the inventory's SSH arguments name the hop).
    let run_kh = |known: &std::path::Path| {
        crate::support::migfleet(&[
            "run",
            "playbooks/demo.lua",
            "-i",
            &inv,
            "--known-hosts",
            &known.display().to_string(),
            "--private-key",
            &key,
        ])
    };
    // The bastion's own key is checked: with known_hosts lacking it, nothing connects.
    let only_target = write_known_hosts(
        &lab.hosts[0].dir().join("known_hosts_target"),
        [&lab.hosts[0]].into_iter(),
    );
    let r = run_kh(&only_target);
    assert_ne!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains("jump host") && r.stdout.contains("not in"),
        "{}",
        r.shown
    );
    // And the target's own key, reached through the bastion, is checked too.
    let only_bastion = write_known_hosts(
        &lab.hosts[0].dir().join("known_hosts_bastion"),
        [&bastion].into_iter(),
    );
    let r = run_kh(&only_bastion);
    assert_ne!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains(&lab.hosts[0].tag)
            && r.stdout.contains("not in")
            && !r.stdout.contains("jump host"),
        "{}",
        r.shown
    );
    // Two hops (`-J outer,inner`): the outer bastion forwards to the inner one, which
    // forwards to the target; each hop's key is checked.
    let mut outer = TestHost::start("outer");
    outer.restart_with_log_level("DEBUG1");
    let kh2 = write_known_hosts(
        &lab.hosts[0].dir().join("known_hosts_three"),
        [&lab.hosts[0], &bastion, &outer].into_iter(),
    );
    let one_hop = format!("-o ProxyJump=root@{}:{}", bastion.address, bastion.port);
    let two_hops = format!(
        "-J root@{}:{},root@{}:{}",
        outer.address, outer.port, bastion.address, bastion.port
    );
    lab.edit_inventory(|t| t.replace(&one_hop, &two_hops));
    let forwards = bastion.log().matches(&forwarded).count();
    let r = run_kh(&kh2);
    assert_eq!(r.code, 0, "{}", r.shown);
    let to_inner = format!("target {} port {}", bastion.address, bastion.port);
    assert!(outer.log().contains(&to_inner), "{}", outer.log());
    assert!(
        bastion.log().matches(&forwarded).count() > forwards,
        "{}",
        bastion.log()
    );
    // As most users have it: nothing but host names in the inventory, and ~/.ssh/config
    // saying how to reach them (address, port, user, key, the bastion), ~/.ssh/known_hosts
    // holding both keys; no migfleet option about SSH at all.
    let home = lab.hosts[0].dir().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::copy(&kh, home.join(".ssh/known_hosts")).unwrap();
    std::fs::write(
        home.join(".ssh/config"),
        format!(
            "Host {tag}\n  HostName {}\n  Port {}\n  ProxyJump jump\n\nHost jump\n  HostName {}\n  Port {}\n\nHost *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n",
            lab.hosts[0].address,
            lab.hosts[0].port,
            bastion.address,
            bastion.port,
            tag = lab.hosts[0].tag,
        ),
    )
    .unwrap();
    lab.edit_inventory(|t| {
        t.lines()
            .filter(|l| {
                let l = l.trim_start();
                ![
                    "ansible_host:",
                    "ansible_port:",
                    "ansible_user:",
                    "ansible_ssh_",
                ]
                .iter()
                .any(|k| l.starts_with(k))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    });
    let forwards = bastion.log().matches(&forwarded).count();
    let run_home = || {
        crate::support::migfleet_env(
            lab.hosts[0].dir(),
            &["run", &demo, "-i", &inv, "--no-retry-file"],
            &[("HOME", &home)],
        )
    };
    let r = run_home();
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        bastion.log().matches(&forwarded).count() > forwards,
        "not through the bastion: {}",
        bastion.log()
    );
    // With the bastion down the target is unreachable: the connection runs through it.
    bastion.stop();
    let r = run_home();
    assert_ne!(r.code, 0, "{}", r.shown);
    assert!(r.stdout.contains("jump host"), "{}", r.shown);
}

/// Ansible Vault as `ansible-vault` (ansible-core 2.19) wrote it (tests/cases/vault): a
/// `!vault` value and a whole encrypted group_vars file reach the playbook decrypted
/// with `--vault-password-file`; without it the encrypted file stops the run before
/// anything connects, a `!vault` value nothing needs stays encrypted with a warning, and
/// one the connection needs fails the host, naming host, variable and file.
#[test]
fn vault_values_and_files_are_decrypted_with_the_password() {
    use crate::support::lab::Lab;
    let cases = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let lab = Lab::new("vault", &[&[("H100-80GB", 1)]]);
    let tag = lab.hosts[0].tag.clone();
    let inline =
        std::fs::read_to_string(cases.join("inventory/vault_inline/inventory.yml")).unwrap();
    // The recorded `db_pass: !vault |` block, moved under `all: vars:` (4 spaces deep).
    let lines: Vec<&str> = inline
        .lines()
        .skip_while(|l| !l.contains("db_pass: !vault"))
        .collect();
    let indent = lines[0].len() - lines[0].trim_start().len();
    let block: String = lines
        .iter()
        .map(|l| format!("    {}\n", &l[indent..]))
        .collect();
    lab.edit_inventory(|t| t.replacen("  vars:\n", &format!("  vars:\n{block}"), 1));
    let gv = lab.inventory.parent().unwrap().join("group_vars");
    std::fs::create_dir_all(&gv).unwrap();
    std::fs::copy(cases.join("vault/group_vars_all.yml"), gv.join("all.yml")).unwrap();
    let pw = cases.join("vault/password.txt").display().to_string();
    let pb = lab.playbook(
        "secrets.lua",
        r#"return { hosts = "all", tasks = {
  { name = "show", run = function(h) return { msg = "pass=" .. h.vars.db_pass .. " other=" .. h.vars.other } end } } }"#,
    );
    let r = lab.run(&pb, &["--vault-password-file", &pw]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.stdout.contains("pass=hunter2 other=two"), "{}", r.shown);
    // Without the password the encrypted file cannot be read: nothing runs.
    let r = lab.run(&pb, &[]);
    assert_ne!(r.code, 0, "{}", r.shown);
    assert!(
        r.stderr.contains("group_vars/all.yml") && r.stderr.contains("no vault password"),
        "{}",
        r.shown
    );
    // Only the inline value left, and a playbook that does not read it: it stays
    // encrypted, with a warning, and the run goes on (as in Ansible, a vault value fails
    // only where it is used).
    std::fs::remove_file(gv.join("all.yml")).unwrap();
    let quiet = lab.playbook(
        "quiet.lua",
        r#"return { hosts = "all", tasks = {
  { name = "look", run = function(h) return { msg = "vault text kept: " .. tostring(h.vars.db_pass.__ansible_vault ~= nil) } end } } }"#,
    );
    let r = lab.run(&quiet, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.stdout.contains("vault text kept: true"), "{}", r.shown);
    assert!(
        r.stderr.contains("variable `db_pass`") && r.stderr.contains("left encrypted"),
        "{}",
        r.shown
    );
    // A variable the connection is made from, in a vault nobody can open, fails the host
    // before it connects, naming host, variable and file.
    lab.edit_inventory(|t| t.replacen("db_pass: !vault", "migfleet_lock_wait: !vault", 1));
    let r = lab.run(&quiet, &[]);
    assert_ne!(r.code, 0, "{}", r.shown);
    assert!(
        r.stderr.contains(&format!("host `{tag}`"))
            && r.stderr.contains("variable `migfleet_lock_wait`")
            && r.stderr.contains(&lab.inventory.display().to_string())
            && r.stderr.contains("no vault password was given"),
        "{}",
        r.shown
    );
    // A wrong password is told apart from none.
    let wrong = lab.hosts[0].dir().join("wrong.txt");
    std::fs::write(&wrong, "not it\n").unwrap();
    let r = lab.run(
        &quiet,
        &["--vault-id", &format!("prod@{}", wrong.display())],
    );
    assert_ne!(r.code, 0, "{}", r.shown);
    assert!(r.stderr.contains("tried"), "{}", r.shown);
}
