//! `group_vars/` and `host_vars/` beside each source (files or per-name directories) and the Ansible merge order for a host's variables.

use super::yaml::yaml_error;
use super::{DirWalk, Inventory, InventoryError, Origins, Vars, parse_err, yaml11};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Variables from the `group_vars/` and `host_vars/` directories of one inventory source.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceVars {
    pub(crate) groups: IndexMap<String, Layer>,
    pub(crate) hosts: IndexMap<String, Layer>,
}

/// One group's or host's variables from its vars files, with the file each came from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    pub(crate) vars: Vars,
    pub(crate) origins: Origins,
}

/// Ansible never treats these as variables of a host in `--list` output.
const INTERNAL_VARS: &[&str] = &[
    "ansible_async_path",
    "ansible_collection_name",
    "ansible_config_file",
    "ansible_dependent_role_names",
    "ansible_diff_mode",
    "ansible_facts",
    "ansible_forks",
    "ansible_inventory_sources",
    "ansible_limit",
    "ansible_play_batch",
    "ansible_play_hosts",
    "ansible_play_hosts_all",
    "ansible_play_role_names",
    "ansible_playbook_python",
    "ansible_role_name",
    "ansible_role_names",
    "ansible_run_tags",
    "ansible_skip_tags",
    "ansible_verbosity",
    "ansible_version",
    "inventory_dir",
    "inventory_file",
    "inventory_hostname",
    "inventory_hostname_short",
    "groups",
    "group_names",
    "hostvars",
    "playbook_dir",
    "play_hosts",
    "role_name",
    "role_names",
    "role_path",
    "role_uuid",
];

impl SourceVars {
    /// Reads `<base>/group_vars/<group>` and `<base>/host_vars/<host>` for every group and host of `inv`.
    pub(crate) fn load(base: &Path, inv: &Inventory) -> Result<SourceVars, InventoryError> {
        let mut sv = SourceVars::default();
        let gdir = base.join("group_vars");
        if gdir.is_dir() {
            for g in inv.groups.keys() {
                if let Some(v) = load_entity(&gdir, g, &inv.vault)? {
                    sv.groups.insert(g.clone(), v);
                }
            }
        }
        let hdir = base.join("host_vars");
        if hdir.is_dir() {
            for h in inv.hosts.keys() {
                if let Some(v) = load_entity(&hdir, h, &inv.vault)? {
                    sv.hosts.insert(h.clone(), v);
                }
            }
        }
        Ok(sv)
    }
}

const EXTS: &[&str] = &["", ".yml", ".yaml", ".json"];

