//! `ansible-inventory --list` JSON and `--graph` text renderings.

use super::{Inventory, InventoryError};
use serde_json::{Map, Value, json};
use std::collections::HashSet;

pub(crate) fn list_json(inv: &Inventory) -> Value {
    let available: HashSet<String> = inv.hosts().into_iter().collect();
    let mut out = Map::new();
    let mut seen = HashSet::new();
    format_group(inv, "all", &available, &mut seen, &mut out);
    let mut hostvars = Map::new();
    for h in inv.hosts() {
        let v = inv.host_vars(&h);
        if !v.is_empty() {
            hostvars.insert(h, Value::Object(v));
        }
    }
    out.insert(
        "_meta".into(),
        json!({"hostvars": hostvars, "profile": "inventory_legacy"}),
    );
    out.sort_keys();
    Value::Object(out)
}

fn format_group(
    inv: &Inventory,
    name: &str,
    available: &HashSet<String>,
    seen: &mut HashSet<String>,
    out: &mut Map<String, Value>,
) {
    let Some(g) = inv.groups.get(name) else {
        return;
    };
    let mut entry = Map::new();
    if name != "all" {
        let hosts: Vec<Value> = g
            .hosts
            .iter()
            .filter(|h| available.contains(*h))
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
    if !entry.is_empty() {
        out.insert(name.to_string(), Value::Object(entry));
    }
    for c in &g.children {
        if seen.insert(c.clone()) {
            format_group(inv, c, available, seen, out);
        }
    }
}

pub(crate) fn graph(inv: &Inventory, root: &str) -> Result<String, InventoryError> {
    if !inv.groups.contains_key(root) {
        return Err(InventoryError::UnknownGroup(root.to_string()));
    }
    let mut lines = Vec::new();
    graph_group(inv, root, 0, &mut lines);
    let mut s = lines.join("\n");
    s.push('\n');
    Ok(s)
}

fn graph_name(name: &str, depth: usize) -> String {
    if depth == 0 {
        name.to_string()
    } else {
        format!("{}--{name}", "  |".repeat(depth))
    }
}

fn graph_group(inv: &Inventory, name: &str, depth: usize, out: &mut Vec<String>) {
    out.push(graph_name(&format!("@{name}:"), depth));
    let Some(g) = inv.groups.get(name) else {
        return;
    };
    for c in &g.children {
        graph_group(inv, c, depth + 1, out);
    }
    if name != "all" {
        for h in &g.hosts {
            out.push(graph_name(h, depth + 1));
        }
    }
}
