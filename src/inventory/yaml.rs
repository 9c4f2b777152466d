//! YAML/JSON inventory sources (`all:` root, nested `hosts:`/`vars:`/`children:`), read as
//! Ansible reads them (YAML 1.1, see `yaml11`), every structural error with line/column.

use super::yaml11::{self, Node, NodeValue, Pos, YamlError};
use super::{Inventory, InventoryError, parse_err, priority_value, range};
use serde_json::Value;
use std::path::Path;

/// One group's definition as written in the file.
enum GroupVal {
    Body(Vec<Section>),
    Empty,
    /// Not a mapping: Ansible skips it with a warning.
    Skip,
}

enum Section {
    Vars(Vec<(String, Value)>),
    Children(Vec<(String, GroupVal)>),
    Hosts(Vec<HostEntry>),
    Ignored,
}

/// A host key, checked here (where errors still have a line) and expanded when applied
/// (where the inventory's host limit is known).
struct HostEntry {
    pattern: range::HostPattern,
    pos: Pos,
    vars: Vec<(String, Value)>,
}

/// A structural error at a node.
fn wrong(node: &Node, expected: &str) -> YamlError {
    YamlError {
        pos: node.pos,
        message: format!("invalid type: {}, expected {expected}", node.value.kind()),
    }
}

fn top_level(node: &Node) -> Result<Vec<(String, GroupVal)>, YamlError> {
    let NodeValue::Map(pairs) = &node.value else {
        return Err(wrong(
            node,
            "a mapping of group names (YAML inventory starts with `all:`)",
        ));
    };
    let mut out = Vec::new();
    for (k, _, v) in pairs {
        if k == "plugin" {
            return Err(YamlError {
                pos: v.pos,
                message: "plugin configuration YAML file, not a YAML inventory (expected group names at top level)".into(),
            });
        }
        out.push((k.clone(), group_val(v)?));
    }
    Ok(out)
}

fn group_val(node: &Node) -> Result<GroupVal, YamlError> {
    let pairs = match &node.value {
        NodeValue::Map(p) => p,
        NodeValue::Scalar(Value::Null) => return Ok(GroupVal::Empty),
        _ => return Ok(GroupVal::Skip),
    };
    let mut out = Vec::new();
    for (k, _, v) in pairs {
        out.push(match k.as_str() {
            "vars" => Section::Vars(vars_section(v)?),
            "children" => Section::Children(children_section(v)?),
            "hosts" => Section::Hosts(hosts_section(v)?),
            _ => Section::Ignored,
        });
    }
    Ok(GroupVal::Body(out))
}

fn vars_section(node: &Node) -> Result<Vec<(String, Value)>, YamlError> {
    match &node.value {
        NodeValue::Map(pairs) => pairs
            .iter()
            .map(|(k, _, v)| {
                let val = v.to_json();
                if k == "ansible_group_priority" && priority_value(&val).is_none() {
                    return Err(YamlError {
                        pos: v.pos,
                        message: format!("ansible_group_priority must be an integer, found {val}"),
                    });
                }
                Ok((k.clone(), val))
            })
            .collect(),
        NodeValue::Scalar(Value::Null) => Ok(Vec::new()),
        NodeValue::Scalar(Value::String(s)) => Ok(vec![(s.clone(), Value::Null)]),
        _ => Err(wrong(node, "a mapping of variables")),
    }
}

fn children_section(node: &Node) -> Result<Vec<(String, GroupVal)>, YamlError> {
    match &node.value {
        NodeValue::Map(pairs) => pairs
            .iter()
            .map(|(k, _, v)| Ok((k.clone(), group_val(v)?)))
            .collect(),
        NodeValue::Scalar(Value::Null) => Ok(Vec::new()),
        NodeValue::Scalar(Value::String(s)) => Ok(vec![(s.clone(), GroupVal::Empty)]),
        _ => Err(wrong(node, "a mapping of child group names")),
    }
}

fn host_pattern(key: &str, pos: Pos) -> Result<range::HostPattern, YamlError> {
    range::HostPattern::parse(key).map_err(|message| YamlError { pos, message })
}

