//! Ctrl-C as Ansible users expect it: the first lets the operations in flight finish,
//! starts nothing new and prints the recap with the interrupted hosts named (exit 99);
//! a second aborts at once.

use crate::support::sim::{SimHost, write_inventory};
use crate::support::testhost::TempDir;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fleet(tag: &str, sleep: u32) -> (TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = TempDir::new(tag);
    let inv = write_inventory(
        &dir.path().join("inventory.yml"),
        &[SimHost::local(dir.path(), "node", &[("H100-80GB", 1)])],
    );
    let pb = dir.path().join("slow.lua");
    std::fs::write(
        &pb,
        format!(
            r#"return {{ hosts = "all", tasks = {{
  {{ name = "slow", command{{ argv = {{ "sleep", "{sleep}" }} }} }},
  {{ name = "never", mig.mode{{ enabled = true }} }},
}} }}"#
        ),
    )
    .unwrap();
    (dir, inv, pb)
}

/// A run started and read up to its first task; the rest of its stdout is collected
/// in the background so the pipe never fills.
struct Running {
    child: Child,
    rest: std::sync::mpsc::Receiver<String>,
    seen: String,
}

fn start_until_slow_task(inv: &std::path::Path, pb: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_migfleet"))
        .args(["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "ended early: {seen}");
        seen.push_str(&line);
        if line.starts_with("TASK [slow]") {
            break;
        }
    }
    let (tx, rest) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        let _ = tx.send(rest);
    });
    Running { child, rest, seen }
}

fn interrupt(child: &Child) {
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Waits for the run to end: exit code, all of stdout, stderr.
fn finish(run: Running) -> (i32, String, String) {
    let Running {
        mut child,
        rest,
        mut seen,
    } = run;
    let status = child.wait().unwrap();
    seen.push_str(&rest.recv().unwrap_or_default());
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err).unwrap();
    }
    (status.code().unwrap_or(-1), seen, err)
}

#[test]
fn the_first_ctrl_c_finishes_what_runs_and_stops_before_the_next_task() {
    let (dir, inv, pb) = fleet("sigint", 2);
    let run = start_until_slow_task(&inv, &pb);
    interrupt(&run.child);
    let (code, seen, err) = finish(run);
    assert_eq!(code, 99, "{seen}\n{err}");
    // The command in flight finished (the sleep is in its own process group)...
    assert!(seen.contains("changed: [node] => sleep 2"), "{seen}\n{err}");
    // ...and nothing after it started.
    assert!(!seen.contains("TASK [never]"), "{seen}");
    assert!(seen.contains("PLAY RECAP"), "{seen}");
    assert!(seen.contains("interrupted: node (before never)"), "{seen}");
    assert!(
        err.contains("Ctrl-C: finishing the operations in flight"),
        "{err}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("node/sim.json")).unwrap())
            .unwrap();
    assert_eq!(state["gpus"][0]["mig_mode_current"], 0);
}

#[test]
fn a_second_ctrl_c_aborts_at_once() {
    let (_dir, inv, pb) = fleet("sigint2", 30);
    let mut run = start_until_slow_task(&inv, &pb);
    let started = Instant::now();
    interrupt(&run.child);
    // The second Ctrl-C only counts once the first has been taken in: wait for its
    // message rather than for a guessed time.
    let mut stderr = BufReader::new(run.child.stderr.take().unwrap());
    let mut err = String::new();
    while !err.contains("Ctrl-C: finishing") {
        assert!(stderr.read_line(&mut err).unwrap() > 0, "{err}");
    }
    interrupt(&run.child);
    stderr.read_to_string(&mut err).unwrap();
    let (code, _, _) = finish(run);
    assert_eq!(code, 99, "{err}");
    assert!(err.contains("aborted by a second Ctrl-C"), "{err}");
    // Well before the 30 s the command in flight takes.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}
