//! The agent binary driven over stdin/stdout against the NVML simulator, loaded through the
//! same `dlopen` path as the real driver, for every catalog model.

use migfleet_mig::catalog::models;
use migfleet_mig::geometry::{ProfileSet, maximal_layouts};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// Where cargo put this test's binaries (`target/<profile>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Builds the simulator (library and CLI) once; cargo does not build another package's
/// cdylib for this package's tests.
fn sim() -> &'static (PathBuf, PathBuf) {
    static CELL: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = profile_dir();
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-q", "-p", "migfleet-nvml-sim"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building migfleet-nvml-sim failed");
        let lib = dir.join("libnvidia_ml_sim.so");
        let cli = dir.join("nvml-sim");
        assert!(lib.exists(), "{} missing after build", lib.display());
        assert!(cli.exists(), "{} missing after build", cli.display());
        (lib, cli)
    })
}

struct Host {
    dir: tempdir::Dir,
    state: PathBuf,
}

mod tempdir {
    use std::path::PathBuf;
    pub struct Dir(pub PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let n = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let p = std::env::temp_dir().join(format!("mf-agent-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).expect("temp dir");
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Host {
    fn new(tag: &str, gpus: &[(&str, u32)]) -> Host {
        Host::init(tag, gpus, None)
    }

    /// A host whose driver reports `driver`.
    fn with_driver(tag: &str, gpus: &[(&str, u32)], driver: &str) -> Host {
        Host::init(tag, gpus, Some(driver))
    }

    fn init(tag: &str, gpus: &[(&str, u32)], driver: Option<&str>) -> Host {
        let dir = tempdir::Dir::new(tag);
        let state = dir.0.join("sim.json");
        let mut args = vec![
            "init".to_string(),
            "--state".into(),
            state.display().to_string(),
        ];
        for (m, n) in gpus {
            args.extend([
                "--model".into(),
                m.to_string(),
                "--gpus".into(),
                n.to_string(),
            ]);
        }
        if let Some(d) = driver {
            args.extend(["--driver".into(), d.to_string()]);
        }
        let h = Host { dir, state };
        h.sim_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        h
    }

    fn sim_ok(&self, args: &[&str]) -> String {
        let out = Command::new(&sim().1)
            .args(args)
            .output()
            .expect("nvml-sim runs");
        assert!(
            out.status.success(),
            "nvml-sim {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn state(&self) -> &str {
        self.state.to_str().expect("utf-8 path")
    }

    /// NVML calls logged so far whose function name contains one of `names`.
    fn calls(&self, names: &[&str]) -> usize {
        let log = std::fs::read_to_string(format!("{}.calls", self.state())).unwrap_or_default();
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| {
                let f = v["fn"].as_str().unwrap_or_default();
                names.contains(&f)
            })
            .count()
    }

    fn mutations(&self) -> usize {
        self.calls(&[
            "nvmlDeviceCreateGpuInstanceWithPlacement",
            "nvmlDeviceCreateGpuInstance",
            "nvmlGpuInstanceCreateComputeInstance",
            "nvmlGpuInstanceDestroy",
            "nvmlComputeInstanceDestroy",
        ])
    }

    fn agent(&self) -> Agent {
        self.agent_with_stderr(Stdio::inherit())
    }

    fn agent_with_stderr(&self, stderr: Stdio) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_migfleet-agent"))
            .env("NVML_SIM_STATE", &self.state)
            .env("MIGFLEET_NVML_LIB", &sim().0)
            .env("MIGFLEET_STATE_DIR", self.dir.0.join("agent-state"))
            .env("MIGFLEET_BOOT_ID_FILE", format!("{}.boot_id", self.state()))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("agent starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = BufReader::new(child.stdout.take().expect("stdout"));
        Agent {
            child,
            stdin,
            stdout,
            next: 1,
        }
    }
}

struct Agent {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next: u64,
}

/// The events and the final line of one request.
struct Answer {
    events: Vec<Value>,
    last: Value,
}

impl Answer {
    fn ok(&self) -> &Value {
        assert!(
            self.last.get("ok").is_some(),
            "expected ok, got {}",
            self.last
        );
        &self.last["ok"]
    }
    fn err(&self) -> &Value {
        assert!(
            self.last.get("err").is_some(),
            "expected err, got {}",
            self.last
        );
        &self.last["err"]
    }
}

impl Agent {
    fn send_raw(&mut self, line: &str) -> Answer {
        self.send_bytes(line.as_bytes())
    }

    fn send_bytes(&mut self, line: &[u8]) -> Answer {
        let shown = String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
        self.stdin.write_all(line).expect("write");
        self.stdin.write_all(b"\n").expect("write");
        self.stdin.flush().expect("flush");
        let mut events = Vec::new();
        loop {
            let mut buf = String::new();
            let n = self.stdout.read_line(&mut buf).expect("read");
            assert!(n > 0, "agent closed stdout after {shown}");
            let v: Value = serde_json::from_str(&buf)
                .unwrap_or_else(|e| panic!("agent wrote non-JSON ({e}): {buf}"));
            if v.get("event").is_some() {
                events.push(v);
            } else {
                return Answer { events, last: v };
            }
        }
    }

    fn call(&mut self, mut req: Value) -> Answer {
        let id = self.next;
        self.next += 1;
        req["id"] = json!(id);
        let a = self.send_raw(&req.to_string());
        assert_eq!(
            a.last["id"],
            json!(id),
            "reply to another request: {}",
            a.last
        );
        a
    }

    fn facts(&mut self) -> Value {
        self.call(json!({"op": "facts"})).ok().clone()
    }

    fn layout(&mut self, gpu: usize) -> Vec<String> {
        let f = self.facts();
        let mut v: Vec<(u64, String)> = f["gpus"][gpu]["mig"]["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .map(|i| {
                (
                    i["start"].as_u64().unwrap_or(0),
                    format!("{}@{}", i["profile"].as_str().unwrap_or(""), i["start"]),
                )
            })
            .collect();
        v.sort();
        v.into_iter().map(|x| x.1).collect()
    }

    fn enable(&mut self, host: &Host, gpus: &[u32]) {
        let a = self.call(json!({"op": "set_mig_mode", "gpus": gpus, "enabled": true}));
        let needs_reset: Vec<u32> = a.ok()["gpus"]
            .as_array()
            .expect("gpus")
            .iter()
            .filter(|g| g["needs_reset"] == json!(true))
            .filter_map(|g| g["index"].as_u64().map(|i| i as u32))
            .collect();
        if !needs_reset.is_empty() {
            let r = self.call(json!({
                "op": "reset_gpus", "gpus": needs_reset,
                "command": [sim().1.display().to_string(), "reset", "--state", host.state(), "-i", "{bus_ids}"],
            }));
            for g in r.ok()["gpus"].as_array().expect("gpus") {
                assert_eq!(g["current"], json!(true), "{}", r.last);
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn apply_req(gpu: u32, instances: &[&str]) -> Value {
    let inst: Vec<Value> = instances.iter().map(|p| json!({"profile": p})).collect();
    json!({"op": "apply", "gpus": [{"index": gpu, "instances": inst}]})
}

#[test]
fn facts_recognise_every_model_and_agree_with_the_catalog() {
    let gpus: Vec<(&str, u32)> = models().iter().map(|m| (m.name, 1)).collect();
    let host = Host::new("facts", &gpus);
    let mut agent = host.agent();
    let hello = agent.call(json!({"op": "hello"}));
    assert_eq!(
        hello.ok()["protocol_version"],
        json!(migfleet_proto::PROTOCOL_VERSION)
    );
    let f = agent.facts();
    let list = f["gpus"].as_array().expect("gpus");
    assert_eq!(list.len(), models().len());
    for (g, m) in list.iter().zip(models()) {
        assert_eq!(g["model"], json!(m.name), "{g}");
        assert!(
            g["uuid"].as_str().is_some_and(|u| u.starts_with("GPU-")),
            "{g}"
        );
        assert_eq!(g["mig"]["current"], json!(false));
        let profiles = g["mig"]["profiles"].as_array().expect("profiles");
        assert_eq!(profiles.len(), m.profiles.len(), "{}: {g}", m.name);
    }
    // The simulator's tables are written independently of the catalog: any difference is
    // a bug in one of them (or a value the catalog marks as unknown).
    assert!(f.get("catalog").is_none(), "{}", f["catalog"]);
}

/// An older driver: the profiles it is too old for are refused with the version they
/// need, and where its table differs from the catalog the difference is reported once
/// for the model, naming both GPUs.
#[test]
fn an_older_driver_is_reported_once_per_model_and_refuses_newer_profiles() {
    let host = Host::with_driver("driver", &[("A100-40GB", 1), ("H100-80GB", 2)], "525.85.12");
    let mut agent = host.agent();
    let f = agent.facts();
    assert_eq!(f["driver_version"], json!("525.85.12"));
    let reports = f["catalog"].as_array().expect("catalog reports");
    // The simulator keeps the later drivers' 1g size (9984 MiB); the catalog knows R525
    // drivers gave 9856: one report for both H100s, none for the A100.
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["model"], json!("H100-80GB"));
    assert_eq!(reports[0]["gpus"], json!([1, 2]));
    let text = reports[0]["differences"].to_string();
    assert!(
        text.contains("1g.10gb: memory MiB is 9984 on the driver, 9856"),
        "{text}"
    );

    let host = Host::with_driver("old", &[("A100-40GB", 1)], "515.86.01");
    let mut agent = host.agent();
    agent.enable(&host, &[0]);
    let f = agent.facts();
    assert!(
        f.get("catalog").is_none(),
        "absent as expected: {}",
        f["catalog"]
    );
    let names: Vec<&str> = f["gpus"][0]["mig"]["profiles"]
        .as_array()
        .expect("profiles")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(!names.contains(&"1g.10gb"), "{names:?}");
    let e = agent.call(apply_req(0, &["1g.10gb"])).err().to_string();
    assert!(
        e.contains("needs driver R525 or later") && e.contains("515.86.01"),
        "{e}"
    );
    assert_eq!(host.mutations(), 0);
    agent.call(apply_req(0, &["1g.5gb", "1g.5gb+me"])).ok();
}

/// The RTX PRO 6000 places in thirds of a slice: instances land at the driver's starts
/// ({0,3,6,9} for 1g, {0,6} for 2g) with the driver's sizes, the graphics and no-media
/// kinds mix with plain ones, and a second change keeps what stays.
#[test]
fn rtx_pro_6000_places_in_its_own_units() {
    let host = Host::new("rtxpro", &[("RTX-PRO-6000-96GB", 1)]);
    let mut agent = host.agent();
    agent.enable(&host, &[0]);
    agent
        .call(apply_req(0, &["2g.48gb", "1g.24gb+gfx", "1g.24gb-me"]))
        .ok();
    let layout = agent.layout(0);
    assert_eq!(
        layout,
        ["2g.48gb@0", "1g.24gb+gfx@6", "1g.24gb-me@9"],
        "the 2g low, the 1g's packed away from it"
    );
    let f = agent.facts();
    let sizes: Vec<u64> = f["gpus"][0]["mig"]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["size"].as_u64())
        .collect();
    assert_eq!(sizes.iter().sum::<u64>(), 12, "{sizes:?}");
    let made = host.mutations();
    agent.call(apply_req(0, &["2g.48gb", "2g.48gb+gfx"])).ok();
    assert_eq!(agent.layout(0), ["2g.48gb@0", "2g.48gb+gfx@6"]);
    // Two 1g destroyed (with their CIs), one 2g created (with its CI): the 2g@0 stayed.
    assert_eq!(host.mutations() - made, 6);
    // One media claim per GPU: `+me.all` beside `+me` is refused before any change.
    let e = agent
        .call(apply_req(0, &["1g.24gb+me", "1g.24gb+me.all"]))
        .err()
        .to_string();
    assert!(e.contains("take the media engines"), "{e}");
}

/// Before R510 an A100 takes no 4g beside a 3g (MIG guide); the agent refuses the pair
/// before touching the GPU, and the same host takes 4g + 2g + 1g.
#[test]
fn a_4g_beside_a_3g_needs_r510() {
    let host = Host::with_driver("r505", &[("A100-40GB", 1)], "505.47.03");
    let mut agent = host.agent();
    agent.enable(&host, &[0]);
    let before = host.mutations();
    let e = agent
        .call(apply_req(0, &["4g.20gb", "3g.20gb"]))
        .err()
        .to_string();
    assert!(
        e.contains("4g.20gb + 3g.20gb on one GPU need driver R510 or later")
            && e.contains("505.47.03"),
        "{e}"
    );
    assert_eq!(host.mutations(), before);
    agent
        .call(apply_req(0, &["4g.20gb", "2g.10gb", "1g.5gb"]))
        .ok();
}

#[test]
fn enabling_mig_needs_a_reset_on_ampere_only() {
    let host = Host::new("mode", &[("A100-40GB", 1), ("H100-80GB", 1)]);
    let mut agent = host.agent();
    let a = agent.call(json!({"op": "set_mig_mode", "enabled": true}));
    let gpus = a.ok()["gpus"].as_array().expect("gpus").clone();
    assert_eq!(
        gpus[0]["needs_reset"],
        json!(true),
        "Ampere must stay pending: {}",
        a.last
    );
    assert_eq!(gpus[0]["current"], json!(false));
    assert_eq!(gpus[0]["pending"], json!(true));
    assert_eq!(
        gpus[1]["needs_reset"],
        json!(false),
        "Hopper switches at once: {}",
        a.last
    );
    assert_eq!(gpus[1]["current"], json!(true));
    agent.enable(&host, &[0]);
    let f = agent.facts();
    assert_eq!(f["gpus"][0]["mig"]["current"], json!(true));
}

#[test]
fn applying_layouts_uses_the_fewest_nvml_calls_on_every_model() {
    for m in models() {
        let host = Host::new("apply", &[(m.name, 1)]);
        let mut agent = host.agent();
        agent.enable(&host, &[0]);
        let maximal = maximal_layouts(m, ProfileSet::Plain);
        let first: Vec<&str> = maximal[0].iter().map(|(p, _)| m.profile(*p).name).collect();
        let last: Vec<&str> = maximal[maximal.len() - 1]
            .iter()
            .map(|(p, _)| m.profile(*p).name)
            .collect();

        let before = host.mutations();
        let a = agent.call(apply_req(0, &first));
        let ops = a.ok()["gpus"][0]["ops"].as_array().expect("ops").len();
        assert_eq!(
            ops,
            2 * first.len(),
            "{}: one GI and one CI per instance",
            m.name
        );
        assert_eq!(
            host.mutations() - before,
            ops,
            "{}: NVML calls = planned ops",
            m.name
        );
        assert_eq!(a.events.len(), ops, "{}: one event per operation", m.name);

        let before = host.mutations();
        let a = agent.call(apply_req(0, &last));
        let ops = a.ok()["gpus"][0]["ops"].as_array().expect("ops").len();
        assert_eq!(host.mutations() - before, ops, "{}", m.name);
        let mut want: Vec<String> = maximal[maximal.len() - 1]
            .iter()
            .map(|(p, s)| format!("{}@{s}", m.profile(*p).name))
            .collect();
        want.sort();
        let mut got = agent.layout(0);
        got.sort();
        assert_eq!(got.len(), want.len(), "{}: {got:?} vs {want:?}", m.name);

        // Applying what is there changes nothing and calls nothing that mutates.
        let before = host.mutations();
        let a = agent.call(apply_req(0, &last));
        assert_eq!(a.ok()["gpus"][0]["changed"], json!(false));
        assert_eq!(
            host.mutations(),
            before,
            "{}: re-apply must not touch NVML",
            m.name
        );
    }
}

/// Puts a process with `pid` on the first instance of `gpu`; returns that GI's id.
fn make_busy(host: &Host, agent: &mut Agent, gpu: usize, pid: &str) -> Value {
    let f = agent.facts();
    let gi = &f["gpus"][gpu]["mig"]["instances"][0];
    let (gi_id, ci_id) = (gi["gi_id"].to_string(), gi["cis"][0]["ci_id"].to_string());
    host.sim_ok(&[
        "process",
        "add",
        "--state",
        host.state(),
        "--gpu",
        &gpu.to_string(),
        "--gi",
        &gi_id,
        "--ci",
        &ci_id,
        "--pid",
        pid,
        "--mem",
        "1000",
    ]);
    gi["gi_id"].clone()
}

#[test]
fn instances_in_use_are_never_destroyed_and_block_only_their_gpu() {
    let host = Host::new("inuse", &[("H100-80GB", 2)]);
    let mut agent = host.agent();
    agent.enable(&host, &[0, 1]);
    for gpu in [0, 1] {
        agent.call(apply_req(gpu, &["3g.40gb", "3g.40gb"])).ok();
    }
    let gi_id = make_busy(&host, &mut agent, 0, "4242");
    let both = |on_busy: &str| {
        let inst = json!([{"profile": "7g.80gb"}]);
        json!({"op": "apply", "on_busy": on_busy, "gpus": [
            {"index": 0, "instances": inst}, {"index": 1, "instances": inst}]})
    };

    // fail_host: the busy GPU 0 keeps GPU 1 from changing too, and the error names PIDs.
    let before = host.mutations();
    let a = agent.call(both("fail_host"));
    let err = a.err();
    assert_eq!(err["kind"], json!("in_use"), "{}", a.last);
    let msg = err["message"].as_str().unwrap_or_default();
    assert!(msg.contains("4242") && msg.contains("GPU 0:"), "{msg}");
    assert!(msg.contains("nothing was changed"), "{msg}");
    assert_eq!(host.mutations(), before, "nothing may change");

    // skip_gpu (the default): GPU 1 is repartitioned, GPU 0 is left alone and says why.
    let a = agent.call(both("skip_gpu"));
    let gpus = a.ok()["gpus"].as_array().expect("gpus").clone();
    assert_eq!(gpus[0]["changed"], json!(false), "{}", a.last);
    let blocked = &gpus[0]["blocked"];
    assert_eq!(blocked["instances"][0]["pids"], json!([4242]), "{}", a.last);
    assert_eq!(blocked["instances"][0]["label"], json!("3g.40gb@0"));
    assert!(
        blocked["message"]
            .as_str()
            .unwrap_or_default()
            .contains("4242")
    );
    assert_eq!(gpus[1]["changed"], json!(true));
    assert_eq!(gpus[1]["before"][0]["label"], json!("3g.40gb@0"));
    assert_eq!(gpus[1]["after"][0]["label"], json!("7g.80gb@0"));
    assert_eq!(agent.layout(1), vec!["7g.80gb@0"]);
    assert_eq!(agent.layout(0), vec!["3g.40gb@0", "3g.40gb@4"]);

    // A target that keeps the busy instance goes around it.
    let a = agent.call(apply_req(0, &["3g.40gb", "1g.10gb", "1g.10gb", "1g.10gb"]));
    assert_eq!(a.ok()["gpus"][0]["blocked"], Value::Null, "{}", a.last);
    let f = agent.facts();
    let busy = f["gpus"][0]["mig"]["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["gi_id"] == gi_id)
        .expect("busy GI still there");
    assert_eq!(busy["cis"][0]["processes"][0]["pid"], json!(4242));

    // Turning MIG off: the busy GPU is skipped (or, with fail_host, nothing changes).
    let a = agent.call(json!({"op": "set_mig_mode", "enabled": false, "on_busy": "fail_host"}));
    assert_eq!(a.err()["kind"], json!("in_use"), "{}", a.last);
    assert_eq!(agent.facts()["gpus"][1]["mig"]["current"], json!(true));
    let a = agent.call(json!({"op": "set_mig_mode", "enabled": false}));
    let gpus = a.ok()["gpus"].as_array().expect("gpus").clone();
    assert!(
        gpus[0]["blocked"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("4242")
    );
    assert_eq!(gpus[0]["current"], json!(true));
    assert_eq!(gpus[1]["current"], json!(false));
    assert_eq!(gpus[1]["destroyed"], json!(1), "{}", a.last);
}

#[test]
fn injected_nvml_failures_are_reported_and_reapply_converges() {
    let host = Host::new("inject", &[("A100-80GB", 1)]);
    let mut agent = host.agent();
    agent.enable(&host, &[0]);
    let target = ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"];
    for (function, code) in [
        ("nvmlDeviceCreateGpuInstanceWithPlacement", "23"),
        ("nvmlGpuInstanceCreateComputeInstance", "23"),
        ("nvmlGpuInstanceDestroy", "19"),
    ] {
        agent.call(apply_req(0, &["7g.80gb"])).ok();
        host.sim_ok(&[
            "inject",
            "--state",
            host.state(),
            "--function",
            function,
            "--code",
            code,
        ]);
        let a = agent.call(apply_req(0, &target));
        let err = a.err();
        let msg = err["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("failed") && msg.contains(&format!("NVML error {code}")),
            "{function}: {msg}"
        );
        assert!(msg.contains("step "), "{msg}");
        // Whatever was done stays consistent, and applying again finishes the job.
        let a = agent.call(apply_req(0, &target));
        a.ok();
        let mut got = agent.layout(0);
        got.sort();
        assert_eq!(got.len(), 4, "{function}: {got:?}");
        let again = agent.call(apply_req(0, &target));
        assert_eq!(again.ok()["gpus"][0]["changed"], json!(false));
    }
}

#[test]
fn dry_run_plans_without_touching_the_gpu() {
    let host = Host::new("dry", &[("H200-141GB", 1)]);
    let mut agent = host.agent();
    agent.enable(&host, &[0]);
    let before = host.mutations();
    let mut req = apply_req(0, &["4g.71gb", "3g.71gb"]);
    req["dry_run"] = json!(true);
    let a = agent.call(req);
    assert_eq!(a.ok()["gpus"][0]["ops"].as_array().map(Vec::len), Some(4));
    assert_eq!(host.mutations(), before);
    assert!(agent.layout(0).is_empty());

    // From an assumed state (what earlier check-mode tasks would leave): keeping the
    // assumed 4g costs only the 3g's two operations, and the assumed busy 4g blocks a
    // target without it.
    let assume =
        json!([{"index": 0, "instances": [{"profile": "4g.71gb", "start": 0, "cis": [4]}]}]);
    let mut req = apply_req(0, &["4g.71gb", "3g.71gb"]);
    req["dry_run"] = json!(true);
    req["assume"] = assume.clone();
    let a = agent.call(req);
    let g = &a.ok()["gpus"][0];
    assert_eq!(g["ops"].as_array().map(Vec::len), Some(2), "{}", a.last);
    assert_eq!(g["before"][0]["label"], json!("4g.71gb@0"));
    assert_eq!(g["after"][1]["label"], json!("3g.71gb@4"), "{}", a.last);
    let mut busy = assume.clone();
    busy[0]["instances"][0]["busy"] = json!(true);
    let mut req = apply_req(0, &["7g.141gb"]);
    req["dry_run"] = json!(true);
    req["assume"] = busy;
    let a = agent.call(req);
    assert!(a.ok()["gpus"][0]["blocked"].is_object(), "{}", a.last);
    // `assume` is only for dry runs.
    let mut req = apply_req(0, &["7g.141gb"]);
    req["assume"] = assume;
    let a = agent.call(req);
    assert_eq!(a.err()["kind"], json!("bad_request"), "{}", a.last);
    assert_eq!(host.mutations(), before);
}

#[test]
fn protocol_garbage_gets_errors_and_the_agent_carries_on() {
    let host = Host::new("garbage", &[("A30-24GB", 1)]);
    let mut agent = host.agent();
    let a = agent.send_raw("{this is not json");
    assert_eq!(a.last["id"], Value::Null);
    assert_eq!(a.err()["kind"], json!("bad_request"));
    let a = agent.send_raw(r#"{"id": 9, "op": "format_disk"}"#);
    assert_eq!(a.last["id"], json!(9));
    assert!(
        a.err()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown op `format_disk`")
    );
    let huge = format!(
        r#"{{"id": 10, "op": "hello", "pad": "{}"}}"#,
        "x".repeat(2 << 20)
    );
    let a = agent.send_raw(&huge);
    assert!(
        a.err()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("longer than"),
        "{}",
        a.last
    );
    let a = agent.call(json!({"op": "apply", "gpus": [{"index": 7, "instances": []}]}));
    assert!(
        a.err()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("GPU 7 does not exist"),
        "{}",
        a.last
    );
    let a = agent.call(apply_req(0, &["1g.10gb"]));
    assert!(
        a.err()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("MIG mode is off"),
        "{}",
        a.last
    );
    agent.call(json!({"op": "hello"})).ok();
}

#[test]
fn a_missing_nvml_library_is_an_error_not_a_crash() {
    let host = Host::new("nolib", &[("A30-24GB", 1)]);
    let mut agent = host.agent();
    let a = agent.call(json!({"op": "facts", "nvml_lib": "/nonexistent/libnvidia-ml.so.1"}));
    assert_eq!(a.err()["kind"], json!("nvml"));
    assert!(
        a.err()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/nonexistent/libnvidia-ml.so.1")
    );
    agent.facts();
}

/// A stand-in for `systemctl` (no systemd runs in test containers): a shell script that
/// keeps the set of active units in a file and logs every call.
fn fake_systemctl(dir: &Path) -> PathBuf {
    let script = dir.join("systemctl");
    let body = format!(
        "#!/bin/sh\nD='{d}'\necho \"$*\" >> \"$D/systemctl.log\"\ncase \"$1\" in\n  is-active) grep -qx \"$3\" \"$D/active\" ;;\n  stop) grep -vx \"$2\" \"$D/active\" > \"$D/active.new\"; mv \"$D/active.new\" \"$D/active\" ;;\n  start) echo \"$2\" >> \"$D/active\" ;;\n  *) exit 1 ;;\nesac\n",
        d = dir.display()
    );
    std::fs::write(&script, body).expect("write script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.join("active"),
        "dcgm.service\nnvidia-persistenced.service\n",
    )
    .expect("active");
    script
}

#[test]
fn drain_stops_active_units_signals_gpu_processes_and_restore_starts_them_again() {
    let host = Host::new("drain", &[("H100-80GB", 1)]);
    let systemctl = fake_systemctl(&host.dir.0);
    let mut agent = host.agent();
    agent.enable(&host, &[0]);
    agent.call(apply_req(0, &["7g.80gb"])).ok();
    let f = agent.facts();
    let gi = f["gpus"][0]["mig"]["instances"][0]["gi_id"].to_string();
    // A real process stands for the CUDA workload, so that the signal really ends it.
    let mut workload = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("sleep runs");
    let pid = workload.id().to_string();
    host.sim_ok(&[
        "process",
        "add",
        "--state",
        host.state(),
        "--gpu",
        "0",
        "--gi",
        &gi,
        "--ci",
        "0",
        "--pid",
        &pid,
        "--live",
    ]);

    let a = agent.call(json!({
        "op": "drain", "gpus": [0], "timeout_s": 20, "signal": "TERM",
        "units": ["dcgm.service", "kubelet.service", "nvidia-persistenced.service"],
        "systemctl": [systemctl.display().to_string()],
    }));
    let ok = a.ok();
    assert_eq!(
        ok["stopped"],
        json!(["dcgm.service", "nvidia-persistenced.service"]),
        "{}",
        a.last
    );
    assert_eq!(ok["signalled"], json!([workload.id()]));
    let status = workload.wait().expect("reaped");
    assert!(
        !status.success(),
        "the workload was not signalled: {status}"
    );
    let active = std::fs::read_to_string(host.dir.0.join("active")).unwrap_or_default();
    assert!(active.trim().is_empty(), "units still active: {active}");

    // A later agent process restores what the first one stopped.
    drop(agent);
    let mut agent = host.agent();
    let a = agent.call(json!({"op": "restore", "systemctl": [systemctl.display().to_string()]}));
    assert_eq!(
        a.ok()["started"],
        json!(["nvidia-persistenced.service", "dcgm.service"])
    );
    let active = std::fs::read_to_string(host.dir.0.join("active")).unwrap_or_default();
    assert!(active.contains("dcgm.service") && active.contains("nvidia-persistenced.service"));
    let a = agent.call(json!({"op": "restore", "systemctl": [systemctl.display().to_string()]}));
    assert_eq!(
        a.ok()["started"],
        json!([]),
        "restore twice starts nothing twice"
    );
}

#[test]
fn drain_times_out_naming_the_processes_left() {
    let host = Host::new("drain-timeout", &[("A30-24GB", 1)]);
    host.sim_ok(&[
        "process",
        "add",
        "--state",
        host.state(),
        "--gpu",
        "0",
        "--pid",
        "4242",
        "--mem",
        "512",
    ]);
    let mut agent = host.agent();
    let a = agent.call(json!({"op": "drain", "gpus": [0], "timeout_s": 0}));
    assert_eq!(a.err()["kind"], json!("timeout"));
    assert!(
        a.err()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("GPU 0: PID 4242"),
        "{}",
        a.last
    );
    let a = agent.call(json!({"op": "drain", "units": ["--now"], "gpus": [0]}));
    assert_eq!(
        a.err()["kind"],
        json!("bad_request"),
        "an option is not a unit: {}",
        a.last
    );
}

#[test]
fn reboot_replies_first_then_reboots() {
    let host = Host::new("reboot", &[("H100-80GB", 1)]);
    let mut agent = host.agent();
    agent.enable(&host, &[0]);
    let hello = agent.call(json!({"op": "hello"}));
    let before = hello.ok()["boot_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(&host.state).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(
        state["boot_id"],
        json!(before),
        "hello reports the simulated host's boot id"
    );
    // A second agent watches the boot id the way the controller will.
    let mut probe = host.agent();
    let mut read_boot = move || -> String {
        probe.call(json!({"op": "hello"})).ok()["boot_id"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let a = agent.call(json!({
        "op": "reboot",
        "command": [sim().1.display().to_string(), "reboot", "--state", host.state()],
    }));
    a.ok();
    // The reboot runs detached: wait for it, bounded.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while read_boot() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the simulated host never rebooted"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Hopper loses MIG mode on reboot.
    let f = agent.facts();
    assert_eq!(f["gpus"][0]["mig"]["current"], json!(false));
}

#[test]
fn a_library_without_nvml_symbols_is_named_not_a_panic() {
    // libm stands in for a driver that lacks the functions: loading works, lookup fails.
    let host = Host::new("nosym", &[("A30-24GB", 1)]);
    let mut agent = host.agent();
    let a = agent.call(json!({"op": "facts", "nvml_lib": "libm.so.6"}));
    assert_eq!(a.err()["kind"], json!("nvml"));
    assert!(
        a.err()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nvmlInit_v2"),
        "{}",
        a.last
    );
    agent.call(json!({"op": "hello"})).ok();
}

#[test]
fn a_corrupt_simulator_state_is_reported_as_such() {
    let host = Host::new("corrupt", &[("H100-80GB", 1)]);
    let log = host.dir.0.join("agent.stderr");
    let mut agent = host.agent_with_stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    agent.facts();
    std::fs::write(&host.state, "{ not json").unwrap();
    let a = agent.call(json!({"op": "facts"}));
    assert_eq!(a.err()["kind"], json!("nvml"), "{}", a.last);
    // The simulator says what is wrong with which file (the controller shows the agent's
    // stderr with the error).
    drop(agent);
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("invalid state") && said.contains(host.state()),
        "{said}"
    );
}

#[test]
fn every_op_refuses_unknown_fields() {
    let host = Host::new("fields", &[("A30-24GB", 1)]);
    let mut agent = host.agent();
    for req in [
        json!({"op": "hello", "verbose": true}),
        json!({"op": "facts", "gpus": [0]}),
        json!({"op": "restore", "units": ["x"]}),
    ] {
        let a = agent.call(req.clone());
        assert_eq!(a.err()["kind"], json!("bad_request"), "{req}: {}", a.last);
        assert!(
            a.err()["message"]
                .as_str()
                .unwrap_or_default()
                .contains("unknown field"),
            "{}",
            a.last
        );
    }
}

/// Probes: hostile request lines, each refused with a message that says why, within
/// [`PROBE_BOUND`], leaving the agent answering and the GPUs untouched. Table-driven: a
/// new way in is one more row.
const PROBE_BOUND: Duration = Duration::from_secs(10);

#[test]
fn hostile_requests_are_refused_within_their_bound() {
    let deep = format!(
        r#"{{"id":1,"op":"facts","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let many = format!(
        r#"{{"id":1,"op":"apply","dry_run":true,"gpus":[{{"index":0,"instances":[{}]}}]}}"#,
        vec![r#"{"profile":"1g.10gb"}"#; 40_000].join(",")
    );
    let long = format!(r#"{{"id":1,"op":"hello","x":"{}"}}"#, "x".repeat(2 << 20));
    let probes: Vec<(Vec<u8>, &str)> = vec![
        (br#"{"id": 1, "op": "hello""#.to_vec(), "not JSON: EOF"),
        (deep.into_bytes(), "recursion limit exceeded"),
        (long.into_bytes(), "longer than"),
        (b"{\"id\": 1, \"op\": \"he\xff\xfello\"}".to_vec(), "not UTF-8"),
        (br#"{"id": 1, "op": "hel\u0000lo"}"#.to_vec(), "unknown op"),
        (br#"{"id": 1, "op": 42}"#.to_vec(), "needs an `op`"),
        (b"null".to_vec(), "a request is a JSON object"),
        (br#"[{"id": 1, "op": "hello"}]"#.to_vec(), "a request is a JSON object"),
        (br#"{"id": 18446744073709551616, "op": "hello"}"#.to_vec(), "non-negative integer `id`"),
        (br#"{"id": -1, "op": "hello"}"#.to_vec(), "non-negative integer `id`"),
        (br#"{"id": 1, "op": "hello", "op": "apply"}"#.to_vec(), "key `op` appears twice"),
        (br#"{"id": 1, "op": "facts", "nvml_lib": 5}"#.to_vec(), "`nvml_lib` must be a string"),
        (
            br#"{"id": 1, "op": "apply", "gpus": [{"index": 4294967296, "instances": []}]}"#.to_vec(),
            "expected u32",
        ),
        (br#"{"id": 1, "op": "apply", "gpus": [{"index": -1, "instances": []}]}"#.to_vec(), "expected u32"),
        (
            br#"{"id": 1, "op": "apply", "gpus": [{"index": 0, "instances": [{"profile": "1g.10gb", "start": 4294967295}]}]}"#.to_vec(),
            "expected u8",
        ),
        (
            br#"{"id": 1, "op": "apply", "gpus": [{"index": 0, "instances": [{"profile": "../../etc/passwd"}]}]}"#.to_vec(),
            "MIG mode is off",
        ),
        (br#"{"id": 1, "op": "set_mig_mode", "enabled": true, "gpus": [0, 0]}"#.to_vec(), "GPU 0 is listed twice"),
        (br#"{"id": 1, "op": "set_mig_mode", "enabled": true, "gpus": [9]}"#.to_vec(), "GPU 9 does not exist"),
        (br#"{"id": 1, "op": "drain", "timeout_s": 1e308}"#.to_vec(), "expected u64"),
        (br#"{"id": 1, "op": "reset_gpus", "gpus": [0, 0]}"#.to_vec(), "GPU 0 is listed twice"),
        (many.into_bytes(), "exceed its maximum of 7"),
    ];
    let host = Host::new("probes", &[("H100-80GB", 1)]);
    let before = host.mutations();
    let (tx, rx) = std::sync::mpsc::channel();
    let agent = host.agent();
    std::thread::spawn(move || {
        let mut agent = agent;
        for (line, says) in probes {
            let started = std::time::Instant::now();
            let a = agent.send_bytes(&line);
            let shown = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
            let _ = tx.send((shown, says, a.last, started.elapsed()));
            let _ = agent.call(json!({"op": "hello"})).ok();
        }
        drop(agent);
    });
    let mut failures = Vec::new();
    loop {
        match rx.recv_timeout(PROBE_BOUND) {
            Ok((line, says, reply, took)) => {
                let message = reply["err"]["message"].as_str().unwrap_or_default();
                if !message.contains(says) || took > PROBE_BOUND {
                    failures.push(format!(
                        "{line}: want `{says}` within {PROBE_BOUND:?}, got {reply} after {took:?}"
                    ));
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("a probe ran past {PROBE_BOUND:?}; so far: {failures:?}")
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        host.mutations(),
        before,
        "a refused request changed the GPUs"
    );
}
