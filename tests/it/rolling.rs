//! Rolling safely: a host that fails after `drain` gets the play's `restore` on the way
//! out (Ansible's `always`), `any_errors_fatal` stops the play for everyone, and the hosts
//! that did not finish are written to a retry file `--limit @FILE` takes.

use crate::support::migfleet;
use crate::support::sim::{SimHost, write_inventory};
use crate::support::testhost::TempDir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Local simulated hosts `n0`, `n1`, ... (no SSH: these tests are about the play).
fn fleet(tag: &str, n: usize) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let hosts: Vec<SimHost> = (0..n)
        .map(|i| SimHost::local(dir.path(), &format!("n{i}"), &[("H100-80GB", 1)]))
        .collect();
    let inv = write_inventory(&dir.path().join("inventory.yml"), &hosts);
    (dir, inv)
}

/// A stand-in systemctl for host `name` whose units are all active until stopped.
fn units_active(dir: &Path, name: &str) {
    let p = dir.join(name).join("systemctl");
    std::fs::write(
        &p,
        "#!/bin/sh\nd=\"$(dirname \"$0\")\"\necho \"$*\" >> \"$d/systemctl.log\"\ncase \"$1\" in is-active) [ -e \"$d/stopped-$3\" ] && exit 3; exit 0 ;; stop) touch \"$d/stopped-$2\" ;; start) rm -f \"$d/stopped-$2\" ;; esac\nexit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn systemctl_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name).join("systemctl.log")).unwrap_or_default()
}

fn run(dir: &Path, inv: &Path, body: &str, extra: &[&str]) -> crate::support::Run {
    let pb = dir.join("site.lua");
    std::fs::write(&pb, body).unwrap();
    let mut args = vec![
        "run".to_string(),
        pb.display().to_string(),
        "-i".into(),
        inv.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    migfleet(&args)
}

#[test]
fn a_host_that_fails_after_drain_is_restored_on_the_way_out() {
    let (dir, inv) = fleet("rollrestore", 2);
    for n in ["n0", "n1"] {
        units_active(dir.path(), n);
    }
    let r = run(
        dir.path(),
        &inv,
        r#"return { hosts = "all", tasks = {
            { name = "drain", drain{ units = { "gpu-app.service" } } },
            { name = "breaks on n0", when = function(h) return h.host == "n0" end, command{ argv = { "false" } } },
            { name = "MIG on", mig.mode{ enabled = true } },
            { name = "restore", restore{} },
        } }"#,
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains(
            "changed: [n0] => on the way out (the host failed after drain): started gpu-app.service"
        ),
        "{}",
        r.shown
    );
    for n in ["n0", "n1"] {
        let log = systemctl_log(dir.path(), n);
        assert!(log.contains("stop gpu-app.service"), "{n}: {log}");
        assert!(
            log.contains("start gpu-app.service"),
            "{n} left drained: {log}"
        );
    }
    assert!(r.recap("n0").contains("failed=1"), "{}", r.shown);
    assert!(r.recap("n1").contains("failed=0"), "{}", r.shown);
}

#[test]
fn any_errors_fatal_stops_everyone_and_the_retry_file_names_who_to_run_again() {
    let (dir, inv) = fleet("rollfatal", 3);
    let r = run(
        dir.path(),
        &inv,
        r#"return { hosts = "all", any_errors_fatal = true, tasks = {
            { name = "breaks on n1", when = function(h) return h.host == "n1" end, command{ argv = { "false" } } },
            { name = "MIG on", mig.mode{ enabled = true } },
        } }"#,
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(!r.stdout.contains("TASK [MIG on]"), "{}", r.shown);
    assert!(r.stdout.contains("(any_errors_fatal)"), "{}", r.shown);
    for n in ["n0", "n2"] {
        assert!(r.recap(n).contains("changed=0"), "{}", r.shown);
    }
    let retry = dir.path().join("site.retry");
    assert_eq!(std::fs::read_to_string(&retry).unwrap(), "n1\n");
    assert!(
        r.stdout.contains(&format!("--limit @{}", retry.display())),
        "{}",
        r.shown
    );
    // The retry file is a --limit.
    let limit = format!("@{}", retry.display());
    let r = run(
        dir.path(),
        &inv,
        "return { hosts = 'all', tasks = {} }",
        &["--limit", &limit, "--list-hosts"],
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.stdout.contains("hosts (1):\n      n1"), "{}", r.shown);
    // --no-retry-file leaves it alone; --check writes none.
    std::fs::remove_file(&retry).unwrap();
    let r = run(
        dir.path(),
        &inv,
        "return { hosts = 'all', tasks = { { name = 'x', command{ argv = { 'false' } } } } }",
        &["--no-retry-file"],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(!retry.exists());
}

#[test]
fn without_any_errors_fatal_the_others_go_on() {
    let (dir, inv) = fleet("rollnofatal", 2);
    let r = run(
        dir.path(),
        &inv,
        r#"return { hosts = "all", tasks = {
            { name = "breaks on n1", when = function(h) return h.host == "n1" end, command{ argv = { "false" } } },
            { name = "MIG on", mig.mode{ enabled = true } },
        } }"#,
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains("changed: [n0] => GPU 0: MIG off -> on"),
        "{}",
        r.shown
    );
}

#[test]
fn reboot_refuses_a_host_reached_locally() {
    let (dir, inv) = fleet("rollrebootlocal", 1);
    let r = run(
        dir.path(),
        &inv,
        r#"return { hosts = "all", tasks = { { name = "reboot", reboot{} } } }"#,
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains("reached with ansible_connection: local"),
        "{}",
        r.shown
    );
    assert!(!dir.path().join("n0").join("reboot.log").exists());
}

#[test]
fn a_host_failed_after_drain_with_no_restore_to_come_is_named_as_left_drained() {
    let (dir, inv) = fleet("rollleft", 1);
    units_active(dir.path(), "n0");
    let r = run(
        dir.path(),
        &inv,
        r#"return { hosts = "all", tasks = {
            { name = "drain", drain{ units = { "gpu-app.service" } } },
            { name = "breaks", command{ argv = { "false" } } },
        } }"#,
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains("this host is left drained"),
        "{}",
        r.shown
    );
    assert!(!systemctl_log(dir.path(), "n0").contains("start gpu-app.service"));
}
