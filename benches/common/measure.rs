//! What the benchmarks share: medians of whole-process samples, peak RSS from GNU time,
//! the children's CPU time, numbers from the environment.

#![allow(dead_code)] // each bench uses its own part

use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds used by this process's waited-for children so far (cutime + cstime).
pub fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command name start at field 3; cutime and cstime are fields 16, 17.
    let ticks: f64 = [13, 14]
        .iter()
        .filter_map(|i| f.get(*i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// One measurement: wall, controller CPU, peak RSS (KiB) when known.
#[derive(Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub cpu: f64,
    pub rss_kib: Option<u64>,
}

pub fn median(mut v: Vec<Sample>) -> Sample {
    v.sort_by_key(|x| x.wall);
    let mut cpu: Vec<f64> = v.iter().map(|s| s.cpu).collect();
    cpu.sort_by(f64::total_cmp);
    let mut rss: Vec<u64> = v.iter().filter_map(|s| s.rss_kib).collect();
    rss.sort_unstable();
    Sample {
        wall: v[v.len() / 2].wall,
        cpu: cpu[cpu.len() / 2],
        rss_kib: rss.get(rss.len() / 2).copied(),
    }
}

/// `/usr/bin/time -f %M` (peak RSS) around a command, when GNU time is there.
pub fn timed(program: &Path, rss_file: &Path) -> Command {
    if Path::new("/usr/bin/time").exists() {
        let mut c = Command::new("/usr/bin/time");
        c.arg("-f").arg("%M").arg("-o").arg(rss_file).arg(program);
        c
    } else {
        Command::new(program)
    }
}

pub fn read_rss(rss_file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(rss_file).ok()?;
    let _ = std::fs::remove_file(rss_file);
    text.lines().last()?.trim().parse().ok()
}
