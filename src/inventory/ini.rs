//! INI inventory sources: sections, `:vars`/`:children`, host lines (shlex tokens, `host:port`, ranges) and Python-literal typing of values.

use super::{Inventory, InventoryError, parse_err, range};
use indexmap::IndexMap;
use serde_json::Value;
use std::path::Path;

#[derive(Clone, Copy, PartialEq)]
enum State {
    Hosts,
    Children,
    Vars,
}

struct Pending {
    line: usize,
    vars_only: bool,
    parents: Vec<String>,
}

fn is_group_name_char(c: char) -> bool {
    c != ':' && c != ']' && !c.is_whitespace()
}

/// `[name]` or `[name:tag]` followed by optional whitespace and `#comment`.
fn parse_section(line: &str) -> Option<(String, Option<String>)> {
    let rest = line.strip_prefix('[')?;
    let name_len = rest
        .find(|c: char| !is_group_name_char(c))
        .unwrap_or(rest.len());
    if name_len == 0 {
        return None;
    }
    let name = &rest[..name_len];
    let mut rest = &rest[name_len..];
    let mut tag = None;
    if let Some(r) = rest.strip_prefix(':') {
        let tl = r
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(r.len());
        if tl == 0 {
            return None;
        }
        tag = Some(r[..tl].to_string());
        rest = &r[tl..];
    }
    let rest = rest.strip_prefix(']')?.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Some((name.to_string(), tag))
    } else {
        None
    }
}

fn parse_group_name(line: &str) -> Option<String> {
    let n = line
        .find(|c: char| !is_group_name_char(c))
        .unwrap_or(line.len());
    if n == 0 {
        return None;
    }
    let rest = line[n..].trim_start();
    (rest.is_empty() || rest.starts_with('#')).then(|| line[..n].to_string())
}

/// Parses one INI inventory file into `inv`.
pub(crate) fn parse(inv: &mut Inventory, path: &Path, text: &str) -> Result<(), InventoryError> {
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    // Groups named before their own section, in the order first named.
    let mut pending: IndexMap<String, Pending> = IndexMap::new();
    for (idx, raw) in text.lines().enumerate() {
        let lineno = idx + 1;
        let err = |msg: String| parse_err(path, lineno, None, msg);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some((name, tag)) = parse_section(line) {
            state = match tag.as_deref() {
                None | Some("hosts") => State::Hosts,
                Some("children") => State::Children,
                Some("vars") => State::Vars,
                Some(other) => {
                    return Err(err(format!(
                        "section [{name}:{other}] has unknown type '{other}' (expected hosts, children or vars)"
                    )));
                }
            };
            group = name;
            if !inv.groups.contains_key(&group) {
                if state == State::Vars && !pending.contains_key(&group) {
                    pending.insert(
                        group.clone(),
                        Pending {
                            line: lineno,
                            vars_only: true,
                            parents: vec![],
                        },
                    );
                }
                inv.add_group(&group);
            }
            if state != State::Vars
                && let Some(p) = pending.get(&group)
            {
                if p.vars_only {
                    pending.shift_remove(&group);
                } else {
                    add_pending_children(inv, &group, &mut pending).map_err(err)?;
                }
            }
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            return Err(err(format!(
                "invalid section entry '{line}': expected [group], [group:vars] or [group:children] with no spaces"
            )));
        }
        match state {
            State::Hosts => {
                let tokens = shlex_split(line)
                    .map_err(|e| err(format!("error parsing host definition '{line}': {e}")))?;
                let Some(first) = tokens.first() else {
                    continue;
                };
                let (hosts, port) =
                    range::expand_host_pattern(first, inv.hosts_left()).map_err(&err)?;
                if first.trim_end().ends_with(':') && port.is_none() {
                    return Err(err(format!(
                        "invalid host pattern '{first}': a trailing ':' is reserved for a port number"
                    )));
                }
                if hosts.iter().any(|h| h.trim() == "---") {
                    return Err(err(format!(
                        "invalid host pattern '{first}': '---' is normally a sign this is a YAML file"
                    )));
                }
                let mut vars: Vec<(String, Value)> = Vec::new();
                for t in &tokens[1..] {
                    let Some((k, v)) = t.split_once('=') else {
                        return Err(err(format!(
                            "expected key=value host variable assignment, got '{t}'"
                        )));
                    };
                    vars.push((k.to_string(), parse_value(v)));
                }
                for h in hosts {
                    inv.add_host(&h, Some(&group), port);
                    for (k, v) in &vars {
                        inv.set_host_var(&h, k, v.clone());
                    }
                }
            }
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(err(format!(
                        "expected key=value in [{group}:vars], got '{line}'"
                    )));
                };
                inv.set_group_var(&group, k.trim(), parse_value(v.trim()))
                    .map_err(&err)?;
            }
            State::Children => {
                let Some(child) = parse_group_name(line) else {
                    return Err(err(format!(
                        "expected a group name in [{group}:children], got '{line}'"
                    )));
                };
                if inv.groups.contains_key(&child) {
                    inv.add_child_group(&group, &child).map_err(&err)?;
                } else if let Some(p) = pending.get_mut(&child) {
                    p.parents.push(group.clone());
                } else {
                    pending.insert(
                        child,
                        Pending {
                            line: lineno,
                            vars_only: false,
                            parents: vec![group.clone()],
                        },
                    );
                }
            }
        }
    }
    if let Some((name, p)) = pending.first() {
        let msg = if p.vars_only {
            format!("section [{name}:vars] is not valid for undefined group '{name}'")
        } else {
            format!(
                "section [{}:children] includes undefined group '{name}' (expected a [{name}] section)",
                p.parents.last().map(String::as_str).unwrap_or("?")
            )
        };
        return Err(parse_err(path, p.line, None, msg));
    }
    Ok(())
}

