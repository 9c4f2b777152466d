//! Fan-out benchmark: `migfleet facts` and a no-op `migfleet run` over N sshd test hosts
//! on 127.0.x.y (8 simulated H100s each), against N parallel OpenSSH clients in one run:
//! (a) `ssh host true`, the floor of any SSH tool, and (b) `ssh host <cached agent>` doing
//! the same `hello` + `facts` migfleet asks for. Runs alternate (a, b, facts, run, a, b,
//! ...) so drift hits every row alike; medians and ratios to (a) are printed as Markdown
//! for `docs/benchmarks.md`.
//!
//!   cargo bench --bench fleet                              # 50 hosts, 5 rounds
//!   MIGFLEET_BENCH_HOSTS=1000 MIGFLEET_BENCH_ROUNDS=3 cargo bench --bench fleet
//!   MIGFLEET_BENCH_HOSTS=1000 MIGFLEET_BENCH_FORKS=64 cargo bench --bench fleet
//!
//! `MIGFLEET_BENCH_FORKS` (default: all hosts) is how many hosts each side works on at
//! once: migfleet's `-f`, and how many OpenSSH clients run at a time.
//! `MIGFLEET_BENCH_USER=root` logs in as root (see `bench_user`).
//! `MIGFLEET_BENCH_BASELINE=DIR` adds a row for another build's `facts` (DIR is its cargo
//! target directory, with `release/migfleet` and `dist/migfleet-agent`), e.g. an older
//! commit, measured in the same rounds.
//! `MIGFLEET_BENCH_SSH_KEX=curve25519-sha256` gives the OpenSSH clients the key exchange
//! migfleet's russh negotiates with an OpenSSH 9.2 server (OpenSSH's own default there is
//! the slower post-quantum hybrid sntrup761x25519).
//!
//! Wall time, the controller side's CPU (user+system of the migfleet process, or of all
//! the ssh clients) and migfleet's peak RSS (with GNU time, `apt-get install time`, when
//! present). The sshd and agent side runs on the same machine and is in the wall time
//! only. Every row verifies host keys against the same known_hosts with the same key.

// A benchmark harness, like a test: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used)]

#[path = "common/measure.rs"]
mod measure;
#[path = "../tests/it/support/mod.rs"]
mod support;

use measure::{Sample, children_cpu, env_usize, median, read_rss, timed};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::sim::{SimHost, write_inventory_as};
use support::testhost::{TestFleet, client_key};

/// The account the hosts are logged in to. On these machines root's `.bashrc` runs `pyenv
/// init`, which takes a global lock on every SSH command and so serialises concurrent
/// logins: it would measure pyenv, for both columns. When run as root the bench makes a
/// system user whose login shell is `/bin/sh` (as a fleet's service account would be);
/// otherwise it logs in as root and says so.
fn bench_user() -> String {
    const USER: &str = "migfleet-bench";
    if let Ok(u) = std::env::var("MIGFLEET_BENCH_USER") {
        return u;
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("note: not root; logging in as root with its own shell startup files");
        return "root".into();
    }
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        let home = std::env::temp_dir().join(USER);
        std::fs::create_dir_all(&home).unwrap();
        let ok = Command::new("useradd")
            // `*`: no password, but not a locked account (sshd refuses those).
            .args([
                "--system",
                "--password",
                "*",
                "--shell",
                "/bin/sh",
                "--home-dir",
            ])
            .arg(&home)
            .arg(USER)
            .status()
            .unwrap();
        assert!(ok.success(), "useradd {USER} failed");
        chown(&home, USER);
    }
    USER.into()
}

fn chown(path: &Path, user: &str) {
    let ok = Command::new("chown")
        .arg("-R")
        .arg(user)
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success(), "chown {}", path.display());
}

