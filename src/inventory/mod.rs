//! Inventory model: groups/hosts graph, source loading dispatch, reconciliation and the public `Inventory` API.

pub mod connection;
mod ini;
mod list;
mod pattern;
mod pylit;
pub mod range;
mod script;
pub mod template;
mod vars;
pub mod vault;
mod yaml;
pub(crate) mod yaml11;

use indexmap::{IndexMap, IndexSet};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use connection::{Connection, ConnectionKind};
pub use list::python_json;

/// Variables of one host or group.
pub type Vars = Map<String, Value>;

/// Which file set each variable of one group, host or vars file (for messages): the
/// first file, and only for a variable another file set, that file. Most hosts and
/// groups have all their variables from one file, so this costs them no allocation.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origins {
    pub(crate) first: Option<Arc<Path>>,
    others: Vec<Set>,
}

/// A variable and the file that set it.
type Set = (String, Arc<Path>);

impl Origins {
    /// `key` was set (last) by `file`.
    pub(crate) fn record(&mut self, key: &str, file: &Arc<Path>) {
        let first = self.first.get_or_insert_with(|| file.clone());
        let same = Arc::ptr_eq(first, file) || **first == **file;
        if !self.others.is_empty() {
            self.others.retain(|(k, _)| k != key);
        }
        if !same {
            self.others.push((key.to_string(), file.clone()));
        }
    }

    /// The file that set `key` (when it is one of these variables).
    pub(crate) fn of(&self, key: &str) -> Option<&Path> {
        self.others
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, f)| &**f)
            .or(self.first.as_deref())
    }
}

/// How much an inventory may ask of the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most hosts an inventory may define; a host range that would go past it is
    /// refused before it is expanded.
    pub max_hosts: usize,
    /// How long an executable inventory may run, all its calls together.
    pub script_timeout: Duration,
}

/// Far above the largest GPU fleets (and loaded in a few seconds), far below what would
/// exhaust the controller's memory.
pub const DEFAULT_MAX_HOSTS: usize = 1_000_000;

/// Dynamic inventories query cloud APIs; a minute is generous for that.
pub const DEFAULT_SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

/// The most files and directories read from one inventory or vars directory tree
/// (symlinks can make a small tree look exponentially large).
pub const MAX_DIR_ENTRIES: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_hosts: DEFAULT_MAX_HOSTS,
            script_timeout: DEFAULT_SCRIPT_TIMEOUT,
        }
    }
}

/// Everything that can go wrong while loading or querying an inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A syntax or structure error inside a source or vars file.
    #[error("{}:{line}{}: {message}", file.display(), column.map(|c| format!(":{c}")).unwrap_or_default())]
    Parse {
        file: PathBuf,
        line: usize,
        column: Option<usize>,
        message: String,
    },
    /// A variable's Jinja template could not be rendered.
    #[error("host `{host}`: variable `{variable}` (set in {}): {message}", file.display())]
    Template {
        host: String,
        variable: String,
        message: String,
        /// The file whose value of the variable won for this host.
        file: PathBuf,
    },
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A directory leads back into itself (through a symlink), or a tree is too large.
    #[error("{}: {message}", path.display())]
    Directory { path: PathBuf, message: String },
    /// An inventory source path does not exist.
    #[error("{}: inventory source not found", path.display())]
    SourceNotFound { path: PathBuf },
    /// An executable inventory failed or printed something unusable.
    #[error("inventory script {}: {message}", path.display())]
    Script { path: PathBuf, message: String },
    /// An inconsistent group graph (e.g. a dependency loop).
    #[error("{}: {message}", source_file.display())]
    Graph {
        source_file: PathBuf,
        message: String,
    },
    /// A host pattern (or one term of it) is invalid or matched nothing.
    #[error("host pattern '{pattern}': {message}")]
    Pattern { pattern: String, message: String },
    /// `graph(Some(root))` named something that is not a group.
    #[error("'{0}' is not a group name (--graph needs a group)")]
    UnknownGroup(String),
    /// A connection variable has the wrong type or value.
    #[error("host '{host}': variable '{var}': {message}")]
    ConnectionVar {
        host: String,
        var: String,
        message: String,
    },
}