fn hosts_section(node: &Node) -> Result<Vec<HostEntry>, YamlError> {
    match &node.value {
        NodeValue::Map(pairs) => pairs
            .iter()
            .map(|(k, kpos, v)| {
                let vars = match &v.value {
                    NodeValue::Map(vp) => vp
                        .iter()
                        .map(|(k, _, n)| (k.clone(), n.to_json()))
                        .collect(),
                    NodeValue::Scalar(Value::Null) => Vec::new(),
                    _ => return Err(wrong(v, "a mapping of host variables (or nothing)")),
                };
                Ok(HostEntry {
                    pattern: host_pattern(k, *kpos)?,
                    pos: *kpos,
                    vars,
                })
            })
            .collect(),
        NodeValue::Scalar(Value::Null) => Ok(Vec::new()),
        NodeValue::Scalar(Value::String(s)) => Ok(vec![HostEntry {
            pattern: host_pattern(s, node.pos)?,
            pos: node.pos,
            vars: Vec::new(),
        }]),
        _ => Err(wrong(
            node,
            "a mapping of host names (each ending with ':')",
        )),
    }
}

pub(crate) fn yaml_error(path: &Path, e: &YamlError) -> InventoryError {
    parse_err(path, e.pos.line, Some(e.pos.col), e.message.clone())
}

/// True when `text` parses as a YAML mapping (used for extension-less sources, which Ansible tries as YAML first).
pub(crate) fn looks_like_yaml_inventory(text: &str) -> bool {
    matches!(
        yaml11::parse(text),
        Ok(Some(Node {
            value: NodeValue::Map(_),
            ..
        }))
    )
}

/// Parses a YAML inventory file into `inv`.
pub(crate) fn parse(inv: &mut Inventory, path: &Path, text: &str) -> Result<(), InventoryError> {
    let node = yaml11::parse(text).map_err(|e| yaml_error(path, &e))?;
    let top = match node {
        Some(n) => Some(top_level(&n).map_err(|e| yaml_error(path, &e))?),
        None => None,
    };
    let Some(top) = top else {
        return Err(parse_err(
            path,
            1,
            None,
            "empty YAML inventory (expected a mapping starting with `all:`)",
        ));
    };
    for (name, val) in top {
        apply_group(inv, path, &name, val)?;
    }
    Ok(())
}

fn apply_group(
    inv: &mut Inventory,
    path: &Path,
    name: &str,
    val: GroupVal,
) -> Result<(), InventoryError> {
    let graph_err = |m: String| InventoryError::Graph {
        source_file: path.to_path_buf(),
        message: m,
    };
    let body = match val {
        GroupVal::Skip => return Ok(()),
        GroupVal::Empty => {
            inv.add_group(name);
            return Ok(());
        }
        GroupVal::Body(b) => b,
    };
    inv.add_group(name);
    for sec in body {
        match sec {
            Section::Vars(vars) => {
                for (k, v) in vars {
                    inv.set_group_var(name, &k, v).map_err(graph_err)?;
                }
            }
            Section::Children(children) => {
                for (child, cv) in children {
                    let skipped = matches!(cv, GroupVal::Skip);
                    apply_group(inv, path, &child, cv)?;
                    if skipped && !inv.groups.contains_key(&child) {
                        return Err(graph_err(format!(
                            "child '{child}' of group '{name}' is not a group definition (expected a mapping or nothing)"
                        )));
                    }
                    inv.add_child_group(name, &child).map_err(graph_err)?;
                }
            }
            Section::Hosts(hosts) => {
                for entry in hosts {
                    let names = entry
                        .pattern
                        .expand(inv.hosts_left())
                        .map_err(|m| parse_err(path, entry.pos.line, Some(entry.pos.col), m))?;
                    for h in &names {
                        inv.add_host(h, Some(name), entry.pattern.port);
                        for (k, v) in &entry.vars {
                            inv.set_host_var(h, k, v.clone());
                        }
                    }
                }
            }
            Section::Ignored => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(text: &str) -> String {
        let mut inv = Inventory::default();
        parse(&mut inv, Path::new("inv.yml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn structural_errors_have_positions() {
        let e = err_of("all:\n  hosts:\n    - a\n    - b\n");
        assert!(e.starts_with("inv.yml:3:"), "{e}");
        assert!(e.contains("mapping of host names"), "{e}");
        let e = err_of("all:\n  children:\n    g:\n      hosts:\n        gpu[01:1]:\n");
        assert!(e.starts_with("inv.yml:5:"), "{e}");
        assert!(e.contains("equal-length"), "{e}");
        let e = err_of("all:\n  hosts: {a: 1}\n");
        assert!(e.starts_with("inv.yml:2:"), "{e}");
        let e = err_of("all:\n  hosts:\n    a:\n   b: [\n");
        assert!(e.starts_with("inv.yml:"), "{e}");
        let e = err_of("- a\n- b\n");
        assert!(e.starts_with("inv.yml:1:"), "{e}");
        let e = err_of("all:\n  vars:\n    ansible_group_priority: high\n");
        assert!(e.starts_with("inv.yml:3:"), "{e}");
    }
}
