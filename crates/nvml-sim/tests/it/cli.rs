//! The `nvml-sim` CLI: init, errors as one line with exit 1, reset selectors, and
//! concurrent mutations from several processes staying consistent under the file lock.

use crate::common::{new_state, sim, sim_ok, state_json, test_dir};

#[test]
fn init_refuses_overwrite_and_validates() {
    let state = new_state(
        "cli_init",
        &[
            "--model",
            "a100-40gb",
            "--gpus",
            "2",
            "--model",
            "L4",
            "--gpus",
            "1",
        ],
    );
    let st = state_json(&state);
    assert_eq!(st["gpus"].as_array().unwrap().len(), 3);
    assert_eq!(st["gpus"][2]["model"], "L4");
    let out = sim(&state, &["init", "--model", "H100-80GB", "--gpus", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists") && err.lines().count() == 1,
        "{err}"
    );
    sim_ok(
        &state,
        &["init", "--model", "H100-80GB", "--gpus", "1", "--force"],
    );
    assert_eq!(state_json(&state)["gpus"].as_array().unwrap().len(), 1);

    let out = sim(
        &state,
        &["init", "--model", "V100", "--gpus", "1", "--force"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown model"));
    let out = sim(&state, &["init", "--model", "L4", "--force"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

#[test]
fn process_and_reset_selectors() {
    let state = new_state("cli_reset", &["--model", "A100-80GB", "--gpus", "3"]);
    // Process on a missing GI/CI is refused.
    let out = sim(
        &state,
        &[
            "process", "add", "--gpu", "0", "--gi", "1", "--ci", "0", "--pid", "7",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no GPU instance 1"));
    sim_ok(
        &state,
        &["process", "add", "--gpu", "2", "--pid", "7", "--mem", "64"],
    );
    let out = sim(&state, &["process", "add", "--gpu", "1", "--pid", "7"]);
    assert_eq!(out.status.code(), Some(1), "duplicate pid");

    // Make a pending mode change on every GPU by editing the state as the library would.
    let mut st = state_json(&state);
    for g in st["gpus"].as_array_mut().unwrap() {
        g["mig_mode_pending"] = 1.into();
    }
    std::fs::write(&state, serde_json::to_string(&st).unwrap()).unwrap();

    // nvidia-smi style selector: comma-separated bus id and index; GPU 2 is busy.
    let bus0 = st["gpus"][0]["pci_bus_id"].as_str().unwrap().to_string();
    let out = sim(&state, &["reset", "-i", &format!("{bus0},2")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains('7'));
    assert_eq!(
        state_json(&state)["gpus"][0]["mig_mode_current"],
        0,
        "refused reset changes nothing"
    );
    sim_ok(&state, &["reset", "-i", &format!("{bus0},1")]);
    let st = state_json(&state);
    assert_eq!(st["gpus"][0]["mig_mode_current"], 1);
    assert_eq!(st["gpus"][1]["mig_mode_current"], 1);
    assert_eq!(st["gpus"][2]["mig_mode_current"], 0);
    let out = sim(&state, &["reset", "--bus-id", "00000000:99:00.0"]);
    assert_eq!(out.status.code(), Some(1));

    let show = sim_ok(&state, &["show"]);
    assert!(show.contains("process 7 64 MiB on whole GPU"), "{show}");
    assert!(show.contains("current enabled, pending enabled"), "{show}");
    sim_ok(&state, &["process", "remove", "--pid", "7"]);
    assert_eq!(
        sim(&state, &["process", "remove", "--pid", "7"])
            .status
            .code(),
        Some(1)
    );
    let json: serde_json::Value =
        serde_json::from_str(&sim_ok(&state, &["show", "--json"])).unwrap();
    assert!(json["gpus"][2]["processes"].as_array().unwrap().is_empty());
    assert_eq!(sim_ok(&state, &["calls", "--count-only"]).trim(), "0");
}

#[test]
fn missing_state_file_is_one_line_error() {
    let dir = test_dir("cli_missing");
    let out = sim(&dir.join("nope.json"), &["show"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("nope.json"), "{err}");
}

#[test]
fn concurrent_cli_processes_keep_every_update() {
    let state = new_state("cli_concurrent", &["--model", "H100-80GB", "--gpus", "2"]);
    let workers: Vec<_> = (0..2u32)
        .map(|w| {
            let state = state.clone();
            std::thread::spawn(move || {
                for i in 0..20u32 {
                    let pid = (1000 * (w + 1) + i).to_string();
                    let gpu = w.to_string();
                    sim_ok(
                        &state,
                        &["process", "add", "--gpu", &gpu, "--pid", &pid, "--mem", "1"],
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let st = state_json(&state);
    let total: usize = st["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["processes"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 40);
    // No temp files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(state.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty());
}
