//! Agent benchmark on an 8-GPU simulated host: start + facts, a full re-partition of every
//! GPU (and back), the agent's peak RSS and binary size. Prints Markdown for
//! `docs/benchmarks.md`. Run with `cargo bench -p migfleet-agent --bench agent`.
//!
//! NVML is the simulator here (every call reads the JSON state file under a lock), so the
//! absolute times are the simulator's more than the agent's; the ratio that matters is the
//! one between the agent's work and a plain process start, measured side by side.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    id: u64,
}

impl Agent {
    fn start(state: &Path, lib: &Path) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_migfleet-agent"))
            .env("NVML_SIM_STATE", state)
            .env("MIGFLEET_NVML_LIB", lib)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("agent starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Agent {
            child,
            stdin,
            stdout,
            id: 0,
        }
    }

    fn call(&mut self, mut req: Value) -> Value {
        self.id += 1;
        req["id"] = json!(self.id);
        writeln!(self.stdin, "{req}").expect("write");
        self.stdin.flush().expect("flush");
        loop {
            let mut line = String::new();
            self.stdout.read_line(&mut line).expect("read");
            let v: Value = serde_json::from_str(&line).expect("JSON line");
            if v.get("event").is_none() {
                assert!(v.get("ok").is_some(), "request failed: {v}");
                return v["ok"].clone();
            }
        }
    }

    /// Peak resident set of the agent so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|n| n.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn layout(gpus: u32, names: &[&str]) -> Value {
    let list: Vec<Value> = (0..gpus)
        .map(|i| json!({"index": i, "instances": names.iter().map(|n| json!({"profile": n})).collect::<Vec<_>>()}))
        .collect();
    json!({"op": "apply", "gpus": list})
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        last = Some(v);
    }
    (best, last.expect("at least one run"))
}

fn main() {
    let dir = profile_dir();
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "--release", "-p", "migfleet-nvml-sim"])
        .status()
        .expect("cargo runs");
    assert!(status.success());
    let release = dir.parent().expect("target").join("release");
    let (lib, cli) = (
        release.join("libnvidia_ml_sim.so"),
        release.join("nvml-sim"),
    );
    let tmp = std::env::temp_dir().join(format!("mf-agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let state = tmp.join("sim.json");
    let ok = Command::new(&cli)
        .args(["init", "--force", "--state"])
        .arg(&state)
        .args(["--model", "H100-80GB", "--gpus", "8"])
        .stdout(Stdio::null())
        .status()
        .expect("nvml-sim runs");
    assert!(ok.success());

    // Baseline: the cost of starting any process and exchanging one line with it.
    let (t_hello, _) = best(5, || {
        let mut a = Agent::start(&state, &lib);
        a.call(json!({"op": "hello"}))
    });
    let (t_facts, facts) = best(5, || {
        let mut a = Agent::start(&state, &lib);
        a.call(json!({"op": "facts"}))
    });
    assert_eq!(facts["gpus"].as_array().map(Vec::len), Some(8));

    let mut a = Agent::start(&state, &lib);
    a.call(json!({"op": "set_mig_mode", "enabled": true}));
    let small = ["1g.10gb"; 7];
    let big = ["4g.40gb", "3g.40gb"];
    a.call(layout(8, &small));
    let mut ops = 0;
    let (t_repartition, _) = best(5, || {
        let r1 = a.call(layout(8, &big));
        let r2 = a.call(layout(8, &small));
        ops = [r1, r2]
            .iter()
            .flat_map(|r| r["gpus"].as_array().cloned().unwrap_or_default())
            .map(|g| g["ops"].as_array().map_or(0, Vec::len))
            .sum::<usize>();
    });
    let (t_noop, _) = best(5, || a.call(layout(8, &small)));
    let (t_facts_mig, _) = best(5, || a.call(json!({"op": "facts"})));
    let rss = a.peak_rss_kib();
    drop(a);

    let bin = std::fs::metadata(env!("CARGO_BIN_EXE_migfleet-agent"))
        .map(|m| m.len())
        .unwrap_or(0);
    let dist =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dist/migfleet-agent-x86_64-linux-gnu");
    let dist_size = std::fs::metadata(&dist).map(|m| m.len()).ok();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("### Agent on an 8-GPU simulated host (H100-80GB)\n");
    println!(
        "- start + `hello`: {:.1} ms (baseline: process start and one line each way)",
        ms(t_hello)
    );
    println!(
        "- start + `facts` (8 GPUs, MIG off): {:.1} ms ({:.1}× the baseline)",
        ms(t_facts),
        t_facts.as_secs_f64() / t_hello.as_secs_f64()
    );
    println!(
        "- full re-partition of all 8 GPUs, 7×1g.10gb → 4g.40gb+3g.40gb → 7×1g.10gb: {:.1} ms for {ops} NVML create/destroy operations ({:.2} ms per operation)",
        ms(t_repartition),
        ms(t_repartition) / ops.max(1) as f64
    );
    println!(
        "- re-applying the current layout on 8 GPUs (no change): {:.1} ms",
        ms(t_noop)
    );
    println!(
        "- `facts` with 7 instances on each of the 8 GPUs (agent running): {:.1} ms",
        ms(t_facts_mig)
    );
    println!(
        "- agent peak RSS over the run: {:.1} MiB",
        rss as f64 / 1024.0
    );
    println!(
        "- binary: {:.2} MiB (release profile, not stripped)",
        bin as f64 / 1048576.0
    );
    if let Some(s) = dist_size {
        println!(
            "- portable binary (`scripts/build-agent.sh`, stripped, glibc 2.17): {:.2} MiB",
            s as f64 / 1048576.0
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}
