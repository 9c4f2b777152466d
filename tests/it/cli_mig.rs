//! `migfleet mig ...` end to end: the real binary, its stdout, stderr and exit codes.

use crate::support::{Run, migfleet};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.shown))
}

#[test]
fn readme_first_command_keeps_the_busy_instance() {
    let r = migfleet(&[
        "mig",
        "plan",
        "--model",
        "H100-80GB",
        "--from",
        "3g.40gb@0, 3g.40gb@4",
        "--in-use",
        "4",
        "--to",
        "3g.40gb, 4x1g.10gb",
        "--output",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let v = json(&r);
    assert_eq!(v["kept"], serde_json::json!([2]), "{}", r.shown);
    let ops = v["ops"].as_array().expect("ops");
    assert_eq!(ops[0]["op"], "destroy_ci");
    assert_eq!(
        ops[1],
        serde_json::json!({"op": "destroy_gi", "gi_id": 1, "profile": "3g.40gb", "start": 0})
    );
    assert!(
        ops.iter().all(|o| o["gi_id"] != 2),
        "busy GI touched:\n{}",
        r.shown
    );
    assert_eq!(
        v["after"],
        serde_json::json!([
            "1g.10gb@0",
            "1g.10gb@1",
            "1g.10gb@2",
            "1g.10gb@3",
            "3g.40gb@4"
        ])
    );
}

#[test]
fn layouts_counts_match_the_known_answers() {
    for (model, want) in [
        ("H100-80GB", 19),
        ("NVIDIA A100-SXM4-40GB", 19),
        ("H200", 19),
        ("A30", 5),
    ] {
        let r = migfleet(&[
            "mig",
            "layouts",
            model,
            "--maximal",
            "--plain",
            "--output",
            "json",
        ]);
        assert_eq!(r.code, 0, "{}", r.shown);
        assert_eq!(json(&r)["count"], want, "{}", r.shown);
    }
    let r = migfleet(&[
        "mig",
        "layouts",
        "H100-80GB",
        "--maximal",
        "--plain",
        "--multisets",
    ]);
    assert!(
        r.stdout
            .starts_with("12 maximal multisets on H100-80GB (plain profiles):"),
        "{}",
        r.shown
    );
    let r = migfleet(&["mig", "layouts", "H100-80GB", "--maximal", "--plain"]);
    assert!(
        r.stdout.contains("\n18. 4g.40gb@0 3g.40gb@4\n"),
        "{}",
        r.shown
    );
}

#[test]
fn profiles_show_ids_placements_and_provenance() {
    let r = migfleet(&["mig", "profiles", "A100-40GB", "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let v = json(&r);
    let p = &v["profiles"][2];
    assert_eq!(p["name"], "1g.10gb");
    assert_eq!(p["nvml"], "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2");
    assert_eq!(
        p["id"],
        serde_json::json!({"value": 15, "source": "measured"})
    );
    assert_eq!(p["starts"], serde_json::json!([0, 2, 4, 6]));
    assert_eq!(p["memory_slices"], 2);

    let r = migfleet(&["mig", "profiles", "B200"]);
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with("7g.180gb"))
        .unwrap_or_default();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cols.get(1),
        Some(&"0?"),
        "assumed id not marked:\n{}",
        r.shown
    );
    assert_eq!(
        cols.get(4),
        Some(&"?"),
        "unknown memory not marked:\n{}",
        r.shown
    );
    assert!(
        r.stdout.contains("assumed from a sibling model"),
        "{}",
        r.shown
    );
}

#[test]
fn models_lists_every_catalog_model() {
    let r = migfleet(&["mig", "models", "--output", "json"]);
    let names: Vec<String> = json(&r)
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "A30-24GB",
            "A100-40GB",
            "A100-80GB",
            "H100-80GB",
            "H100-NVL-94GB",
            "H100-96GB",
            "H20-96GB",
            "PG506-96GB",
            "H200-141GB",
            "GH200-144GB",
            "B200-180GB",
            "GB200-186GB",
            "B300-288GB",
            "GB300-288GB",
            "RTX-PRO-6000-96GB",
            "RTX-PRO-5000-48GB",
            "RTX-PRO-4500-32GB"
        ]
    );
}

