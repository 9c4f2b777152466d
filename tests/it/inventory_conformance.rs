//! Conformance: every case under tests/cases/inventory is compared with outputs recorded from ansible-core
//! (`record.sh`): `--list` JSON, `--graph` text (whole and rooted) and `--list-hosts` for patterns.

use migfleet::inventory::{Inventory, InventoryError};
use std::path::{Path, PathBuf};

struct Case {
    dir: PathBuf,
    sources: Vec<PathBuf>,
    graphs: Vec<String>,
    patterns: Vec<String>,
    /// `vault-password-file:` lines, for cases with vault-encrypted files.
    vault_password_files: Vec<PathBuf>,
}

fn cases_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases/inventory")
}

fn read_case(dir: &Path) -> Case {
    let text = std::fs::read_to_string(dir.join("case.txt")).unwrap();
    let mut c = Case {
        dir: dir.to_path_buf(),
        sources: vec![],
        graphs: vec![],
        patterns: vec![],
        vault_password_files: vec![],
    };
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("source:") {
            c.sources.push(dir.join(s.trim()));
        } else if let Some(f) = line.strip_prefix("vault-password-file:") {
            c.vault_password_files.push(dir.join(f.trim()));
        } else if let Some(g) = line.strip_prefix("graph:") {
            c.graphs.push(g.trim().to_string());
        } else if let Some(p) = line.strip_prefix("pattern:") {
            c.patterns
                .push(p.strip_prefix(' ').unwrap_or(p).to_string());
        }
    }
    c
}

fn all_cases() -> Vec<Case> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(cases_root())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("case.txt").is_file())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 5,
        "expected the recorded cases, found {dirs:?}"
    );
    dirs.iter().map(|d| read_case(d)).collect()
}

fn load(case: &Case) -> Inventory {
    let secrets =
        migfleet::inventory::vault::load_secrets(&[], &case.vault_password_files).unwrap();
    Inventory::load_vaulted(&case.sources, Default::default(), secrets)
        .unwrap_or_else(|e| panic!("{}: {e}", case.dir.display()))
}

#[test]
fn list_json_matches_ansible_inventory() {
    for case in all_cases() {
        let inv = load(&case);
        // Byte for byte, as `ansible-inventory --list` prints it (which is not always
        // JSON: Python prints `Infinity` and `NaN`).
        let want = std::fs::read_to_string(case.dir.join("out/list.json")).unwrap();
        let got = format!("{}\n", migfleet::inventory::python_json(&inv.list_json()));
        if got != want {
            let (n, (g, w)) = got
                .lines()
                .zip(want.lines())
                .enumerate()
                .find(|(_, (g, w))| g != w)
                .unwrap_or((0, ("(lengths differ)", "")));
            panic!(
                "{}: --list differs from line {}:\n got: {g}\nwant: {w}\n--- got\n{got}",
                case.dir.display(),
                n + 1
            );
        }
    }
}

#[test]
fn graph_matches_ansible_inventory() {
    for case in all_cases() {
        let inv = load(&case);
        let expected = std::fs::read_to_string(case.dir.join("out/graph.txt")).unwrap();
        assert_eq!(
            inv.graph(None).unwrap(),
            expected,
            "{}: --graph",
            case.dir.display()
        );
        for g in &case.graphs {
            let expected =
                std::fs::read_to_string(case.dir.join(format!("out/graph-{g}.txt"))).unwrap();
            assert_eq!(
                inv.graph(Some(g)).unwrap(),
                expected,
                "{}: --graph {g}",
                case.dir.display()
            );
        }
    }
}