pub(crate) fn parse_err(
    file: &Path,
    line: usize,
    column: Option<usize>,
    message: impl Into<String>,
) -> InventoryError {
    InventoryError::Parse {
        file: file.to_path_buf(),
        line,
        column,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) hosts: IndexSet<String>,
    pub(crate) children: IndexSet<String>,
    pub(crate) parents: IndexSet<String>,
    pub(crate) vars: Vars,
    pub(crate) origins: Origins,
    pub(crate) priority: i64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Host {
    pub(crate) vars: Vars,
    /// Its `first` file is the source the host was first found in (Ansible's
    /// `inventory_file`).
    pub(crate) origins: Origins,
    /// Groups the host was added to directly.
    pub(crate) groups: IndexSet<String>,
}

/// A loaded inventory: groups (name -> hosts, children, vars), hosts in definition order,
/// per-host inventory vars, and the group_vars/host_vars found beside each source.
#[derive(Debug, Clone)]
pub struct Inventory {
    pub(crate) groups: IndexMap<String, Group>,
    pub(crate) hosts: IndexMap<String, Host>,
    pub(crate) sources: Vec<PathBuf>,
    pub(crate) file_vars: Vec<vars::SourceVars>,
    pub(crate) depth: HashMap<String, usize>,
    pub(crate) limits: Limits,
    /// The source file being parsed now: where variables set now come from.
    pub(crate) parsing: Option<Arc<Path>>,
    /// The vault passwords: for vault-encrypted files as they are read, and `!vault`
    /// values where they are used.
    pub(crate) vault: vault::Secrets,
}

impl Default for Inventory {
    fn default() -> Self {
        Self::empty()
    }
}

/// A source or vars file's text, decrypted first when `ansible-vault` encrypted it whole.
pub(crate) fn read_maybe_vaulted(
    path: &Path,
    secrets: &vault::Secrets,
) -> Result<String, InventoryError> {
    let text = crate::input::read_text(path).map_err(|e| InventoryError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    if !vault::is_vault(&text) {
        return Ok(text);
    }
    secrets
        .decrypt(&text)
        .map_err(|m| parse_err(path, 1, None, format!("the file is {m}")))
}

/// Extensions skipped when scanning a directory source (Ansible's REJECT_EXTS + inventory ignores).
const IGNORED_EXTS: &[&str] = &[
    ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry",
];

pub(crate) fn is_yaml_ext(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml" | "json")
    )
}

impl Inventory {
    fn empty() -> Inventory {
        let mut inv = Inventory {
            groups: IndexMap::new(),
            hosts: IndexMap::new(),
            sources: Vec::new(),
            file_vars: Vec::new(),
            depth: HashMap::new(),
            limits: Limits::default(),
            parsing: None,
            vault: vault::Secrets::default(),
        };
        inv.add_group("all");
        inv.add_group("ungrouped");
        // Cannot loop: both groups are fresh.
        let _ = inv.add_child_group("all", "ungrouped");
        inv
    }

    /// Loads one or more sources (`-i`): YAML/JSON or INI files, executables (`--list`),
    /// directories of sources, or a comma-separated host list (`"a,b,"`). Later sources win.
    pub fn load(sources: &[PathBuf]) -> Result<Inventory, InventoryError> {
        Inventory::load_with(sources, Limits::default())
    }

    /// [`Inventory::load`] within these limits.
    pub fn load_with(sources: &[PathBuf], limits: Limits) -> Result<Inventory, InventoryError> {
        Inventory::load_vaulted(sources, limits, vault::Secrets::default())
    }

    /// [`Inventory::load_with`], with vault passwords for encrypted files and values.
    pub fn load_vaulted(
        sources: &[PathBuf],
        limits: Limits,
        secrets: vault::Secrets,
    ) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::empty();
        inv.limits = limits;
        inv.vault = secrets;
        for src in sources {
            let text = src.to_string_lossy();
            if text.contains(',') && !src.exists() {
                inv.parse_host_list(&text);
                continue;
            }
            if !src.exists() {
                return Err(InventoryError::SourceNotFound { path: src.clone() });
            }
            let mut walk = DirWalk::default();
            inv.parse_source(src, &mut walk)?;
            inv.sources.push(src.clone());
        }
        inv.reconcile();
        inv.compute_depths();
        for src in inv.sources.clone() {
            let base = if src.is_dir() {
                src.clone()
            } else {
                src.parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| PathBuf::from("."))
            };
            let sv = vars::SourceVars::load(&base, &inv)?;
            inv.file_vars.push(sv);
        }
        Ok(inv)
    }

    fn parse_host_list(&mut self, text: &str) {
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (name, port) = match range::parse_address(item, false) {
                Some((h, p)) => (h, p),
                None => (item.to_string(), None),
            };
            if !self.hosts.contains_key(&name) {
                self.add_host(&name, Some("ungrouped"), port);
            }
        }
    }

    fn parse_source(&mut self, path: &Path, walk: &mut DirWalk) -> Result<(), InventoryError> {
        walk.count(path)?;
        if path.is_dir() {
            walk.enter(path)?;
            let mut names: Vec<_> = std::fs::read_dir(path)
                .map_err(|e| InventoryError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                if name.starts_with('.')
                    || matches!(name.as_str(), "host_vars" | "group_vars" | "vars_plugins")
                    || IGNORED_EXTS.iter().any(|x| name.ends_with(x))
                {
                    continue;
                }
                self.parse_source(&path.join(name), walk)?;
            }
            walk.leave();
            return Ok(());
        }
        self.parsing = Some(Arc::from(path));
        let r = self.parse_file(path);
        self.parsing = None;
        r
    }

    fn parse_file(&mut self, path: &Path) -> Result<(), InventoryError> {
        if script::is_executable(path) {
            return script::parse(self, path);
        }
        let text = read_maybe_vaulted(path, &self.vault)?;
        if is_yaml_ext(path) {
            return yaml::parse(self, path, &text);
        }
        if path.extension().is_none() && yaml::looks_like_yaml_inventory(&text) {
            return yaml::parse(self, path, &text);
        }
        ini::parse(self, path, &text)
    }

    /// How many more hosts this inventory may define.
    pub(crate) fn hosts_left(&self) -> usize {
        self.limits.max_hosts.saturating_sub(self.hosts.len())
    }

    // ----- graph primitives (mirroring Ansible's InventoryData) -----

    pub(crate) fn add_group(&mut self, name: &str) {
        if !self.groups.contains_key(name) {
            self.groups.insert(
                name.to_string(),
                Group {
                    priority: 1,
                    ..Group::default()
                },
            );
        }
    }

    /// Adds a host (if new, with `ansible_port` from a `host:port` shorthand) and optionally puts it in a group.
    pub(crate) fn add_host(&mut self, name: &str, group: Option<&str>, port: Option<u16>) {
        if !self.hosts.contains_key(name) {
            let mut h = Host {
                origins: Origins {
                    first: self.parsing.clone(),
                    ..Origins::default()
                },
                ..Host::default()
            };
            if let Some(p) = port.filter(|p| *p != 0) {
                h.vars.insert("ansible_port".into(), Value::from(p));
                if let Some(f) = &self.parsing {
                    h.origins.record("ansible_port", f);
                }
            }
            self.hosts.insert(name.to_string(), h);
        }
        if let Some(g) = group {
            self.add_group(g);
            self.add_host_to_group(g, name);
        }
    }

    fn add_host_to_group(&mut self, group: &str, host: &str) {
        if let Some(g) = self.groups.get_mut(group)
            && !g.hosts.insert(host.to_string())
        {
            return;
        }
        if let Some(h) = self.hosts.get_mut(host) {
            h.groups.insert(group.to_string());
        }
    }

    fn remove_host_from_group(&mut self, group: &str, host: &str) {
        if let Some(g) = self.groups.get_mut(group) {
            g.hosts.shift_remove(host);
        }
        if let Some(h) = self.hosts.get_mut(host) {
            h.groups.shift_remove(group);
        }
    }

    /// All ancestors of a group (not including itself).
    pub(crate) fn ancestors(&self, group: &str) -> HashSet<String> {
        let mut seen = HashSet::new();
        let mut stack = vec![group.to_string()];
        while let Some(g) = stack.pop() {
            if let Some(gr) = self.groups.get(&g) {
                for p in &gr.parents {
                    if seen.insert(p.clone()) {
                        stack.push(p.clone());
                    }
                }
            }
        }
        seen
    }

    /// Makes `child` a child group of `parent`; refuses dependency loops.
    pub(crate) fn add_child_group(&mut self, parent: &str, child: &str) -> Result<(), String> {
        if parent == child {
            return Err(format!("can't add group '{parent}' to itself"));
        }
        self.add_group(parent);
        self.add_group(child);
        if self.groups[parent].children.contains(child) {
            return Ok(());
        }
        if self.creates_loop(parent, child) {
            return Err(format!(
                "adding group '{child}' as child to '{parent}' creates a recursive dependency loop"
            ));
        }
        if let Some(p) = self.groups.get_mut(parent) {
            p.children.insert(child.to_string());
        }
        if let Some(c) = self.groups.get_mut(child) {
            c.parents.insert(parent.to_string());
        }
        Ok(())
    }

    /// Whether `child` is already above `parent`. Searched from both ends at once, one
    /// group per side per step, so a chain of any length costs only as much as the shorter
    /// side: linking a new group to the end of a 20,000-group chain is one step, whichever
    /// order the file lists them in.
    fn creates_loop(&self, parent: &str, child: &str) -> bool {
        let mut up = Walk::new(parent, |g: &Group| &g.parents);
        let mut down = Walk::new(child, |g: &Group| &g.children);
        loop {
            for (walk, target) in [(&mut up, child), (&mut down, parent)] {
                match walk.step(self, target) {
                    Step::Found => return true,
                    Step::Exhausted => return false,
                    Step::More => {}
                }
            }
        }
    }

    /// Sets an inventory variable on a group (handling `ansible_group_priority`).
    pub(crate) fn set_group_var(
        &mut self,
        group: &str,
        key: &str,
        value: Value,
    ) -> Result<(), String> {
        self.add_group(group);
        let Some(g) = self.groups.get_mut(group) else {
            return Ok(());
        };
        if key == "ansible_group_priority" {
            g.priority = priority_value(&value).ok_or_else(|| {
                format!("ansible_group_priority must be an integer, found {value}")
            })?;
        } else {
            g.vars.insert(key.to_string(), value);
            if let Some(f) = &self.parsing {
                g.origins.record(key, f);
            }
        }
        Ok(())
    }

    pub(crate) fn set_host_var(&mut self, host: &str, key: &str, value: Value) {
        if let Some(h) = self.hosts.get_mut(host) {
            h.vars.insert(key.to_string(), value);
            if let Some(f) = &self.parsing {
                h.origins.record(key, f);
            }
        }
    }

    /// Ansible's reconcile_inventory: parentless groups go under `all`, hosts in no group go to `ungrouped`.
    fn reconcile(&mut self) {
        let top: Vec<String> = self
            .groups
            .iter()
            .filter(|(n, g)| n.as_str() != "all" && g.parents.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        for g in top {
            // `all` has no parents, so no loop is possible.
            let _ = self.add_child_group("all", &g);
        }
        // A host's groups other than `all` and `ungrouped`: its own, or those above
        // `ungrouped` or `all` (computed once: walking every host's ancestry would be
        // quadratic in deep group graphs).
        let special_has_others = |g: &str| {
            self.ancestors(g)
                .iter()
                .any(|a| a != "all" && a != "ungrouped")
        };
        let (ungrouped_above, all_above) =
            (special_has_others("ungrouped"), special_has_others("all"));
        let names: Vec<String> = self.hosts.keys().cloned().collect();
        for h in names {
            let Some(host) = self.hosts.get(&h) else {
                continue;
            };
            let in_ungrouped = host.groups.contains("ungrouped");
            let others = host.groups.iter().any(|g| g != "all" && g != "ungrouped")
                || (in_ungrouped && ungrouped_above)
                || (host.groups.contains("all") && all_above);
            if in_ungrouped {
                if others {
                    self.remove_host_from_group("ungrouped", &h);
                }
            } else if !others {
                self.add_host_to_group("ungrouped", &h);
            }
        }
    }

    /// Every group a host belongs to, directly or through ancestry (includes `all` when reachable).
    pub(crate) fn host_groups(&self, host: &str) -> Vec<String> {
        let mut out: IndexSet<String> = IndexSet::new();
        if let Some(h) = self.hosts.get(host) {
            for g in &h.groups {
                let mut anc: Vec<String> = self.ancestors(g).into_iter().collect();
                anc.sort();
                out.extend(anc);
                out.insert(g.clone());
            }
        }
        out.into_iter().collect()
    }

    /// Group depth = longest path from a group without parents (`all`), in topological
    /// order: no recursion, so no depth of nesting can overflow the stack.
    fn compute_depths(&mut self) {
        let mut waiting: HashMap<&str, usize> = self
            .groups
            .iter()
            .map(|(n, g)| (n.as_str(), g.parents.len()))
            .collect();
        let mut depth: HashMap<String, usize> = HashMap::new();
        let mut ready: Vec<&str> = waiting
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(g, _)| *g)
            .collect();
        while let Some(g) = ready.pop() {
            let d = depth.get(g).copied().unwrap_or(0);
            depth.entry(g.to_string()).or_insert(d);
            let Some(gr) = self.groups.get(g) else {
                continue;
            };
            for c in &gr.children {
                let e = depth.entry(c.clone()).or_insert(0);
                *e = (*e).max(d + 1);
                if let Some(n) = waiting.get_mut(c.as_str()) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        ready.push(c.as_str());
                    }
                }
            }
        }
        self.depth = depth;
    }

    /// Hosts of a group and its descendants, breadth first (Ansible's Group.get_hosts order).
    pub(crate) fn group_hosts(&self, group: &str) -> Vec<String> {
        let mut order: Vec<&str> = vec![group];
        let mut seen: HashSet<&str> = HashSet::from([group]);
        let mut level: Vec<&str> = vec![group];
        while !level.is_empty() {
            let mut next = Vec::new();
            for g in &level {
                if let Some(gr) = self.groups.get(*g) {
                    for c in &gr.children {
                        if seen.insert(c.as_str()) {
                            next.push(c.as_str());
                            order.push(c.as_str());
                        }
                    }
                }
            }
            level = next;
        }
        let mut hosts = Vec::new();
        let mut hs: HashSet<&str> = HashSet::new();
        for g in order {
            if let Some(gr) = self.groups.get(g) {
                for h in &gr.hosts {
                    if hs.insert(h.as_str()) {
                        hosts.push(h.clone());
                    }
                }
            }
        }
        hosts
    }

    /// Every host in inventory order (Ansible's order for `all`).
    pub fn hosts(&self) -> Vec<String> {
        self.group_hosts("all")
    }

    /// Names of all groups, in definition order (includes `all` and `ungrouped`).
    pub fn group_names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Hosts matching an Ansible host pattern, in Ansible's order.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, InventoryError> {
        pattern::select(self, pattern)
    }

    /// Merged variables of a host as `ansible-inventory --list` shows them in `_meta.hostvars`.
    pub fn host_vars(&self, host: &str) -> Vars {
        vars::merged_host_vars(self, host)
    }

    /// A host's variables as tasks, connections and Lua use them: Jinja templates rendered
    /// (lazily, with Ansible's magic variables) and `!unsafe` values as the plain strings
    /// they are; `host_vars` keeps both as `--list` shows them. `world` is what every
    /// host's templates share ([`template::World::new`]), asked for only when the host has a
    /// template.
    pub fn render_vars(
        &self,
        host: &str,
        world: impl FnOnce() -> std::sync::Arc<template::World>,
    ) -> Result<Vars, InventoryError> {
        template::render_host(world, host, self.host_vars(host), &self.vault).map_err(|e| {
            InventoryError::Template {
                host: host.to_string(),
                file: self.var_origin(host, &e.variable),
                variable: e.variable,
                message: e.message,
            }
        })
    }

    /// The file whose value of `var` wins for `host` (the first source when unknown, as
    /// for a `host:port` in a comma-separated host list).
    pub fn var_origin(&self, host: &str, var: &str) -> PathBuf {
        vars::origin(self, host, var)
            .map(|p| p.to_path_buf())
            .or_else(|| self.sources.first().cloned())
            .unwrap_or_else(|| PathBuf::from("the inventory"))
    }

    /// Same JSON as `ansible-inventory -i ... --list`.
    pub fn list_json(&self) -> Value {
        list::list_json(self)
    }

    /// Same text as `ansible-inventory -i ... --graph [GROUP]` (ends with a newline).
    pub fn graph(&self, root: Option<&str>) -> Result<String, InventoryError> {
        let mut text = String::new();
        list::graph(self, root.unwrap_or("all"), |line| {
            text.push_str(line);
            true
        })?;
        Ok(text)
    }

    /// [`Inventory::graph`] line by line (each with its newline), for output that may be
    /// large; `emit` returns false to stop early.
    pub fn graph_lines(
        &self,
        root: Option<&str>,
        emit: impl FnMut(&str) -> bool,
    ) -> Result<(), InventoryError> {
        list::graph(self, root.unwrap_or("all"), emit)
    }

    /// Connection settings of a host, from its merged variables (templates rendered).
    pub fn connection(&self, host: &str) -> Result<Connection, InventoryError> {
        Connection::from_vars(
            host,
            &self.render_vars(host, || template::World::new(self))?,
        )
    }
}

