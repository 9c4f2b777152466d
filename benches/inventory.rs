//! Inventory loading at fleet scale: `migfleet inventory -i INV --list-hosts` as a whole
//! process (read, parse, group graph, group_vars, pattern, print) over generated
//! inventories, with peak RSS from GNU time when present. Medians of the rounds are
//! printed as Markdown for `docs/benchmarks.md`.
//!
//!   cargo bench --bench inventory
//!   MIGFLEET_BENCH_ROUNDS=5 MIGFLEET_BENCH_BASELINE=DIR cargo bench --bench inventory
//!
//! `MIGFLEET_BENCH_BASELINE=DIR` adds a row per case for another build (DIR is its cargo
//! target directory, with `release/migfleet`), run alternately with this one (A B A B)
//! so drift hits both alike. A run past `MIGFLEET_BENCH_LIMIT` seconds (default 120) is
//! stopped and shown as such; that build is not run on that case again.

// A benchmark harness, like a test: a failed setup step should stop it loudly.
#![allow(clippy::unwrap_used)]

#[path = "common/measure.rs"]
mod measure;

use measure::{Sample, children_cpu, env_usize, median, read_rss, timed};
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

struct Case {
    name: &'static str,
    /// What `-i` gets (relative to the case's directory).
    source: &'static str,
    make: fn(&Path),
}

/// 100 racks of 1,000 hosts, each with an address; vars for all and for one rack.
fn racks_yaml(dir: &Path) {
    let mut y = String::from("all:\n  children:\n");
    for r in 0..100 {
        let _ = write!(y, "    rack{r:03}:\n      hosts:\n");
        for i in 0..1000 {
            let _ = writeln!(
                y,
                "        gpu-{r:03}-{i:04}:\n          ansible_host: 10.{r}.{}.{}",
                i / 256,
                i % 256
            );
        }
    }
    std::fs::write(dir.join("inventory.yml"), y).unwrap();
    group_vars(dir);
}

/// 100,000 hosts in one group, each with an address.
fn flat_yaml(dir: &Path) {
    let mut y = String::from("all:\n  children:\n    gpus:\n      hosts:\n");
    for i in 0..100_000 {
        let _ = writeln!(
            y,
            "        gpu{i:06}:\n          ansible_host: 10.{}.{}.{}",
            i / 65536,
            (i / 256) % 256,
            i % 256
        );
    }
    std::fs::write(dir.join("inventory.yml"), y).unwrap();
    group_vars(dir);
}

fn racks_ini(dir: &Path) {
    let mut ini = String::new();
    for r in 0..100 {
        let _ = writeln!(ini, "[rack{r:03}]");
        for i in 0..1000 {
            let _ = writeln!(
                ini,
                "gpu-{r:03}-{i:04} ansible_host=10.{r}.{}.{}",
                i / 256,
                i % 256
            );
        }
    }
    std::fs::write(dir.join("hosts.ini"), ini).unwrap();
    group_vars(dir);
}

fn group_vars(dir: &Path) {
    std::fs::create_dir_all(dir.join("group_vars")).unwrap();
    std::fs::write(dir.join("group_vars/all.yml"), "ansible_user: ops\n").unwrap();
    std::fs::write(dir.join("group_vars/rack007.yml"), "mig_layout: balanced\n").unwrap();
}

fn range(dir: &Path, hosts: usize) {
    let width = hosts.to_string().len();
    std::fs::write(
        dir.join("hosts.ini"),
        format!(
            "[gpus]\ngpu[{:0width$}:{hosts}]\n[gpus:vars]\nansible_user=ops\n",
            1
        ),
    )
    .unwrap();
}

/// 20,000 groups, each the only child of the one before.
fn chain(dir: &Path) {
    let mut ini = String::new();
    for d in 0..20_000 {
        let _ = writeln!(ini, "[g{d}:children]\ng{}", d + 1);
    }
    ini.push_str("[g20000]\nleaf\n");
    std::fs::write(dir.join("hosts.ini"), ini).unwrap();
}

