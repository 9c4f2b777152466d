//! `ansible-inventory --list` JSON and `--graph` text renderings.

use super::{Group, Inventory, InventoryError};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

pub(crate) fn list_json(inv: &Inventory) -> Value {
    let hosts = inv.hosts();
    let available: HashSet<&str> = hosts.iter().map(String::as_str).collect();
    let mut out = Map::new();
    // Every group reachable from `all`, each once; a worklist, so no nesting depth can
    // overflow the stack.
    let mut seen: HashSet<&str> = HashSet::from(["all"]);
    let mut todo: Vec<&str> = vec!["all"];
    while let Some(name) = todo.pop() {
        let Some(g) = inv.groups.get(name) else {
            continue;
        };
        if let Some(entry) = format_group(name, g, &available) {
            out.insert(name.to_string(), entry);
        }
        for c in g.children.iter().rev() {
            if seen.insert(c.as_str()) {
                todo.push(c.as_str());
            }
        }
    }
    let mut hostvars = Map::new();
    for h in &hosts {
        let v = inv.host_vars(h);
        if !v.is_empty() {
            hostvars.insert(h.clone(), Value::Object(v));
        }
    }
    out.insert(
        "_meta".into(),
        json!({"hostvars": hostvars, "profile": "inventory_legacy"}),
    );
    out.sort_keys();
    Value::Object(out)
}

fn format_group(name: &str, g: &Group, available: &HashSet<&str>) -> Option<Value> {
    let mut entry = Map::new();
    if name != "all" {
        let hosts: Vec<Value> = g
            .hosts
            .iter()
            .filter(|h| available.contains(h.as_str()))
            .map(|h| Value::String(h.clone()))
            .collect();
        if !hosts.is_empty() {
            entry.insert("hosts".into(), Value::Array(hosts));
        }
    }
    let children: Vec<Value> = g
        .children
        .iter()
        .map(|c| Value::String(c.clone()))
        .collect();
    if !children.is_empty() {
        entry.insert("children".into(), Value::Array(children));
    }
    (!entry.is_empty()).then_some(Value::Object(entry))
}

/// The graph's text, each line (with its newline) handed to `emit` as it is made, so
/// a deep graph's output never sits in memory at once; `emit` returns false to stop.
pub(crate) fn graph(
    inv: &Inventory,
    root: &str,
    mut emit: impl FnMut(&str) -> bool,
) -> Result<(), InventoryError> {
    if !inv.groups.contains_key(root) {
        return Err(InventoryError::UnknownGroup(root.to_string()));
    }
    // Depth first as `ansible-inventory --graph` prints it: a group's line, its child
    // groups' trees, then its hosts. A worklist instead of recursion.
    enum Item<'a> {
        Group(&'a str, usize),
        Hosts(&'a str, usize),
    }
    let mut out = String::new();
    let mut todo = vec![Item::Group(root, 0)];
    while let Some(item) = todo.pop() {
        match item {
            Item::Group(name, depth) => {
                if !line(&mut out, &format!("@{name}:"), depth, &mut emit) {
                    break;
                }
                let Some(g) = inv.groups.get(name) else {
                    continue;
                };
                if name != "all" {
                    todo.push(Item::Hosts(name, depth + 1));
                }
                for c in g.children.iter().rev() {
                    todo.push(Item::Group(c, depth + 1));
                }
            }
            Item::Hosts(name, depth) => {
                for h in inv.groups.get(name).into_iter().flat_map(|g| &g.hosts) {
                    if !line(&mut out, h, depth, &mut emit) {
                        return Ok(());
                    }
                }
            }
        }
    }
    Ok(())
}

fn line(buf: &mut String, name: &str, depth: usize, emit: &mut impl FnMut(&str) -> bool) -> bool {
    buf.clear();
    if depth > 0 {
        buf.push_str(&"  |".repeat(depth));
        buf.push_str("--");
    }
    buf.push_str(name);
    buf.push('\n');
    emit(buf)
}