fn main() {
    let hosts = env_usize("MIGFLEET_BENCH_HOSTS", 50);
    let rounds = env_usize("MIGFLEET_BENCH_ROUNDS", 5);
    let parallel = env_usize("MIGFLEET_BENCH_FORKS", hosts).clamp(1, hosts.max(1));
    let bin = support::built_bins().clone();

    // The agent a fleet gets: the portable build's profile (stripped, small), as
    // scripts/build-agent.sh makes it, without the glibc-2.17 toolchain.
    let ok = Command::new(env!("CARGO"))
        .args(["build", "-q", "--profile", "dist", "-p", "migfleet-agent"])
        .status()
        .unwrap();
    assert!(ok.success(), "building the dist agent failed");
    let target = bin.parent().unwrap();
    let started = Instant::now();
    let fleet = TestFleet::start(hosts);
    eprintln!("{hosts} sshd hosts up in {:.1?}", started.elapsed());
    let agents = fleet.dir().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let agent = agents.join(format!(
        "migfleet-agent-{}-linux-gnu",
        std::env::consts::ARCH
    ));
    std::fs::copy(target.join("dist/migfleet-agent"), &agent).unwrap();

    let kh = fleet.known_hosts_all();
    let key = client_key();
    let sims: Vec<SimHost> = fleet
        .hosts
        .iter()
        .map(|h| SimHost::ssh(h, &[("H100-80GB", 8)]))
        .collect();
    let user = bench_user();
    let inv = write_inventory_as(&fleet.dir().join("inventory.yml"), &sims, &user);
    for h in &fleet.hosts {
        chown(h.dir(), &user);
    }
    let noop = fleet.dir().join("noop.lua");
    std::fs::write(
        &noop,
        "return { name = \"no-op\", hosts = \"all\", tasks = { { name = \"MIG is off\", mig.assert{ enabled = false } } } }\n",
    )
    .unwrap();
    let rss_file = fleet.dir().join("rss");
    let forks = parallel.to_string();

    // Another build to compare with, with its own agent.
    let baseline = std::env::var_os("MIGFLEET_BENCH_BASELINE").map(PathBuf::from);
    let baseline_agents = fleet.dir().join("baseline-agents");
    if let Some(dir) = &baseline {
        std::fs::create_dir_all(&baseline_agents).unwrap();
        std::fs::copy(
            dir.join("dist/migfleet-agent"),
            baseline_agents.join(format!(
                "migfleet-agent-{}-linux-gnu",
                std::env::consts::ARCH
            )),
        )
        .unwrap();
    }
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_migfleet"));
    let run_build = |program: &Path, agent_dir: &Path, args: &[&str]| -> Sample {
        let cpu = children_cpu();
        let t = Instant::now();
        let out = timed(program, &rss_file)
            .args(args)
            .arg("-i")
            .arg(&inv)
            .arg("--known-hosts")
            .arg(&kh)
            .arg("--agent-dir")
            .arg(agent_dir)
            // All hosts at once, as the OpenSSH rows; the handshakes of a thousand hosts
            // sharing this machine's cores can take longer than the default 10 s, and the
            // OpenSSH rows wait without a limit too.
            .args(["-f", &forks, "-T", "120", "--output", "json"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let wall = t.elapsed();
        assert!(
            out.status.success(),
            "migfleet {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Sample {
            wall,
            cpu: children_cpu() - cpu,
            rss_kib: read_rss(&rss_file),
        }
    };
    let migfleet = |args: &[&str]| run_build(&ours, &agents, args);
    let old = |args: &[&str]| {
        let dir = baseline.as_ref().unwrap();
        run_build(&dir.join("release/migfleet"), &baseline_agents, args)
    };
    // The first run uploads the agent everywhere; measured runs find it cached.
    migfleet(&["facts"]);
    if baseline.is_some() {
        old(&["facts"]);
    }
    let remote_agent: Vec<String> = fleet
        .hosts
        .iter()
        .map(|h| {
            let dir = h.remote_dir();
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("migfleet-agent-"))
                        && std::fs::read(p).ok() == std::fs::read(&agent).ok()
                })
                .unwrap()
                .display()
                .to_string()
        })
        .collect();

    let ssh_all = |agent: bool| -> Sample {
        let cpu = children_cpu();
        let t = Instant::now();
        // At most `parallel` clients at a time: the oldest is waited for first.
        let mut running: std::collections::VecDeque<std::process::Child> =
            std::collections::VecDeque::new();
        for ((h, sim), remote) in fleet.hosts.iter().zip(&sims).zip(&remote_agent) {
            if running.len() >= parallel
                && let Some(mut c) = running.pop_front()
            {
                assert!(c.wait().unwrap().success(), "ssh failed");
            }
            running.push_back({
                let mut c = Command::new("ssh");
                c.args([
                    "-q",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=yes",
                ])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", kh.display()))
                .arg("-i")
                .arg(&key)
                .args(["-p", &h.port.to_string()])
                .arg(format!("root@{}", h.address));
                if agent {
                    c.arg(format!(
                        "env NVML_SIM_STATE={} MIGFLEET_NVML_LIB={} {remote}",
                        sim.state().display(),
                        bin.join("libnvidia_ml_sim.so").display()
                    ))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null());
                } else {
                    c.arg("true").stdin(Stdio::null());
                }
                let mut child = c.spawn().unwrap();
                if let Some(mut stdin) = child.stdin.take() {
                    stdin
                        .write_all(b"{\"id\":1,\"op\":\"hello\"}\n{\"id\":2,\"op\":\"facts\"}\n")
                        .unwrap();
                }
                child
            });
        }
        for mut c in running {
            assert!(c.wait().unwrap().success(), "ssh failed");
        }
        Sample {
            wall: t.elapsed(),
            cpu: children_cpu() - cpu,
            rss_kib: None,
        }
    };

    if let Ok(wait) = std::env::var("MIGFLEET_BENCH_HOLD") {
        // Keep the fleet up to look at it by hand: `migfleet facts -i <inventory> ...`.
        eprintln!(
            "holding {wait} s: -i {} --known-hosts {} --agent-dir {}",
            inv.display(),
            kh.display(),
            agents.display()
        );
        std::thread::sleep(Duration::from_secs(wait.parse().unwrap_or(600)));
    }
    let (mut a, mut b, mut facts, mut run) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut base = Vec::new();
    for round in 0..rounds {
        a.push(ssh_all(false));
        b.push(ssh_all(true));
        facts.push(migfleet(&["facts"]));
        run.push(migfleet(&["run", noop.to_str().unwrap()]));
        if baseline.is_some() {
            base.push(old(&["facts"]));
        }
        eprintln!(
            "round {}/{rounds}: ssh true {:.2?}, ssh agent {:.2?}, facts {:.2?}, run {:.2?}",
            round + 1,
            a[round].wall,
            b[round].wall,
            facts[round].wall,
            run[round].wall
        );
    }
    // Pairwise ratios (each round's migfleet against the same round's ssh true).
    let ratio = |xs: &[Sample]| {
        let mut r: Vec<f64> = xs
            .iter()
            .zip(&a)
            .map(|(x, base)| x.wall.as_secs_f64() / base.wall.as_secs_f64())
            .collect();
        r.sort_by(f64::total_cmp);
        (r[0], r[r.len() / 2], r[r.len() - 1])
    };
    let (ra, rb, rf, rr) = (ratio(&a), ratio(&b), ratio(&facts), ratio(&run));
    let rbase = (!base.is_empty()).then(|| ratio(&base));
    let (ma, mb, mf, mr) = (median(a), median(b), median(facts), median(run));
    let s = |d: Duration| d.as_secs_f64();
    let per_host = |x: &Sample| x.cpu * 1000.0 / hosts as f64;
    let rss = |x: &Sample| {
        x.rss_kib.map_or("n/a".to_string(), |k| {
            format!("{:.0} MiB", k as f64 / 1024.0)
        })
    };
    println!(
        "### {hosts} sshd hosts, {parallel} at a time, 8 simulated H100-80GB each, {rounds} alternated rounds (medians), logged in as {user}\n"
    );
    println!(
        "| | wall | wall vs (a), median (min-max) | controller CPU | CPU per host | peak RSS |"
    );
    println!("|---|---|---|---|---|---|");
    let row = |name: &str, x: &Sample, r: (f64, f64, f64), rss: String| {
        println!(
            "| {name} | {:.2} s | {:.2}x ({:.2}-{:.2}) | {:.2} s | {:.1} ms | {rss} |",
            s(x.wall),
            r.1,
            r.0,
            r.2,
            x.cpu,
            per_host(x)
        );
    };
    row("(a) OpenSSH `ssh host true`", &ma, ra, "-".into());
    row(
        "(b) OpenSSH `ssh host <cached agent>` (hello + facts)",
        &mb,
        rb,
        "-".into(),
    );
    row(
        &format!("`migfleet facts -f {parallel}`"),
        &mf,
        rf,
        rss(&mf),
    );
    row(
        &format!("`migfleet run noop.lua -f {parallel}` (one task, nothing to change)"),
        &mr,
        rr,
        rss(&mr),
    );
    if let (Some(r), false) = (rbase, base.is_empty()) {
        let m = median(base);
        let name = std::env::var("MIGFLEET_BENCH_BASELINE_NAME").unwrap_or("baseline".into());
        row(
            &format!("(c) `migfleet facts -f {parallel}`, {name}"),
            &m,
            r,
            rss(&m),
        );
    }
}