#[test]
fn check_places_each_gpu_by_model() {
    let r = migfleet(&[
        "mig",
        "check",
        "examples/mig-parted/fleet.yaml",
        "--config",
        "balanced",
        "--model",
        "A100-40GB",
        "--model",
        "H100-80GB",
        "--gpus",
        "2",
        "--output",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let v = json(&r);
    let gpus = v["gpus"].as_array().expect("gpus");
    assert_eq!(gpus.len(), 4);
    assert_eq!(gpus[0]["model"], "A100-40GB");
    assert_eq!(
        gpus[0]["target"]["instances"].as_array().map(Vec::len),
        Some(4)
    );
    // The fourth GPU (index 3) is overridden by the later entry that names it.
    let last: Vec<&str> = gpus[3]["target"]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        last.contains(&"1g.10gb+me@6") || last.iter().any(|s| s.starts_with("1g.10gb+me@")),
        "{}",
        r.shown
    );
    assert_eq!(last.len(), 7, "{}", r.shown);
}

/// NVIDIA's default configs, checked by PCI id as mig-parted's device filters name GPUs:
/// the id itself is the host's device, so the entry that filters on it applies.
#[test]
fn check_takes_pci_ids_and_nvidia_default_configs() {
    let file = "examples/mig-parted/nvidia-defaults.yaml";
    for (id, model, first) in [
        ("0x233A10DE", "H100-NVL-94GB", "2g.24gb@0"),
        ("0x2BB510DE", "RTX-PRO-6000-96GB", "2g.48gb@0"),
        ("0x20B610DE", "PG506-96GB", "2g.24gb@0"),
    ] {
        let r = migfleet(&[
            "mig",
            "check",
            file,
            "-c",
            "all-balanced",
            "--model",
            id,
            "--output",
            "json",
        ]);
        assert_eq!(r.code, 0, "{}", r.shown);
        let v = json(&r);
        assert_eq!(v["gpus"][0]["model"], model, "{}", r.shown);
        assert_eq!(v["gpus"][0]["target"]["instances"][0], first, "{}", r.shown);
    }
    // The H100 SXM5 94GB shares the NVL's table but no filter of NVIDIA's names it.
    let r = migfleet(&[
        "mig",
        "check",
        file,
        "-c",
        "all-balanced",
        "--model",
        "0x2339",
        "--output",
        "json",
    ]);
    let v = json(&r);
    assert_eq!(v["gpus"][0]["model"], "H100-NVL-94GB", "{}", r.shown);
    assert_eq!(v["gpus"][0]["target"]["mig"], "untouched", "{}", r.shown);
    // A config for another GPU's profiles is refused with the profiles that exist.
    let r = migfleet(&[
        "mig",
        "check",
        file,
        "-c",
        "all-1g.24gb.gfx",
        "--model",
        "0x233010DE",
    ]);
    assert_ne!(r.code, 0, "{}", r.shown);
    assert!(
        r.stderr
            .contains("profile `1g.24gb+gfx` does not exist on H100-80GB"),
        "{}",
        r.shown
    );
}

#[test]
fn check_reports_every_problem_with_file_line_column() {
    let r = migfleet(&[
        "mig",
        "check",
        "examples/mig-parted/broken.yaml",
        "--model",
        "H100-80GB",
    ]);
    assert_eq!(r.code, 4, "{}", r.shown);
    assert!(
        r.stderr
            .contains("examples/mig-parted/broken.yaml:12:7: missing required field `mig-enabled`"),
        "{}",
        r.shown
    );
    assert!(
        r.stderr
            .contains("examples/mig-parted/broken.yaml:13:7: unknown field `mig-enable`"),
        "{}",
        r.shown
    );

    let r = migfleet(&[
        "mig",
        "check",
        "examples/mig-parted/fleet.yaml",
        "-c",
        "shared-3g",
        "--model",
        "A100-40GB",
    ]);
    assert_eq!(r.code, 4, "{}", r.shown);
    assert!(
        r.stderr.contains("fleet.yaml:53:9: GPU 0 (A100-40GB): profile `1c.3g.40gb` does not exist on A100-40GB; profiles there: 1g.5gb,"),
        "{}",
        r.shown
    );
}

#[test]
fn bad_input_is_explained_with_hints_and_exit_codes() {
    let r = migfleet(&["mig", "profiles", "V100"]);
    assert_eq!(r.code, 5, "{}", r.shown);
    assert!(
        r.stderr
            .contains("unknown GPU model `V100`; known models: A30-24GB,"),
        "{}",
        r.shown
    );
    assert!(
        r.stderr.contains("hint: `migfleet mig models`"),
        "{}",
        r.shown
    );

    let r = migfleet(&["mig", "plan", "--model", "A30", "--to", "1g.10gb"]);
    assert_eq!(r.code, 5, "{}", r.shown);
    assert!(
        r.stderr
            .contains("profiles there: 1g.6gb, 1g.6gb+me, 2g.12gb, 2g.12gb+me, 4g.24gb"),
        "{}",
        r.shown
    );

    let r = migfleet(&[
        "mig",
        "plan",
        "--model",
        "H100",
        "--from",
        "2g.20gb@2",
        "--in-use",
        "2",
        "--to",
        "7g.80gb",
    ]);
    assert_eq!(r.code, 1, "{}", r.shown);
    assert!(
        r.stderr.contains("2g.20gb@2 (GI 1, CI 0 busy)"),
        "{}",
        r.shown
    );
}

#[test]
fn help_explains_the_layout_notation() {
    let r = migfleet(&["mig", "plan", "--help"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.stdout.contains("LAYOUT notation"), "{}", r.shown);
    assert!(r.stdout.contains("--in-use"), "{}", r.shown);
}

#[test]
fn usage_errors_exit_5_and_help_exits_0() {
    for args in [
        &["bogus"][..],
        &["mig", "layouts"],
        &["facts", "-i", "inventory/demo.yml", "-f", "0"],
        &[
            "facts",
            "-i",
            "inventory/demo.yml",
            "-f",
            "18446744073709551615",
        ],
        &["facts", "-i", "inventory/demo.yml", "-T", "0"],
        &[
            "facts",
            "-i",
            "inventory/demo.yml",
            "-T",
            "18446744073709551615",
        ],
    ] {
        let r = migfleet(args);
        assert_eq!(r.code, 5, "{}", r.shown);
    }
    let r = migfleet(&["facts", "-i", "inventory/demo.yml", "-f", "0"]);
    assert!(r.stderr.contains("must be at least 1"), "{}", r.shown);
    for args in [&["--help"][..], &["--version"], &["run", "--help"]] {
        let r = migfleet(args);
        assert_eq!(r.code, 0, "{}", r.shown);
    }
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    // `migfleet mig layouts H100-80GB | head -1`: thousands of lines, the reader leaves
    // after the first.
    let mut child = Command::new(env!("CARGO_BIN_EXE_migfleet"))
        .args(["mig", "layouts", "H100-80GB"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("valid placed layouts"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