#[test]
fn patterns_match_ansible_list_hosts() {
    let mut checked = 0;
    for case in all_cases() {
        let inv = load(&case);
        for (i, p) in case.patterns.iter().enumerate() {
            let file = case.dir.join(format!("out/hosts-{}.txt", i + 1));
            let expected: Vec<String> = std::fs::read_to_string(&file)
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect();
            // `@file` is relative to the case dir (record.sh passes it as --limit @<abs path>).
            let pattern = p
                .split(',')
                .map(|t| match t.strip_prefix('@') {
                    Some(f) => format!("@{}", case.dir.join(f).display()),
                    None => t.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",");
            let got = inv
                .select(&pattern)
                .unwrap_or_else(|e| panic!("{}: pattern {p:?}: {e}", case.dir.display()));
            assert_eq!(
                got,
                expected,
                "{}: pattern {p:?} ({})",
                case.dir.display(),
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} patterns checked");
}

#[test]
fn hosts_is_all_order() {
    for case in all_cases() {
        let inv = load(&case);
        assert_eq!(
            inv.hosts(),
            inv.select("all").unwrap(),
            "{}",
            case.dir.display()
        );
    }
}

// ---------- error reporting ----------

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("inv-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn load_err(name: &str, file: &str, text: &str) -> String {
    let d = scratch(name);
    let p = d.join(file);
    std::fs::write(&p, text).unwrap();
    let e = Inventory::load(&[p]).unwrap_err();
    e.to_string()
}

#[test]
fn malformed_ini_reports_file_and_line() {
    let e = load_err("ini1", "hosts.ini", "[gpus]\ngpu1\n\n[gpus:wat]\n");
    assert!(
        e.contains("hosts.ini:4:") && e.contains("unknown type"),
        "{e}"
    );
    let e = load_err("ini2", "hosts.ini", "[gpus]\ngpu1 rack\n");
    assert!(e.contains("hosts.ini:2:") && e.contains("key=value"), "{e}");
    let e = load_err("ini3", "hosts.ini", "[gpus:vars]\nx=1\n");
    assert!(
        e.contains("hosts.ini:1:") && e.contains("undefined group"),
        "{e}"
    );
    let e = load_err("ini4", "hosts.ini", "[gpus]\n[bad group]\n");
    assert!(e.contains("hosts.ini:2:") && e.contains("section"), "{e}");
    let e = load_err("ini5", "hosts.ini", "[gpus]\ngpu[1:x]\n");
    assert!(
        e.contains("hosts.ini:2:") && e.contains("not a number"),
        "{e}"
    );
}

#[test]
fn malformed_yaml_reports_file_line_column() {
    let e = load_err("y1", "inv.yml", "all:\n  hosts:\n    a:\n  children: [x\n");
    assert!(e.contains("inv.yml:") && e.matches(':').count() >= 3, "{e}");
    let e = load_err(
        "y2",
        "inv.yml",
        "all:\n  children:\n    g:\n      hosts:\n        - h1\n",
    );
    assert!(
        e.contains("inv.yml:5:") && e.contains("expected a mapping of host names"),
        "{e}"
    );
    let e = load_err("y3", "inv.yaml", "all:\n  vars: [1]\n");
    assert!(
        e.contains("inv.yaml:2:") && e.contains("mapping of variables"),
        "{e}"
    );
    let e = load_err("y4", "inv.yml", "# nothing\n");
    assert!(e.contains("inv.yml:1:") && e.contains("empty"), "{e}");
}

#[test]
fn malformed_group_vars_report_file_line() {
    let d = scratch("gv");
    std::fs::write(d.join("hosts.ini"), "[gpus]\ng1\n").unwrap();
    std::fs::create_dir_all(d.join("group_vars")).unwrap();
    std::fs::write(d.join("group_vars/gpus.yml"), "a: 1\nb: [\n").unwrap();
    let e = Inventory::load(&[d.join("hosts.ini")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("group_vars/gpus.yml:"), "{e}");
    std::fs::write(d.join("group_vars/gpus.yml"), "- 1\n- 2\n").unwrap();
    let e = Inventory::load(&[d.join("hosts.ini")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("group_vars/gpus.yml:1:"), "{e}");
}

#[test]
fn failing_script_is_reported() {
    let d = scratch("script");
    let p = d.join("inv.sh");
    std::fs::write(&p, "#!/bin/sh\necho '{\"g\": {\"hosts\": [\"a\"]}' \n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Inventory::load(std::slice::from_ref(&p)).unwrap_err();
        assert!(matches!(e, InventoryError::Script { .. }), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}

#[test]
fn unknown_pattern_terms_are_named() {
    let case = read_case(&cases_root().join("ini_basic"));
    let inv = load(&case);
    for (pattern, term) in [
        ("nosuchgroup", "nosuchgroup"),
        ("gpus:!nosuch", "!nosuch"),
        ("gpus,&missing*", "&missing*"),
        ("~^zz", "~^zz"),
        ("a100[99]", "a100[99]"),
    ] {
        let e = inv.select(pattern).unwrap_err();
        assert!(
            matches!(&e, InventoryError::Pattern { pattern: p, .. } if p == term),
            "{pattern}: {e:?}"
        );
        assert!(e.to_string().contains(term), "{e}");
    }
    // A matching but empty intersection is not an error.
    assert_eq!(inv.select("storage:&a100").unwrap(), Vec::<String>::new());
    // `[:N]` is accepted as the docs describe it (== [0:N]).
    assert_eq!(
        inv.select("a100[:2]").unwrap(),
        ["gpu-a01", "gpu-a02", "gpu-a03"]
    );
    assert!(matches!(
        inv.graph(Some("nope")),
        Err(InventoryError::UnknownGroup(_))
    ));
}

#[test]
fn connection_from_inventory() {
    let case = read_case(&cases_root().join("ini_basic"));
    let inv = load(&case);
    let c = inv.connection("bastion").unwrap();
    assert_eq!(
        (c.address.as_str(), c.port, c.user.as_deref()),
        ("10.0.0.1", 2200, Some("admin"))
    );
    let c = inv.connection("gpu-xb").unwrap();
    assert_eq!(c.port, 2222);
    assert!(inv.connection("h100-1-a.dc1").unwrap().become_);
    assert_eq!(
        inv.connection("localbox").unwrap().kind,
        migfleet::inventory::ConnectionKind::Local
    );
    assert_eq!(
        inv.connection("gpu-a01").unwrap().k8s_node.as_deref(),
        Some("node-a01")
    );
}
