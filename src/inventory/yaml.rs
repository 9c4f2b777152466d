//! YAML/JSON inventory sources (`all:` root, nested `hosts:`/`vars:`/`children:`), deserialized so that every structural error carries line/column.

use super::{Inventory, InventoryError, parse_err, priority_value, range};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;
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
    vars: Vec<(String, Value)>,
}

struct TopLevel(Vec<(String, GroupVal)>);

impl<'de> Deserialize<'de> for TopLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of group names (YAML inventory starts with `all:`)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<TopLevel, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    if k == "plugin" {
                        return Err(de::Error::custom(
                            "plugin configuration YAML file, not a YAML inventory (expected group names at top level)",
                        ));
                    }
                    out.push((k, m.next_value::<GroupVal>()?));
                }
                Ok(TopLevel(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for GroupVal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GroupVal;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a group definition (mapping with hosts/vars/children)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<GroupVal, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    let sec = match k.as_str() {
                        "vars" => Section::Vars(m.next_value::<VarsSec>()?.0),
                        "children" => Section::Children(m.next_value::<ChildrenSec>()?.0),
                        "hosts" => Section::Hosts(m.next_value::<HostsSec>()?.0),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                            Section::Ignored
                        }
                    };
                    out.push(sec);
                }
                Ok(GroupVal::Body(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<GroupVal, E> {
                Ok(GroupVal::Empty)
            }
            fn visit_none<E: de::Error>(self) -> Result<GroupVal, E> {
                Ok(GroupVal::Empty)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<GroupVal, E> {
                Ok(GroupVal::Skip)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<GroupVal, E> {
                Ok(GroupVal::Skip)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<GroupVal, E> {
                Ok(GroupVal::Skip)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<GroupVal, E> {
                Ok(GroupVal::Skip)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<GroupVal, E> {
                Ok(GroupVal::Skip)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<GroupVal, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(GroupVal::Skip)
            }
        }
        d.deserialize_any(V)
    }
}

macro_rules! section_visitor {
    ($ty:ident, $item:ty, $what:literal, |$m:ident, $k:ident| $body:expr, |$s:ident| $single:expr) => {
        struct $ty(Vec<$item>);
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($what)
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut $m: A) -> Result<$ty, A::Error> {
                        let mut out = Vec::new();
                        while let Some($k) = $m.next_key::<String>()? {
                            out.push($body);
                        }
                        Ok($ty(out))
                    }
                    fn visit_str<E: de::Error>(self, $s: &str) -> Result<$ty, E> {
                        Ok($ty(vec![$single]))
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<$ty, E> {
                        Ok($ty(Vec::new()))
                    }
                    fn visit_none<E: de::Error>(self) -> Result<$ty, E> {
                        Ok($ty(Vec::new()))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

section_visitor!(
    VarsSec,
    (String, Value),
    "a mapping of variables",
    |m, k| {
        let v: Value = m.next_value()?;
        if k == "ansible_group_priority" && priority_value(&v).is_none() {
            return Err(de::Error::custom(format!(
                "ansible_group_priority must be an integer, found {v}"
            )));
        }
        (k, v)
    },
    |s| (s.to_string(), Value::Null)
);

section_visitor!(
    ChildrenSec,
    (String, GroupVal),
    "a mapping of child group names",
    |m, k| (k, m.next_value::<GroupVal>()?),
    |s| (s.to_string(), GroupVal::Empty)
);

section_visitor!(
    HostsSec,
    HostEntry,
    "a mapping of host names (each ending with ':')",
    |m, k| {
        let vars = m.next_value::<HostVars>()?.0;
        let pattern = range::HostPattern::parse(&k).map_err(de::Error::custom)?;
        HostEntry { pattern, vars }
    },
    |s| {
        let pattern = range::HostPattern::parse(s).map_err(de::Error::custom)?;
        HostEntry {
            pattern,
            vars: Vec::new(),
        }
    }
);

struct HostVars(Vec<(String, Value)>);
impl<'de> Deserialize<'de> for HostVars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HostVars;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of host variables (or nothing)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<HostVars, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    out.push((k, m.next_value::<Value>()?));
                }
                Ok(HostVars(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<HostVars, E> {
                Ok(HostVars(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<HostVars, E> {
                Ok(HostVars(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

pub(crate) fn yaml_error(path: &Path, e: &serde_norway::Error) -> InventoryError {
    let msg = e.to_string();
    // Drop serde_norway's own " at line X column Y" suffix; we print file:line:col in front.
    let msg = match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    match e.location() {
        Some(l) => parse_err(path, l.line(), Some(l.column()), msg),
        None => parse_err(path, 1, None, msg),
    }
}

/// True when `text` parses as a YAML mapping (used for extension-less sources, which Ansible tries as YAML first).
pub(crate) fn looks_like_yaml_inventory(text: &str) -> bool {
    matches!(
        serde_norway::from_str::<serde_norway::Value>(text),
        Ok(serde_norway::Value::Mapping(_))
    )
}

/// Parses a YAML inventory file into `inv`.
pub(crate) fn parse(inv: &mut Inventory, path: &Path, text: &str) -> Result<(), InventoryError> {
    let top: Option<TopLevel> = serde_norway::from_str(text).map_err(|e| yaml_error(path, &e))?;
    let Some(top) = top else {
        return Err(parse_err(
            path,
            1,
            None,
            "empty YAML inventory (expected a mapping starting with `all:`)",
        ));
    };
    for (name, val) in top.0 {
        apply_group(inv, path, text, &name, val)?;
    }
    Ok(())
}

fn apply_group(
    inv: &mut Inventory,
    path: &Path,
    text: &str,
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
                    apply_group(inv, path, text, &child, cv)?;
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
                    let names = entry.pattern.expand(inv.hosts_left()).map_err(|m| {
                        // The first line that holds the key: serde no longer knows it.
                        let line = text
                            .lines()
                            .position(|l| l.contains(&entry.pattern.raw))
                            .map_or(1, |i| i + 1);
                        parse_err(path, line, None, m)
                    })?;
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
