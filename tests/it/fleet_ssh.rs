//! The fleet commands end to end: the real `migfleet` binary against real sshd test hosts
//! on 127.0.x.y, each with its own host key, remote directory and simulated GPUs.

use crate::support::sim::{SimHost, write_inventory};
use crate::support::testhost::{TestFleet, TestHost, write_known_hosts};
use crate::support::{Run, migfleet};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Gives each host two simulated GPUs of `model` and writes an inventory for them.
fn inventory(dir: &Path, hosts: &[&TestHost], model: &'static str) -> PathBuf {
    let sims: Vec<SimHost> = hosts
        .iter()
        .map(|h| SimHost::ssh(h, &[(model, 2)]).in_group("gpus"))
        .collect();
    write_inventory(&dir.join("inventory.yml"), &sims)
}

/// The `host_done` events of a `--output json` run, by host.
fn done(r: &Run) -> std::collections::BTreeMap<String, Value> {
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "host_done")
        .map(|v| {
            (
                v["host"].as_str().unwrap_or_default().to_string(),
                v["outcome"].clone(),
            )
        })
        .collect()
}

fn summary(r: &Run) -> Value {
    r.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary:\n{}", r.shown))
}

#[test]
fn facts_over_twenty_hosts_and_a_second_run_uploads_nothing() {
    let fleet = TestFleet::start(20);
    let hosts: Vec<&TestHost> = fleet.hosts.iter().collect();
    let inv = inventory(fleet.dir(), &hosts, "H100-80GB");
    let kh = fleet.known_hosts_all();
    let (inv, kh) = (inv.to_str().unwrap(), kh.to_str().unwrap());

    let r = migfleet(&["facts", "-i", inv, "--known-hosts", kh, "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let d = done(&r);
    assert_eq!(d.len(), 20, "{}", r.shown);
    for (host, o) in &d {
        assert_eq!(o["status"], "ok", "{host}: {o}");
        let gpus = o["data"]["gpus"].as_array().unwrap();
        assert_eq!(gpus.len(), 2, "{host}");
        assert_eq!(gpus[0]["model"], "H100-80GB");
    }
    assert_eq!(summary(&r)["exit_code"], 0);

    // facts uploaded the agent everywhere; ping now finds it, by hash, and uploads nothing.
    let r = migfleet(&["ping", "-i", inv, "--known-hosts", kh, "--output", "json"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    for (host, o) in done(&r) {
        assert_eq!(o["data"]["uploaded"], false, "{host} uploaded again");
    }
    let agents: Vec<_> = std::fs::read_dir(fleet.hosts[0].remote_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("migfleet-agent-")
        })
        .collect();
    assert_eq!(agents.len(), 1, "one cached agent per host");
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    let fleet = TestFleet::start(2);
    let hosts: Vec<&TestHost> = fleet.hosts.iter().collect();
    let inv = inventory(fleet.dir(), &hosts, "A100-40GB");
    let inv = inv.to_str().unwrap();

    // Only h0 is known: h1 is refused (unreachable), h0 works, exit code 4.
    let kh = fleet.known_hosts_for(&[0]);
    let r = migfleet(&[
        "ping",
        "-i",
        inv,
        "--known-hosts",
        kh.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(r.code, 4, "{}", r.shown);
    let d = done(&r);
    assert_eq!(d["h0"]["status"], "ok", "{}", r.shown);
    assert_eq!(d["h1"]["status"], "unreachable");
    assert!(
        d["h1"]["message"].as_str().unwrap().contains("SHA256:"),
        "{}",
        r.shown
    );

    // A changed key is refused with the file and line of the old one.
    let kh = fleet.known_hosts_all();
    let mut fleet = fleet;
    fleet.hosts[1].restart_with_new_key();
    let r = migfleet(&[
        "ping",
        "-i",
        inv,
        "--known-hosts",
        kh.to_str().unwrap(),
        "--accept-new-host-keys",
    ]);
    assert_eq!(r.code, 4, "{}", r.shown);
    assert!(
        r.stdout
            .contains("h1                         : ok=0    changed=0    unreachable=1"),
        "{}",
        r.shown
    );
    let line = format!("{}:2", kh.display());
    assert!(
        r.shown.contains(&line),
        "old key's file:line missing:\n{}",
        r.shown
    );
}

#[test]
fn accept_new_records_keys_and_the_next_run_verifies_them() {
    let fleet = TestFleet::start(3);
    let hosts: Vec<&TestHost> = fleet.hosts.iter().collect();
    let inv = inventory(fleet.dir(), &hosts, "H200-141GB");
    let kh = fleet.dir().join("fresh_known_hosts");
    let (inv, khs) = (inv.to_str().unwrap(), kh.to_str().unwrap());
    let r = migfleet(&[
        "ping",
        "-i",
        inv,
        "--known-hosts",
        khs,
        "--accept-new-host-keys",
    ]);
    assert_eq!(r.code, 0, "{}", r.shown);
    let text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    let r = migfleet(&["ping", "-i", inv, "--known-hosts", khs]);
    assert_eq!(r.code, 0, "{}", r.shown);
}

#[test]
fn a_dead_host_is_unreachable_while_the_others_succeed_and_limit_selects() {
    let mut fleet = TestFleet::start(4);
    let hosts: Vec<&TestHost> = fleet.hosts.iter().collect();
    let inv = inventory(fleet.dir(), &hosts, "A30-24GB");
    let kh = fleet.known_hosts_all();
    fleet.hosts[2].stop();
    let (inv, kh) = (inv.to_str().unwrap(), kh.to_str().unwrap());
    let r = migfleet(&["facts", "-i", inv, "--known-hosts", kh, "-T", "3"]);
    assert_eq!(r.code, 4, "{}", r.shown);
    for (h, unreachable) in [("h0", 0), ("h1", 0), ("h2", 1), ("h3", 0)] {
        let ok = 1 - unreachable;
        let want =
            format!("{h:<26} : ok={ok:<4} changed=0    unreachable={unreachable:<4} failed=0");
        assert!(r.stdout.contains(&want), "missing `{want}`:\n{}", r.shown);
    }

    let r = migfleet(&[
        "ping",
        "-i",
        inv,
        "--known-hosts",
        kh,
        "--limit",
        "gpus:!h2:!h3",
        "--output",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(
        done(&r).keys().cloned().collect::<Vec<_>>(),
        vec!["h0", "h1"]
    );
    let r = migfleet(&["ping", "-i", inv, "--known-hosts", kh, "--limit", "nosuch*"]);
    assert_eq!(r.code, 5, "{}", r.shown);
    assert!(r.shown.contains("nosuch*"), "{}", r.shown);
}

#[test]
fn a_host_whose_arch_has_no_agent_build_fails_naming_it() {
    let host = TestHost::start("noarch");
    let inv = inventory(host.dir(), &[&host], "H100-80GB");
    let kh = write_known_hosts(&host.dir().join("kh"), [&host].into_iter());
    // An agent directory with only an aarch64 build: this x86_64 host has none.
    let agents = host.dir().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("migfleet-agent-aarch64-linux-gnu"),
        b"not really",
    )
    .unwrap();
    let r = migfleet(&[
        "ping",
        "-i",
        inv.to_str().unwrap(),
        "--known-hosts",
        kh.to_str().unwrap(),
        "--agent-dir",
        agents.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.shown.contains("aarch64") && r.shown.contains(std::env::consts::ARCH),
        "{}",
        r.shown
    );
}
