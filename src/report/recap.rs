//! The recap in Ansible's shape, and the exit code it implies. Pure: counts in, text out.

use super::exit_code;
use crate::error::Failure;
use crate::fleet::{Outcome, Status};
use serde::Serialize;
use std::collections::BTreeMap;

/// Ansible's seven counters for one host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct HostStats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

impl HostStats {
    /// Counts one task result. A changed task also counts as ok, as in Ansible.
    pub fn add(&mut self, status: Status) {
        match status {
            Status::Ok => self.ok += 1,
            Status::Changed => {
                self.ok += 1;
                self.changed += 1
            }
            Status::Failed => self.failed += 1,
            Status::Unreachable => self.unreachable += 1,
            Status::Skipped => self.skipped += 1,
        }
    }
}

/// Per-host stats, sorted by host name as Ansible prints them.
pub type Stats = BTreeMap<String, HostStats>;

/// Stats of single-step commands (`ping`, `facts`): one result per host.
pub fn from_outcomes(outcomes: &[(String, Outcome)]) -> Stats {
    let mut stats = Stats::new();
    for (host, o) in outcomes {
        stats.entry(host.clone()).or_default().add(o.status);
    }
    stats
}

/// The command's result for a run with these stats and exit code: an error naming the
/// hosts that failed or were unreachable (the first few; the recap has them all).
pub fn result(stats: &Stats, code: u8) -> Result<(), Failure> {
    if code == exit_code::OK {
        return Ok(());
    }
    let names = |pick: fn(&HostStats) -> bool| -> String {
        let hosts: Vec<&str> = stats
            .iter()
            .filter(|(_, s)| pick(s))
            .map(|(h, _)| h.as_str())
            .collect();
        let mut shown = hosts
            .iter()
            .take(10)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if hosts.len() > 10 {
            shown.push_str(&format!(" and {} more", hosts.len() - 10));
        }
        format!("{} host(s): {shown}", hosts.len())
    };
    let mut parts = Vec::new();
    if stats.values().any(|s| s.unreachable > 0) {
        parts.push(format!("unreachable {}", names(|s| s.unreachable > 0)));
    }
    if stats.values().any(|s| s.failed > 0) {
        parts.push(format!("failed {}", names(|s| s.failed > 0)));
    }
    if parts.is_empty() {
        parts.push("the run was stopped".to_string());
    }
    Err(Failure {
        message: parts.join("; "),
        hints: Vec::new(),
        code,
    })
}

/// `PLAY RECAP` and one line per host: the name left-justified in 26 columns, then the
/// seven counters, each value left-justified in 4.
pub fn render(stats: &Stats) -> String {
    let mut out = String::from(
        "PLAY RECAP *********************************************************************\n",
    );
    for (host, s) in stats {
        out.push_str(&format!(
            "{host:<26} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={:<4}\n",
            s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.rescued, s.ignored
        ));
    }
    out
}

/// Ansible's exit code for a run: 4 when a host was unreachable (it wins), 2 when one
/// failed, 0 otherwise.
pub fn exit_code(stats: &Stats) -> u8 {
    if stats.values().any(|s| s.unreachable > 0) {
        exit_code::UNREACHABLE
    } else if stats.values().any(|s| s.failed > 0) {
        exit_code::FAILED_HOSTS
    } else {
        exit_code::OK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recap_matches_ansibles_columns_and_exit_codes() {
        let mut stats = Stats::new();
        stats.entry("web1".into()).or_default().add(Status::Changed);
        stats.entry("web1".into()).or_default().add(Status::Changed);
        let text = render(&stats);
        assert!(text.contains(
            "web1                       : ok=2    changed=2    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0"
        ), "{text}");
        assert_eq!(exit_code(&stats), 0);
        stats.entry("a".into()).or_default().add(Status::Failed);
        assert_eq!(exit_code(&stats), 2);
        stats
            .entry("b".into())
            .or_default()
            .add(Status::Unreachable);
        assert_eq!(exit_code(&stats), 4);
        assert!(
            render(&stats)
                .lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("a ")),
            "sorted by name"
        );
    }
}