enum Step {
    Found,
    Exhausted,
    More,
}

/// One side of [`Inventory::creates_loop`]: a depth-first walk along parents or children.
struct Walk<'a> {
    stack: Vec<&'a str>,
    seen: HashSet<&'a str>,
    next: fn(&Group) -> &IndexSet<String>,
}

impl<'a> Walk<'a> {
    fn new(from: &'a str, next: fn(&Group) -> &IndexSet<String>) -> Walk<'a> {
        Walk {
            stack: vec![from],
            seen: HashSet::from([from]),
            next,
        }
    }

    /// Expands one group: `Found` if `target` is next to it.
    fn step(&mut self, inv: &'a Inventory, target: &str) -> Step {
        let Some(g) = self.stack.pop() else {
            return Step::Exhausted;
        };
        if let Some(group) = inv.groups.get(g) {
            for n in (self.next)(group) {
                if n == target {
                    return Step::Found;
                }
                if self.seen.insert(n.as_str()) {
                    self.stack.push(n.as_str());
                }
            }
        }
        Step::More
    }
}

/// A walk through a directory tree (inventory sources, `group_vars/`, `host_vars/`):
/// refuses a directory that leads back into one being read, and stops after
/// [`MAX_DIR_ENTRIES`] entries.
#[derive(Default)]
pub(crate) struct DirWalk {
    open: Vec<((u64, u64), PathBuf)>,
    entries: usize,
}

impl DirWalk {
    pub(crate) fn count(&mut self, path: &Path) -> Result<(), InventoryError> {
        self.entries += 1;
        if self.entries > MAX_DIR_ENTRIES {
            return Err(InventoryError::Directory {
                path: path.to_path_buf(),
                message: format!(
                    "more than {MAX_DIR_ENTRIES} files and directories to read (symlinks that fan out?)"
                ),
            });
        }
        Ok(())
    }

