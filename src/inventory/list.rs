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

/// JSON text exactly as `ansible-inventory` prints it: Python's `json.dumps(...,
/// sort_keys=True, indent=4, ensure_ascii=False)` — keys sorted at every level, four
/// spaces, `", "`/`": "` separators, floats as Python's `repr` (`1500.0`, `1e+16`),
/// non-ASCII text as it is. No trailing newline.
pub fn python_json(v: &Value) -> String {
    let mut out = String::new();
    write_py(v, 0, &mut out);
    out
}

fn write_py(v: &Value, depth: usize, out: &mut String) {
    let pad = |out: &mut String, d: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n(' ', 4 * d));
    };
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (None, Some(u), _) => out.push_str(&u.to_string()),
            (None, None, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(out, depth + 1);
                write_py(item, depth + 1, out);
            }
            pad(out, depth);
            out.push(']');
        }
        Value::Object(_) if super::yaml11::wide_number_text(v).is_some() => {
            out.push_str(super::yaml11::wide_number_text(v).unwrap_or_default());
        }
        Value::Object(_) if super::yaml11::datetime_text(v).is_some() => {
            let iso = super::yaml11::datetime_text(v).unwrap_or_default();
            out.push_str(&serde_json::to_string(iso).unwrap_or_default());
        }
        Value::Object(m) if m.is_empty() => out.push_str("{}"),
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                pad(out, depth + 1);
                out.push_str(&serde_json::to_string(k).unwrap_or_default());
                out.push_str(": ");
                write_py(&m[*k], depth + 1, out);
            }
            pad(out, depth);
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed notation when
/// the exponent is in -4..16 (always with a `.0` or fraction), else `1.5e+16` / `1e-05`.
pub(crate) fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.5e3`, `-2e-7`.
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if neg { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        let body = if exp >= n - 1 {
            // All digits before the point, padded with zeros.
            format!("{digits}{}.0", "0".repeat((exp - (n - 1)) as usize))
        } else if exp >= 0 {
            let split = (exp + 1) as usize;
            format!("{}.{}", &digits[..split], &digits[split..])
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() == 1 {
            digits.clone()
        } else {
            format!("{}.{}", &digits[..1], &digits[1..])
        };
        format!(
            "{sign}{m}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        for (f, want) in [
            (1500.0, "1500.0"),
            (0.5, "0.5"),
            (1.0, "1.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5, "-2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(python_float(f), want, "{f}");
        }
    }

    #[test]
    fn objects_sort_and_indent_as_python_json() {
        let v = serde_json::json!({"b": [1, {"z": null, "a": "é"}], "a": {}, "c": []});
        assert_eq!(
            python_json(&v),
            "{\n    \"a\": {},\n    \"b\": [\n        1,\n        {\n            \"a\": \"é\",\n            \"z\": null\n        }\n    ],\n    \"c\": []\n}"
        );
    }
}
