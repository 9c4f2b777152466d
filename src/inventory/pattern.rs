//! Ansible host patterns: splitting (`,` / `:` / IPv6-safe), processing order (unions, `&`, `!`), globs, `~regex`, positional subscripts and `@file` limits.

use super::{Inventory, InventoryError, range};
use regex::Regex;
use std::collections::HashSet;
use std::sync::OnceLock;

const LOCALHOST: &[&str] = &["127.0.0.1", "localhost", "::1"];

fn perr(pattern: &str, message: impl Into<String>) -> InventoryError {
    InventoryError::Pattern {
        pattern: pattern.to_string(),
        message: message.into(),
    }
}

/// Splits a pattern into terms: on commas if present, else on `:` outside `[...]`, unless the
/// whole thing is a host address (so `fe80::1` or `host[1:3]` stay one term).
pub(crate) fn split_host_pattern(pattern: &str) -> Vec<String> {
    static TERM: OnceLock<Option<Regex>> = OnceLock::new();
    let parts: Vec<String> = if pattern.contains(',') {
        pattern.split(',').map(str::to_string).collect()
    } else if range::parse_address(pattern, true).is_some() {
        vec![pattern.to_string()]
    } else {
        match TERM.get_or_init(|| Regex::new(r"(?:[^\s:\[\]]|\[[^\]]*\])+").ok()) {
            Some(re) => re
                .find_iter(pattern)
                .map(|m| m.as_str().to_string())
                .collect(),
            None => vec![pattern.to_string()],
        }
    };
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Unions first, then intersections (`&`), then exclusions (`!`); only `&`/`!` implies `all`.
pub(crate) fn order_patterns(terms: &[String]) -> Vec<String> {
    let mut regular = Vec::new();
    let mut inter = Vec::new();
    let mut excl = Vec::new();
    for t in terms {
        if t.is_empty() {
            continue;
        }
        if t.starts_with('!') {
            excl.push(t.clone());
        } else if t.starts_with('&') {
            inter.push(t.clone());
        } else {
            regular.push(t.clone());
        }
    }
    if regular.is_empty() {
        regular.push("all".into());
    }
    regular.into_iter().chain(inter).chain(excl).collect()
}

/// Entry point for `Inventory::select`.
pub(crate) fn select(inv: &Inventory, pattern: &str) -> Result<Vec<String>, InventoryError> {
    let terms = split_host_pattern(pattern);
    let (files, main): (Vec<String>, Vec<String>) =
        terms.into_iter().partition(|t| t.starts_with('@'));
    let mut hosts = evaluate(inv, &main)?;
    if !files.is_empty() {
        // `@file` behaves like Ansible's `--limit @file`: its lines form a subset pattern.
        let mut lines = Vec::new();
        for f in &files {
            let path = &f[1..];
            let text = crate::input::read_text(path)
                .map_err(|e| perr(f, format!("cannot read limit file '{path}': {e}")))?;
            lines.extend(
                text.split('\n')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
        let subset: HashSet<String> = evaluate(inv, &lines)?.into_iter().collect();
        hosts.retain(|h| subset.contains(h));
    }
    if hosts.is_empty() && LOCALHOST.contains(&pattern) {
        hosts.push(pattern.to_string());
    }
    Ok(hosts)
}

fn evaluate(inv: &Inventory, terms: &[String]) -> Result<Vec<String>, InventoryError> {
    let mut hosts: Vec<String> = Vec::new();
    for p in order_patterns(terms) {
        if inv.hosts.contains_key(&p) {
            hosts.push(p);
            continue;
        }
        let that = match_one(inv, &p)?;
        if p.starts_with('!') {
            let that: HashSet<&String> = that.iter().collect();
            hosts.retain(|h| !that.contains(h));
        } else if p.starts_with('&') {
            let that: HashSet<&String> = that.iter().collect();
            hosts.retain(|h| that.contains(h));
        } else {
            let existing: HashSet<String> = hosts.iter().cloned().collect();
            hosts.extend(that.into_iter().filter(|h| !existing.contains(h)));
        }
    }
    let mut seen = HashSet::new();
    hosts.retain(|h| seen.insert(h.clone()));
    Ok(hosts)
}

#[derive(Debug, PartialEq)]
enum Subscript {
    Index(i64),
    Range(usize, Option<usize>),
}

fn split_subscript(pattern: &str) -> (String, Option<Subscript>) {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    if pattern.starts_with('~') {
        return (pattern.to_string(), None);
    }
    let re = RE.get_or_init(|| {
        Regex::new(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*)|:([0-9]+))\]$").ok()
    });
    let Some(c) = re.as_ref().and_then(|re| re.captures(pattern)) else {
        return (pattern.to_string(), None);
    };
    let base = c[1].to_string();
    if let Some(i) = c.get(2) {
        return (base, i.as_str().parse().ok().map(Subscript::Index));
    }
    if let Some(e) = c.get(6) {
        // `[:N]` as documented (== `[0:N]`); ansible-core itself treats it as a glob.
        let end: usize = e.as_str().parse().unwrap_or(0);
        return (base, Some(Subscript::Range(0, Some(end))));
    }
    let start: usize = c.get(3).and_then(|m| m.as_str().parse().ok()).unwrap_or(0);
    let end = c
        .get(5)
        .map(|m| m.as_str())
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    (base, Some(Subscript::Range(start, end)))
}

fn apply_subscript(
    term: &str,
    hosts: Vec<String>,
    sub: Option<Subscript>,
) -> Result<Vec<String>, InventoryError> {
    let Some(sub) = sub else { return Ok(hosts) };
    if hosts.is_empty() {
        return Ok(hosts);
    }
    let len = hosts.len();
    let index = |i: i64| -> Result<Vec<String>, InventoryError> {
        let idx = if i < 0 { len as i64 + i } else { i };
        if idx < 0 || idx >= len as i64 {
            return Err(perr(
                term,
                format!("no hosts matched the subscript (only {len} hosts)"),
            ));
        }
        Ok(vec![hosts[idx as usize].clone()])
    };
    match sub {
        Subscript::Index(i) => index(i),
        // Python `if end:` treats an end of 0 like a single index.
        Subscript::Range(start, Some(0)) => index(start as i64),
        Subscript::Range(start, end) => {
            let end = end.unwrap_or(len - 1);
            let stop = (end + 1).min(len);
            Ok(if start >= stop {
                Vec::new()
            } else {
                hosts[start..stop].to_vec()
            })
        }
    }
}

fn match_one(inv: &Inventory, term: &str) -> Result<Vec<String>, InventoryError> {
    let pattern = term.strip_prefix(['&', '!']).unwrap_or(term);
    let (expr, sub) = split_subscript(pattern);
    let hosts = enumerate(inv, term, &expr)?;
    apply_subscript(term, hosts, sub)
}

fn enumerate(inv: &Inventory, term: &str, pattern: &str) -> Result<Vec<String>, InventoryError> {
    if pattern.is_empty() {
        return Err(perr(term, "empty pattern term"));
    }
    let re = compile(term, pattern)?;
    let mut results = Vec::new();
    let groups: Vec<&String> = inv.groups.keys().filter(|g| re.is_match(g)).collect();
    for g in &groups {
        results.extend(inv.group_hosts(g));
    }
    if groups.is_empty() || pattern.starts_with('~') || pattern.contains(['.', '?', '*', '[']) {
        results.extend(inv.hosts.keys().filter(|h| re.is_match(h)).cloned());
    }
    if results.is_empty() && LOCALHOST.contains(&pattern) {
        results.push(pattern.to_string());
    }
    if results.is_empty() && groups.is_empty() && pattern != "all" {
        return Err(perr(term, "matched no hosts or groups in the inventory"));
    }
    Ok(results)
}

fn compile(term: &str, pattern: &str) -> Result<Regex, InventoryError> {
    let src = match pattern.strip_prefix('~') {
        Some(re) => format!("^(?:{re})"),
        None => format!("^(?s:{})$", glob_to_regex(pattern)),
    };
    Regex::new(&src).map_err(|e| perr(term, format!("invalid host list pattern: {e}")))
}

/// Shell glob (`*`, `?`, `[seq]`, `[!seq]`) to a regex body, like Python's `fnmatch.translate`.
pub(crate) fn glob_to_regex(pat: &str) -> String {
    let c: Vec<char> = pat.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        i += 1;
        match ch {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < c.len() && c[j] == '!' {
                    j += 1;
                }
                if j < c.len() && c[j] == ']' {
                    j += 1;
                }
                while j < c.len() && c[j] != ']' {
                    j += 1;
                }
                if j >= c.len() {
                    out.push_str("\\[");
                } else {
                    let stuff: Vec<char> = c[i..j].to_vec();
                    i = j + 1;
                    let (neg, body) = match stuff.first() {
                        Some('!') => (true, &stuff[1..]),
                        _ => (false, &stuff[..]),
                    };
                    out.push('[');
                    if neg {
                        out.push('^');
                    }
                    for &b in body {
                        if matches!(b, '\\' | '[' | ']' | '&' | '~' | '^') {
                            out.push('\\');
                        }
                        out.push(b);
                    }
                    out.push(']');
                }
            }
            other => out.push_str(&regex::escape(&other.to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        assert_eq!(
            split_host_pattern("a,b[1], c[2:3] , d"),
            ["a", "b[1]", "c[2:3]", "d"]
        );
        assert_eq!(split_host_pattern("a:&b:!c[0:2]"), ["a", "&b", "!c[0:2]"]);
        assert_eq!(split_host_pattern("fe80::1"), ["fe80::1"]);
        assert_eq!(split_host_pattern("gpu[01:03]"), ["gpu[01:03]"]);
        assert_eq!(
            order_patterns(&["!x".into(), "&y".into()]),
            ["all", "&y", "!x"]
        );
    }

    #[test]
    fn subscripts() {
        assert_eq!(
            split_subscript("g[0]"),
            ("g".into(), Some(Subscript::Index(0)))
        );
        assert_eq!(
            split_subscript("g[-1]"),
            ("g".into(), Some(Subscript::Index(-1)))
        );
        assert_eq!(
            split_subscript("g[1:]"),
            ("g".into(), Some(Subscript::Range(1, None)))
        );
        assert_eq!(
            split_subscript("g[:3]"),
            ("g".into(), Some(Subscript::Range(0, Some(3))))
        );
        assert_eq!(split_subscript("~g[1]"), ("~g[1]".into(), None));
        let h: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            apply_subscript("t", h.clone(), Some(Subscript::Range(0, Some(2)))).unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(
            apply_subscript("t", h.clone(), Some(Subscript::Range(0, Some(3)))).unwrap(),
            h
        );
        assert!(apply_subscript("t", h, Some(Subscript::Index(7))).is_err());
    }

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| {
            Regex::new(&format!("^(?s:{})$", glob_to_regex(p)))
                .unwrap()
                .is_match(s)
        };
        assert!(m("gpu*", "gpu01"));
        assert!(m("gpu0?", "gpu01"));
        assert!(m("gpu0[12]", "gpu02"));
        assert!(!m("gpu0[!12]", "gpu02"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("x[", "x["));
    }
}