/// The first of `<name>`, `<name>.yml`, `<name>.yaml`, `<name>.json` that exists; a directory is read recursively in sorted order.
fn load_entity(
    dir: &Path,
    name: &str,
    vault: &super::vault::Secrets,
) -> Result<Option<Layer>, InventoryError> {
    if name.starts_with('/') || name.is_empty() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for ext in EXTS {
        let p = dir.join(format!("{name}{ext}"));
        // A symlink loop or an unreadable directory is an error, not "absent".
        let exists = p.try_exists().map_err(|e| InventoryError::Io {
            path: p.clone(),
            source: e,
        })?;
        if exists {
            if p.is_dir() {
                dir_files(&p, &mut files, &mut DirWalk::default())?;
            } else {
                files.push(p);
            }
            break;
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let mut out = Layer::default();
    for f in files {
        if let Some(v) = load_vars_file(&f, vault)? {
            let file: Arc<Path> = Arc::from(f.as_path());
            for (k, val) in v {
                out.origins.record(&k, &file);
                out.vars.insert(k, val);
            }
        }
    }
    Ok(Some(out))
}

fn dir_files(dir: &Path, out: &mut Vec<PathBuf>, walk: &mut DirWalk) -> Result<(), InventoryError> {
    let io = |e| InventoryError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    walk.enter(dir)?;
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        if n.starts_with('.') || n.ends_with('~') {
            continue;
        }
        let p = dir.join(&n);
        walk.count(&p)?;
        let ext = Path::new(&n)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        if p.is_dir() && ext.is_empty() {
            dir_files(&p, out, walk)?;
        } else if EXTS.contains(&ext.as_str()) && !p.is_dir() {
            // Read (and refused there if it is a FIFO, a device or a dangling link)
            // rather than skipped without a word.
            out.push(p);
        }
    }
    walk.leave();
    Ok(())
}

/// One vars file: a YAML/JSON mapping (empty file = nothing).
pub(crate) fn load_vars_file(
    path: &Path,
    vault: &super::vault::Secrets,
) -> Result<Option<Vars>, InventoryError> {
    let text = super::read_maybe_vaulted(path, vault)?;
    let v = match yaml11::parse_json(&text).map_err(|e| yaml_error(path, &e))? {
        None | Some((serde_json::Value::Null, _)) => None,
        Some((serde_json::Value::Object(m), _)) => Some(m),
        Some((other, pos)) => {
            return Err(parse_err(
                path,
                pos.line,
                Some(pos.col),
                format!(
                    "a vars file holds a mapping of variables, found {}",
                    match other {
                        serde_json::Value::Array(_) => "a list",
                        _ => "a single value",
                    }
                ),
            ));
        }
    };
    Ok(v.filter(|m| !m.is_empty()))
}

/// Sort key Ansible uses for a host's groups: (depth, priority, name).
pub(crate) fn sorted_groups(inv: &Inventory, host: &str) -> Vec<String> {
    let mut gs: Vec<String> = inv
        .host_groups(host)
        .into_iter()
        .filter(|g| g != "all")
        .collect();
    gs.sort_by(|a, b| {
        let ka = (
            inv.depth.get(a).copied().unwrap_or(0),
            inv.groups.get(a).map_or(1, |g| g.priority),
        );
        let kb = (
            inv.depth.get(b).copied().unwrap_or(0),
            inv.groups.get(b).map_or(1, |g| g.priority),
        );
        ka.cmp(&kb).then_with(|| a.cmp(b))
    });
    gs
}

/// The layers of a host's variables, later ones winning: all inventory vars -> group
/// inventory vars (sorted) -> group_vars/all (each source) -> group_vars/<group> (each
/// source, sorted groups) -> host inventory vars -> host_vars/<host> (each source).
fn layers<'a>(inv: &'a Inventory, host: &str) -> Vec<(&'a Vars, &'a Origins)> {
    let mut out = Vec::new();
    let Some(h) = inv.hosts.get(host) else {
        return out;
    };
    if let Some(all) = inv.groups.get("all") {
        out.push((&all.vars, &all.origins));
    }
    let groups = sorted_groups(inv, host);
    for g in &groups {
        if let Some(gr) = inv.groups.get(g) {
            out.push((&gr.vars, &gr.origins));
        }
    }
    for sv in &inv.file_vars {
        if let Some(l) = sv.groups.get("all") {
            out.push((&l.vars, &l.origins));
        }
    }
    for sv in &inv.file_vars {
        for g in &groups {
            if let Some(l) = sv.groups.get(g) {
                out.push((&l.vars, &l.origins));
            }
        }
    }
    out.push((&h.vars, &h.origins));
    for sv in &inv.file_vars {
        if let Some(l) = sv.hosts.get(host) {
            out.push((&l.vars, &l.origins));
        }
    }
    out
}

/// A host's variables merged in Ansible's order (see [`layers`]).
pub(crate) fn merged_host_vars(inv: &Inventory, host: &str) -> Vars {
    let mut out = Vars::new();
    for (vars, _) in layers(inv, host) {
        for (k, v) in vars {
            out.insert(k.clone(), v.clone());
        }
    }
    for k in INTERNAL_VARS {
        out.shift_remove(*k);
    }
    out
}

/// The file whose value of `var` wins for `host`.
pub(crate) fn origin<'a>(inv: &'a Inventory, host: &str, var: &str) -> Option<&'a Path> {
    layers(inv, host)
        .into_iter()
        .rev()
        .find(|(vars, _)| vars.contains_key(var))
        .and_then(|(_, origins)| origins.of(var))
}