/// Links a group, now defined, under the groups that named it as a child before, and
/// those in turn under theirs, depth first. A worklist rather than recursion: a chain
/// of 20,000 groups named before their sections must not overflow the stack.
fn add_pending_children(
    inv: &mut Inventory,
    group: &str,
    pending: &mut IndexMap<String, Pending>,
) -> Result<(), String> {
    struct Frame {
        group: String,
        parents: Vec<String>,
        next: usize,
    }
    let frame = |g: &str, pending: &IndexMap<String, Pending>| {
        pending.get(g).map(|p| Frame {
            group: g.to_string(),
            parents: p.parents.clone(),
            next: 0,
        })
    };
    let mut stack: Vec<Frame> = frame(group, pending).into_iter().collect();
    while let Some(top) = stack.last_mut() {
        let Some(parent) = top.parents.get(top.next).cloned() else {
            pending.shift_remove(&top.group);
            stack.pop();
            continue;
        };
        top.next += 1;
        inv.add_child_group(&parent, &top.group)?;
        // (A parent already on the stack would be a loop, refused just above.)
        if pending.get(&parent).is_some_and(|p| !p.vars_only)
            && let Some(f) = frame(&parent, pending)
        {
            stack.push(f);
        }
    }
    Ok(())
}

/// POSIX `shlex.split(line, comments=True)`.
pub(crate) fn shlex_split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    let mut tok = String::new();
    let mut in_tok = false;
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_tok {
                    out.push(std::mem::take(&mut tok));
                    in_tok = false;
                }
            }
            '#' => break,
            '\\' => {
                let n = chars.next().ok_or("no escaped character")?;
                tok.push(n);
                in_tok = true;
            }
            '\'' => {
                in_tok = true;
                loop {
                    match chars.next() {
                        None => return Err("no closing quotation".into()),
                        Some('\'') => break,
                        Some(x) => tok.push(x),
                    }
                }
            }
            '"' => {
                in_tok = true;
                loop {
                    match chars.next() {
                        None => return Err("no closing quotation".into()),
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some('"') | Some('\\') => {
                                if let Some(x) = chars.next() {
                                    tok.push(x);
                                }
                            }
                            _ => tok.push('\\'),
                        },
                        Some(x) => tok.push(x),
                    }
                }
            }
            c => {
                tok.push(c);
                in_tok = true;
            }
        }
    }
    if in_tok {
        out.push(tok);
    }
    Ok(out)
}

/// Ansible's INI value typing: `ast.literal_eval` when it succeeds, else the raw string.
pub(crate) fn parse_value(v: &str) -> Value {
    match super::pylit::literal_eval(v) {
        Some(val) => val,
        None => Value::String(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shlex() {
        assert_eq!(
            shlex_split("a b=\"c d\" e='f g' # x").unwrap(),
            ["a", "b=c d", "e=f g"]
        );
        assert_eq!(shlex_split("a b=c#d").unwrap(), ["a", "b=c"]);
        assert!(shlex_split("a b='c").is_err());
    }

    #[test]
    fn sections() {
        assert_eq!(parse_section("[gpus]"), Some(("gpus".into(), None)));
        assert_eq!(
            parse_section("[gpus:vars] # c"),
            Some(("gpus".into(), Some("vars".into())))
        );
        assert_eq!(parse_section("[gp us]"), None);
    }

    #[test]
    fn errors_carry_line() {
        let mut inv = Inventory::default();
        let e = parse(&mut inv, Path::new("inv.ini"), "[a]\nh1\n[a:bogus]\n").unwrap_err();
        assert!(e.to_string().starts_with("inv.ini:3: "), "{e}");
        let mut inv = Inventory::default();
        let e = parse(&mut inv, Path::new("inv.ini"), "[a]\nh1 novalue\n").unwrap_err();
        assert!(
            e.to_string().starts_with("inv.ini:2: ") && e.to_string().contains("key=value"),
            "{e}"
        );
        let mut inv = Inventory::default();
        let e = parse(&mut inv, Path::new("inv.ini"), "[a:children]\nb\n").unwrap_err();
        assert!(
            e.to_string().starts_with("inv.ini:2: ") && e.to_string().contains("'b'"),
            "{e}"
        );
        let mut inv = Inventory::default();
        let e = parse(&mut inv, Path::new("inv.ini"), "[a]\nh[01:1]\n").unwrap_err();
        assert!(
            e.to_string().starts_with("inv.ini:2: ") && e.to_string().contains("equal-length"),
            "{e}"
        );
        let mut inv = Inventory::default();
        let e = parse(&mut inv, Path::new("inv.ini"), "[a]\nh1 x='open\n").unwrap_err();
        assert!(
            e.to_string().starts_with("inv.ini:2: ") && e.to_string().contains("quotation"),
            "{e}"
        );
    }
}
