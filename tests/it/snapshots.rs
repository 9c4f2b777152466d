//! What people read, pinned as snapshots (insta): `--help`, a changing run's task output
//! and recap, a `--check --diff` plan, and a run where a busy GPU blocks its host. The
//! hosts are local simulated ones (no addresses or ports in the output); temp paths and
//! durations are redacted all the same. `cargo insta review` updates them after a
//! deliberate change.

use crate::support::sim::{SimHost, write_inventory};
use crate::support::testhost::TempDir;
use crate::support::{Run, migfleet};
use std::path::PathBuf;

/// Redactions for anything that differs between machines and runs.
fn settings(dir: &TempDir) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&regex_escape(&dir.path().display().to_string()), "[TMP]");
    s.add_filter(r"\b\d+(\.\d+)?\s?(ms|s)\b", "[DURATION]");
    s.add_filter(r"127\.0\.\d+\.\d+(:\d+)?", "[ADDR]");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '-' || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// Two local hosts: two H100s, and an A100-40GB plus an A100-80GB (an Ampere reset).
fn fleet(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let inv = write_inventory(
        &dir.path().join("inventory.yml"),
        &[
            SimHost::local(dir.path(), "h100-node", &[("H100-80GB", 2)]).in_group("hopper"),
            SimHost::local(
                dir.path(),
                "a100-node",
                &[("A100-40GB", 1), ("A100-80GB", 1)],
            )
            .in_group("ampere"),
        ],
    );
    (dir, inv)
}

fn run(inv: &std::path::Path, playbook: &str, extra: &[&str]) -> Run {
    let mut args = vec!["run", playbook, "-i", inv.to_str().unwrap()];
    args.extend_from_slice(extra);
    migfleet(&args)
}

#[test]
fn help_texts() {
    let dir = TempDir::new("help");
    settings(&dir).bind(|| {
        for (name, args) in [
            ("help", &["--help"][..]),
            ("run_help", &["run", "--help"]),
            ("facts_help", &["facts", "--help"]),
        ] {
            let r = migfleet(args);
            assert_eq!(r.code, 0, "{}", r.shown);
            insta::assert_snapshot!(name, r.stdout);
        }
    });
}

#[test]
fn a_changing_run_then_a_plan_then_a_busy_gpu() {
    let (dir, inv) = fleet("snap");
    settings(&dir).bind(|| {
        // A fresh fleet: what --check --diff would do, end to end.
        let r = run(&inv, "playbooks/demo.lua", &["--check", "--diff"]);
        assert_eq!(r.code, 0, "{}", r.shown);
        insta::assert_snapshot!("demo_check_diff", r.stdout);
        // The run itself: per task, per host, per GPU group.
        let r = run(&inv, "playbooks/demo.lua", &[]);
        assert_eq!(r.code, 0, "{}", r.shown);
        insta::assert_snapshot!("demo_run", r.stdout);
        // A different target on a partitioned fleet: destroys and creates, planned.
        let r = run(
            &inv,
            "playbooks/inference.lua",
            &["--check", "--skip-tags", "drain"],
        );
        assert_eq!(r.code, 0, "{}", r.shown);
        insta::assert_snapshot!("inference_check", r.stdout);
        // A busy instance on one GPU: the other GPUs change, the busy one is named.
        let sim = crate::support::built_bins().join("nvml-sim");
        let state = dir.path().join("h100-node/sim.json");
        let st: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
        let gi = &st["gpus"][0]["gpu_instances"][0];
        let out = std::process::Command::new(sim)
            .args([
                "process",
                "add",
                "--state",
                state.to_str().unwrap(),
                "--gpu",
                "0",
            ])
            .args(["--gi", &gi["id"].to_string()])
            .args(["--ci", &gi["compute_instances"][0]["id"].to_string()])
            .args(["--pid", "4242", "--mem", "100"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let r = run(&inv, "playbooks/inference.lua", &["--skip-tags", "drain"]);
        assert_eq!(r.code, 2, "{}", r.shown);
        insta::assert_snapshot!("inference_busy_gpu", r.stdout);
    });
}
