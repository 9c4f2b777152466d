//! Probes: hostile inventories and input files, run through the real `migfleet` binary.
//! Each must end within [`BOUND`] (a hang or an allocation that runs away fails it, not
//! a slow machine: the work each does is milliseconds), exit with the stated code and say
//! what was refused and where. Table-driven: a new way in is one more row.

use crate::support::testhost::TempDir;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long any probe may take. The slowest legitimate case here (20,000 nested groups
/// in a debug build) takes well under a second.
const BOUND: Duration = Duration::from_secs(20);

struct Probe {
    what: &'static str,
    /// Builds the files in the directory and returns the command line after `migfleet`.
    setup: fn(&Path) -> Vec<String>,
    code: i32,
    /// Each must appear in stderr (failures) or stdout (successes).
    says: &'static [&'static str],
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = write(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn fifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ok = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(ok.success());
}

fn list_hosts(inv: &str) -> Vec<String> {
    ["inventory", "-i", inv, "--list-hosts"]
        .map(String::from)
        .to_vec()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `depth` groups, each the only child of the one before, with `leaf` at the bottom;
/// every group sets `level`, so the deepest one must win.
fn chain_ini(depth: usize, reverse: bool) -> String {
    let mut sections: Vec<String> = (0..depth)
        .map(|d| format!("[g{d}:children]\ng{}\n[g{d}:vars]\nlevel={d}\n", d + 1))
        .collect();
    sections.push(format!(
        "[g{depth}]\nleaf\n[g{depth}:vars]\nlevel={depth}\n"
    ));
    if reverse {
        sections.reverse();
    }
    sections.concat()
}

const PROBES: &[Probe] = &[
    Probe {
        what: "a hundred million hosts from one INI range",
        setup: |d| list_hosts(&write(d, "hosts.ini", "[gpus]\ngpu[1:100000000]\n")),
        code: 4,
        says: &[
            "hosts.ini:2:",
            "names 100000000 hosts, more than the 1000000",
        ],
    },
    Probe {
        what: "a hundred million hosts from one YAML range",
        setup: |d| {
            list_hosts(&write(
                d,
                "inv.yml",
                "all:\n  hosts:\n    gpu[1:100000000]:\n",
            ))
        },
        code: 4,
        says: &["inv.yml:3:", "names 100000000 hosts"],
    },
    Probe {
        what: "nested ranges whose product overflows",
        setup: |d| {
            list_hosts(&write(
                d,
                "hosts.ini",
                "[gpus]\na[0:9223372036854775807]b[0:9223372036854775807]c[0:9223372036854775807]d[0:9223372036854775807]e[0:9223372036854775807]\n",
            ))
        },
        code: 4,
        says: &["more than 2^128 hosts"],
    },
    Probe {
        what: "a range bound past 64 bits",
        setup: |d| {
            list_hosts(&write(
                d,
                "hosts.ini",
                "[gpus]\ngpu[1:99999999999999999999]\n",
            ))
        },
        code: 4,
        says: &["hosts.ini:2:", "is too large"],
    },
    Probe {
        what: "a range step past 64 bits",
        setup: |d| {
            list_hosts(&write(
                d,
                "hosts.ini",
                "[gpus]\ngpu[1:5:18446744073709551617]\n",
            ))
        },
        code: 4,
        says: &["step '18446744073709551617'", "is too large"],
    },
    Probe {
        what: "a range over --max-hosts",
        setup: |d| {
            let mut a = list_hosts(&write(d, "hosts.ini", "[gpus]\nn[1:20]\n"));
            a.extend(args(&["--max-hosts", "19"]));
            a
        },
        code: 4,
        says: &["names 20 hosts, more than the 19", "--max-hosts"],
    },
    Probe {
        what: "a range within a raised --max-hosts",
        setup: |d| {
            let mut a = list_hosts(&write(d, "hosts.ini", "[gpus]\nn[1:20]\n"));
            a.extend(args(&["--max-hosts", "20"]));
            a
        },
        code: 0,
        says: &["n1\n", "n20\n"],
    },
    Probe {
        what: "--max-hosts counts hosts already defined",
        setup: |d| {
            let mut a = list_hosts(&write(d, "hosts.ini", "[a]\nx[1:15]\n[b]\ny[1:15]\n"));
            a.extend(args(&["--max-hosts", "20"]));
            a
        },
        code: 4,
        says: &["hosts.ini:4:", "names 15 hosts, more than the 5"],
    },
    Probe {
        what: "a FIFO as group_vars",
        setup: |d| {
            fifo(&d.join("group_vars/all.yml"));
            list_hosts(&write(d, "hosts.ini", "[gpus]\nn1\n"))
        },
        code: 4,
        says: &["group_vars/all.yml", "is a FIFO, not a regular file"],
    },
    Probe {
        what: "/dev/zero as host_vars",
        setup: |d| {
            std::fs::create_dir_all(d.join("host_vars")).unwrap();
            symlink("/dev/zero", d.join("host_vars/n1.yml")).unwrap();
            list_hosts(&write(d, "hosts.ini", "[gpus]\nn1\n"))
        },
        code: 4,
        says: &["host_vars/n1.yml", "is a character device"],
    },
    Probe {
        what: "a FIFO inside a group_vars directory",
        setup: |d| {
            write(d, "group_vars/gpus/a.yml", "x: 1\n");
            fifo(&d.join("group_vars/gpus/b.yml"));
            list_hosts(&write(d, "hosts.ini", "[gpus]\nn1\n"))
        },
        code: 4,
        says: &["group_vars/gpus/b.yml", "is a FIFO"],
    },
    Probe {
        what: "a symlink loop in group_vars",
        setup: |d| {
            write(d, "group_vars/gpus/a.yml", "x: 1\n");
            symlink("..", d.join("group_vars/gpus/up")).unwrap();
            symlink(".", d.join("group_vars/gpus/self")).unwrap();
            list_hosts(&write(d, "hosts.ini", "[gpus]\nn1\n"))
        },
        code: 4,
        says: &["group_vars/gpus/self", "symlink loop"],
    },
    Probe {
        what: "a vars file that is a symlink to itself",
        setup: |d| {
            std::fs::create_dir_all(d.join("group_vars")).unwrap();
            symlink("all.yml", d.join("group_vars/all.yml")).unwrap();
            list_hosts(&write(d, "hosts.ini", "[gpus]\nn1\n"))
        },
        code: 4,
        says: &["group_vars/all.yml", "symbolic links"],
    },
    Probe {
        what: "a symlink loop in an inventory directory",
        setup: |d| {
            write(d, "inv/a.ini", "[gpus]\nn1\n");
            symlink("../inv", d.join("inv/again")).unwrap();
            list_hosts(&d.join("inv").display().to_string())
        },
        code: 4,
        says: &["inv/again", "symlink loop"],
    },
    Probe {
        what: "symlinks that fan out exponentially",
        setup: |d| {
            // 2^20 paths through 20 directories, none of them a loop.
            for i in 0..20 {
                std::fs::create_dir_all(d.join(format!("inv/d{i}"))).unwrap();
                for link in ["a", "b"] {
                    symlink(format!("../d{}", i + 1), d.join(format!("inv/d{i}/{link}"))).unwrap();
                }
            }
            write(d, "inv/d20/hosts.ini", "[gpus]\nn1\n");
            list_hosts(&d.join("inv/d0").display().to_string())
        },
        code: 4,
        says: &["more than 100000 files and directories"],
    },
    Probe {
        what: "/dev/zero as the inventory",
        setup: |_| list_hosts("/dev/zero"),
        code: 4,
        says: &["/dev/zero: is a character device"],
    },
    Probe {
        what: "a FIFO as the inventory",
        setup: |d| {
            fifo(&d.join("hosts"));
            list_hosts(&d.join("hosts").display().to_string())
        },
        code: 4,
        says: &["is a FIFO"],
    },
    Probe {
        what: "an inventory file past 64 MiB",
        setup: |d| {
            let p = d.join("hosts.ini");
            let f = std::fs::File::create(&p).unwrap();
            f.set_len(65 << 20).unwrap();
            list_hosts(&p.display().to_string())
        },
        code: 4,
        says: &["larger than 64 MiB"],
    },
    Probe {
        what: "an executable inventory that never ends (and what it started)",
        setup: |d| {
            let mut a = list_hosts(&script(d, "inv.sh", "sleep 313373 & wait"));
            a.extend(args(&["--inventory-timeout", "1"]));
            a
        },
        code: 4,
        says: &["did not finish within 1 s", "stopped it"],
    },
    Probe {
        what: "an executable inventory whose --host calls never end",
        setup: |d| {
            let mut a = list_hosts(&script(
                d,
                "inv.sh",
                r#"if [ "$1" = --list ]; then echo '{"gpus": {"hosts": ["a", "b", "c"]}}'; else sleep 313374; fi"#,
            ));
            a.extend(args(&["--inventory-timeout", "2"]));
            a
        },
        code: 4,
        says: &["[\"--host\", \"a\"] did not finish within 2 s"],
    },
    Probe {
        what: "an executable inventory printing without end",
        setup: |d| list_hosts(&script(d, "inv.sh", "exec yes")),
        code: 4,
        says: &["printed more than 64 MiB"],
    },
    Probe {
        what: "an executable inventory that writes stderr without end and fails",
        setup: |d| list_hosts(&script(d, "inv.sh", "yes | head -c 100000000 >&2; exit 3")),
        code: 4,
        says: &["exited with exit status: 3"],
    },
    Probe {
        what: "20,000 nested groups, parents first",
        setup: |d| {
            args(&[
                "inventory",
                "-i",
                &write(d, "hosts.ini", &chain_ini(20_000, false)),
                "--host",
                "leaf",
            ])
        },
        code: 0,
        says: &["\"level\": 20000"],
    },
    Probe {
        what: "20,000 nested groups, children first",
        setup: |d| {
            args(&[
                "inventory",
                "-i",
                &write(d, "hosts.ini", &chain_ini(20_000, true)),
                "--host",
                "leaf",
            ])
        },
        code: 0,
        says: &["\"level\": 20000"],
    },
    Probe {
        what: "20,000 nested groups listed as ansible-inventory --list does",
        setup: |d| {
            args(&[
                "inventory",
                "-i",
                &write(d, "hosts.ini", &chain_ini(20_000, false)),
                "--list",
            ])
        },
        code: 0,
        says: &["\"g19999\": {", "\"leaf\""],
    },
    Probe {
        what: "20,000 nested groups in YAML",
        setup: |d| {
            let mut y = String::from("all:\n  children:\n");
            for i in 0..20_000 {
                y.push_str(&format!(
                    "    g{i}:\n      children:\n        g{}:\n",
                    i + 1
                ));
            }
            y.push_str("    g20000:\n      hosts:\n        leaf:\n");
            list_hosts(&write(d, "inv.yml", &y))
        },
        code: 0,
        says: &["leaf\n"],
    },
    Probe {
        what: "YAML nested 2,000 levels deep",
        setup: |d| {
            let mut y = String::from("all:\n  children:\n");
            let mut indent = String::from("    ");
            for i in 0..2000 {
                y.push_str(&format!("{indent}g{i}:\n{indent}  children:\n"));
                indent.push_str("    ");
            }
            list_hosts(&write(d, "inv.yml", &y))
        },
        code: 4,
        says: &["inv.yml:", "recursion limit exceeded"],
    },
    Probe {
        what: "a group loop across 20,000 groups",
        setup: |d| {
            let mut ini = chain_ini(20_000, false);
            ini.push_str("[g20000:children]\ng0\n");
            list_hosts(&write(d, "hosts.ini", &ini))
        },
        code: 4,
        says: &["recursive dependency loop"],
    },
    Probe {
        what: "/dev/zero as a mig-parted config",
        setup: |_| args(&["mig", "check", "--model", "H100-80GB", "/dev/zero"]),
        code: 5,
        says: &["/dev/zero", "is a character device"],
    },
    Probe {
        what: "a FIFO as the mig-parted config of a playbook",
        setup: |d| {
            fifo(&d.join("config.yaml"));
            let pb = write(
                d,
                "pb.lua",
                r#"return { hosts = "all", tasks = { mig.apply{ mig_parted = { file = "config.yaml", config = "all-1g" } } } }"#,
            );
            args(&["run", &pb, "--syntax-check", "-i", "localhost,"])
        },
        code: 4,
        says: &["config.yaml", "is a FIFO"],
    },
    Probe {
        what: "a FIFO as the playbook",
        setup: |d| {
            fifo(&d.join("pb.lua"));
            args(&[
                "run",
                &d.join("pb.lua").display().to_string(),
                "--syntax-check",
                "-i",
                "localhost,",
            ])
        },
        code: 4,
        says: &["pb.lua", "is a FIFO"],
    },
    Probe {
        what: "/dev/zero as extra vars",
        setup: |d| {
            let pb = write(d, "pb.lua", r#"return { hosts = "all", tasks = {} }"#);
            args(&[
                "run",
                &pb,
                "--syntax-check",
                "-i",
                "localhost,",
                "-e",
                "@/dev/zero",
            ])
        },
        code: 5,
        says: &["-e @/dev/zero", "is a character device"],
    },
    Probe {
        what: "a FIFO as the --limit file",
        setup: |d| {
            fifo(&d.join("retry"));
            let inv = write(d, "hosts.ini", "[gpus]\nn1\n");
            args(&[
                "inventory",
                "-i",
                &inv,
                "--list-hosts",
                "-l",
                &format!("@{}", d.join("retry").display()),
            ])
        },
        code: 5,
        says: &["retry", "is a FIFO"],
    },
];

/// Runs `migfleet args...` in `dir`; kills it and fails at [`BOUND`].
fn run_bounded(what: &str, dir: &Path, args: &[String]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_migfleet"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).map(|_| s)
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > BOUND {
            let _ = child.kill();
            panic!("{what}: still running after {BOUND:?}: migfleet {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let out = out.join().unwrap().unwrap_or_default();
    let err = err.join().unwrap().unwrap_or_default();
    (status.code().unwrap_or(-1), out, err, elapsed)
}

#[test]
fn hostile_inputs_end_within_their_bound_and_are_refused_clearly() {
    let mut failures = Vec::new();
    for p in PROBES {
        let dir = TempDir::new("probe");
        let args = (p.setup)(dir.path());
        let (code, out, err, took) = run_bounded(p.what, dir.path(), &args);
        eprintln!("{took:>10.2?}  {}", p.what);
        let text = if code == 0 { &out } else { &err };
        let missing: Vec<&&str> = p.says.iter().filter(|s| !text.contains(**s)).collect();
        if code != p.code || !missing.is_empty() {
            failures.push(format!(
                "{} (migfleet {args:?}, {took:?}): exit {code} (want {}), missing {missing:?}\nstderr: {}\nstdout: {}",
                p.what,
                p.code,
                err.trim(),
                out.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_stopped_inventory_script_leaves_nothing_running() {
    let dir = TempDir::new("probe-script");
    // A marker no other process has, to find what the script started.
    let marker = format!("31337{}", std::process::id());
    let inv = script(dir.path(), "inv.sh", &format!("sleep {marker} & wait"));
    let args = args(&[
        "inventory",
        "-i",
        &inv,
        "--list-hosts",
        "--inventory-timeout",
        "1",
    ]);
    let (code, _, err, _) = run_bounded("a hanging script", dir.path(), &args);
    assert_eq!(code, 4, "{err}");
    let left = Command::new("pgrep")
        .args(["-f", &format!("sleep {marker}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "left running: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}