const CASES: &[Case] = &[
    Case {
        name: "100,000 hosts, YAML, 100 groups",
        source: "inventory.yml",
        make: racks_yaml,
    },
    Case {
        name: "100,000 hosts, YAML, one group",
        source: "inventory.yml",
        make: flat_yaml,
    },
    Case {
        name: "100,000 hosts, INI, 100 groups",
        source: "hosts.ini",
        make: racks_ini,
    },
    Case {
        name: "100,000 hosts, one INI range",
        source: "hosts.ini",
        make: |d| range(d, 100_000),
    },
    Case {
        name: "1,000,000 hosts, one INI range",
        source: "hosts.ini",
        make: |d| range(d, 1_000_000),
    },
    Case {
        name: "20,000 nested groups, INI",
        source: "hosts.ini",
        make: chain,
    },
];

/// One run, or `None` when it passed `limit` (and was killed).
fn run(program: &Path, inv: &Path, limit: Duration) -> Option<Sample> {
    let rss_file = std::env::temp_dir().join(format!("migfleet-bench-rss-{}", std::process::id()));
    let cpu_before = children_cpu();
    let started = Instant::now();
    let mut child = timed(program, &rss_file)
        .args(["inventory", "-i"])
        .arg(inv)
        .arg("--list-hosts")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Its own process group, so that a run past the limit goes with GNU time.
        .process_group(0)
        .spawn()
        .unwrap();
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "{} on {}: {status}",
                program.display(),
                inv.display()
            );
            break;
        }
        if started.elapsed() > limit {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            let _ = std::fs::remove_file(&rss_file);
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Some(Sample {
        wall: started.elapsed(),
        cpu: children_cpu() - cpu_before,
        rss_kib: read_rss(&rss_file),
    })
}

fn main() {
    let rounds = env_usize("MIGFLEET_BENCH_ROUNDS", 5).max(1);
    let limit = Duration::from_secs(env_usize("MIGFLEET_BENCH_LIMIT", 120) as u64);
    let this = PathBuf::from(env!("CARGO_BIN_EXE_migfleet"));
    let baseline = std::env::var_os("MIGFLEET_BENCH_BASELINE")
        .map(|d| PathBuf::from(d).join("release/migfleet"));
    let work = std::env::temp_dir().join(format!("migfleet-bench-inv-{}", std::process::id()));
    let mut builds: Vec<(String, PathBuf)> = vec![("this build".into(), this)];
    if let Some(b) = &baseline {
        builds.push((format!("baseline {}", b.display()), b.clone()));
    }
    println!("| inventory | build | wall | CPU | peak RSS |");
    println!("|---|---|---|---|---|");
    for case in CASES {
        let dir = work.join(case.name.replace([' ', ','], "_"));
        std::fs::create_dir_all(&dir).unwrap();
        (case.make)(&dir);
        let inv = dir.join(case.source);
        let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); builds.len()];
        let mut gave_up = vec![false; builds.len()];
        for _ in 0..rounds {
            for (i, (_, program)) in builds.iter().enumerate() {
                if gave_up[i] {
                    continue;
                }
                match run(program, &inv, limit) {
                    Some(s) => samples[i].push(s),
                    None => gave_up[i] = true,
                }
            }
        }
        for (i, (label, _)) in builds.iter().enumerate() {
            if gave_up[i] && samples[i].is_empty() {
                println!(
                    "| {} | {label} | over {} s (stopped) | | |",
                    case.name,
                    limit.as_secs()
                );
                continue;
            }
            let m = median(samples[i].clone());
            let rss = m
                .rss_kib
                .map(|k| format!("{} MiB", k / 1024))
                .unwrap_or_default();
            println!(
                "| {} | {label} | {:.2} s | {:.2} s | {rss} |",
                case.name,
                m.wall.as_secs_f64(),
                m.cpu
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&work);
}