    /// Enters a directory (following a symlink to it).
    pub(crate) fn enter(&mut self, dir: &Path) -> Result<(), InventoryError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(dir).map_err(|e| InventoryError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let id = (meta.dev(), meta.ino());
        if let Some((_, first)) = self.open.iter().find(|(o, _)| *o == id) {
            return Err(InventoryError::Directory {
                path: dir.to_path_buf(),
                message: format!(
                    "leads back to {} (a symlink loop); refusing to read it again",
                    first.display()
                ),
            });
        }
        self.open.push((id, dir.to_path_buf()));
        Ok(())
    }

    pub(crate) fn leave(&mut self) {
        self.open.pop();
    }
}

/// Python's `int(value)` as used for `ansible_group_priority`.
fn priority_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.trunc() as i64)),
        Value::Bool(b) => Some(i64::from(*b)),
        Value::String(s) => s.trim().replace('_', "").parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_name_the_file_that_set_each_variable_last() {
        let a: Arc<Path> = Arc::from(Path::new("/inv/a.yml"));
        let b: Arc<Path> = Arc::from(Path::new("/inv/b.ini"));
        let mut o = Origins::default();
        o.record("x", &a);
        o.record("y", &a);
        assert!(o.others.is_empty(), "one file costs no list");
        o.record("y", &b);
        assert_eq!(o.of("x"), Some(&*a));
        assert_eq!(o.of("y"), Some(&*b));
        // Set again by the first file: that one wins again.
        o.record("y", &a);
        assert_eq!(o.of("y"), Some(&*a));
        assert!(o.others.is_empty());
    }
}
