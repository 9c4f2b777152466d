//! INI inventory sources: sections, `:vars`/`:children`, host lines (shlex tokens, `host:port`, ranges) and Python-literal typing of values.

use super::{Inventory, InventoryError, parse_err, range};
use serde_json::{Map, Value};
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
    let mut pending: Vec<(String, Pending)> = Vec::new();
    let find = |p: &Vec<(String, Pending)>, n: &str| p.iter().position(|(k, _)| k == n);
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
                if state == State::Vars && find(&pending, &group).is_none() {
                    pending.push((
                        group.clone(),
                        Pending {
                            line: lineno,
                            vars_only: true,
                            parents: vec![],
                        },
                    ));
                }
                inv.add_group(&group);
            }
            if state != State::Vars
                && let Some(i) = find(&pending, &group)
            {
                if pending[i].1.vars_only {
                    pending.remove(i);
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
                let (hosts, port) = range::expand_host_pattern(first).map_err(&err)?;
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
                } else if let Some(i) = find(&pending, &child) {
                    pending[i].1.parents.push(group.clone());
                } else {
                    pending.push((
                        child,
                        Pending {
                            line: lineno,
                            vars_only: false,
                            parents: vec![group.clone()],
                        },
                    ));
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

fn add_pending_children(
    inv: &mut Inventory,
    group: &str,
    pending: &mut Vec<(String, Pending)>,
) -> Result<(), String> {
    let Some(i) = pending.iter().position(|(k, _)| k == group) else {
        return Ok(());
    };
    let parents = pending[i].1.parents.clone();
    for parent in &parents {
        inv.add_child_group(parent, group)?;
        if pending.iter().any(|(k, p)| k == parent && !p.vars_only) {
            add_pending_children(inv, parent, pending)?;
        }
    }
    if let Some(i) = pending.iter().position(|(k, _)| k == group) {
        pending.remove(i);
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
    match pylit::literal_eval(v) {
        Some(val) => val,
        None => Value::String(v.to_string()),
    }
}

/// A small evaluator for Python literals (the subset `ast.literal_eval` accepts), mapped to JSON values.
pub(crate) mod pylit {
    use super::*;

    pub(crate) fn literal_eval(src: &str) -> Option<Value> {
        let s = src.trim_start_matches([' ', '\t']);
        let mut p = P {
            s: s.chars().collect(),
            i: 0,
            depth: 0,
        };
        p.ws();
        let first = p.expr()?;
        p.ws();
        // A bare top-level tuple: `1, 2`
        let v = if p.peek() == Some(',') {
            let mut items = vec![first];
            while p.eat(',') {
                p.ws();
                if p.at_end() {
                    break;
                }
                items.push(p.expr()?);
                p.ws();
            }
            Value::Array(items)
        } else {
            first
        };
        p.ws();
        p.at_end().then_some(v)
    }

    struct P {
        s: Vec<char>,
        i: usize,
        depth: usize,
    }

    impl P {
        fn peek(&self) -> Option<char> {
            self.s.get(self.i).copied()
        }
        fn at_end(&self) -> bool {
            self.i >= self.s.len()
        }
        fn eat(&mut self, c: char) -> bool {
            if self.peek() == Some(c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn ws(&mut self) {
            // Whitespace (and newlines inside brackets) between tokens.
            while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r' | '\x0c')) {
                self.i += 1;
            }
        }
        fn expr(&mut self) -> Option<Value> {
            self.depth += 1;
            if self.depth > 200 {
                return None;
            }
            self.ws();
            let r = match self.peek()? {
                '-' | '+' => {
                    let neg = self.peek() == Some('-');
                    self.i += 1;
                    self.ws();
                    match self.peek() {
                        Some(c) if c.is_ascii_digit() || c == '.' => {
                            let n = self.number()?;
                            if neg { negate(n) } else { Some(n) }
                        }
                        _ => None,
                    }
                }
                c if c.is_ascii_digit() => self.number(),
                '.' if self.s.get(self.i + 1).is_some_and(|c| c.is_ascii_digit()) => self.number(),
                '[' => {
                    self.i += 1;
                    let items = self.seq(']')?;
                    Some(Value::Array(items))
                }
                '(' => {
                    self.i += 1;
                    self.ws();
                    if self.eat(')') {
                        return Some(Value::Array(vec![]));
                    }
                    let first = self.expr()?;
                    self.ws();
                    if self.eat(')') {
                        Some(first)
                    } else if self.eat(',') {
                        let mut items = vec![first];
                        items.extend(self.seq(')')?);
                        Some(Value::Array(items))
                    } else {
                        None
                    }
                }
                '{' => {
                    self.i += 1;
                    self.dict_or_set()
                }
                c if c.is_alphabetic() || c == '_' || c == '\'' || c == '"' => {
                    // String with optional prefix, or a keyword.
                    let start = self.i;
                    while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        self.i += 1;
                    }
                    let word: String = self.s[start..self.i].iter().collect();
                    if matches!(self.peek(), Some('\'' | '"')) {
                        let lw = word.to_ascii_lowercase();
                        if !matches!(lw.as_str(), "" | "r" | "u" | "b" | "br" | "rb") {
                            return None;
                        }
                        self.strings(lw.contains('r'))
                    } else {
                        match word.as_str() {
                            "True" => Some(Value::Bool(true)),
                            "False" => Some(Value::Bool(false)),
                            "None" => Some(Value::Null),
                            _ => None,
                        }
                    }
                }
                _ => None,
            };
            self.depth -= 1;
            r
        }

        fn seq(&mut self, close: char) -> Option<Vec<Value>> {
            let mut items = Vec::new();
            loop {
                self.ws();
                if self.eat(close) {
                    return Some(items);
                }
                items.push(self.expr()?);
                self.ws();
                if self.eat(',') {
                    continue;
                }
                self.ws();
                return self.eat(close).then_some(items);
            }
        }

        fn dict_or_set(&mut self) -> Option<Value> {
            self.ws();
            if self.eat('}') {
                return Some(Value::Object(Map::new()));
            }
            let k = self.expr()?;
            self.ws();
            if self.eat(':') {
                let mut m = Map::new();
                let v = self.expr()?;
                m.insert(key_string(&k)?, v);
                loop {
                    self.ws();
                    if self.eat('}') {
                        return Some(Value::Object(m));
                    }
                    if !self.eat(',') {
                        return None;
                    }
                    self.ws();
                    if self.eat('}') {
                        return Some(Value::Object(m));
                    }
                    let k = self.expr()?;
                    self.ws();
                    if !self.eat(':') {
                        return None;
                    }
                    let v = self.expr()?;
                    m.insert(key_string(&k)?, v);
                }
            }
            // A set literal: becomes a list.
            let mut items = vec![k];
            if self.eat(',') {
                items.extend(self.seq('}')?);
            } else if !self.eat('}') {
                return None;
            }
            let mut uniq: Vec<Value> = Vec::new();
            for i in items {
                if !uniq.contains(&i) {
                    uniq.push(i);
                }
            }
            Some(Value::Array(uniq))
        }

        fn strings(&mut self, raw: bool) -> Option<Value> {
            let mut out = self.one_string(raw)?;
            // Implicit concatenation of adjacent string literals.
            loop {
                let save = self.i;
                self.ws();
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                    self.i += 1;
                }
                let pre: String = self.s[start..self.i]
                    .iter()
                    .collect::<String>()
                    .to_ascii_lowercase();
                if matches!(self.peek(), Some('\'' | '"'))
                    && matches!(pre.as_str(), "" | "r" | "u" | "b" | "br" | "rb")
                {
                    out.push_str(&self.one_string(pre.contains('r'))?);
                } else {
                    self.i = save;
                    return Some(Value::String(out));
                }
            }
        }

        fn one_string(&mut self, raw: bool) -> Option<String> {
            let q = self.peek()?;
            let triple = self.s.get(self.i + 1) == Some(&q) && self.s.get(self.i + 2) == Some(&q);
            self.i += if triple { 3 } else { 1 };
            let mut out = String::new();
            loop {
                let c = self.peek()?;
                if c == q {
                    if !triple {
                        self.i += 1;
                        return Some(out);
                    }
                    if self.s.get(self.i + 1) == Some(&q) && self.s.get(self.i + 2) == Some(&q) {
                        self.i += 3;
                        return Some(out);
                    }
                }
                if c == '\n' && !triple {
                    return None;
                }
                self.i += 1;
                if c != '\\' {
                    out.push(c);
                    continue;
                }
                let e = self.peek()?;
                if raw {
                    out.push('\\');
                    out.push(e);
                    self.i += 1;
                    continue;
                }
                self.i += 1;
                match e {
                    '\n' => {}
                    '\\' => out.push('\\'),
                    '\'' => out.push('\''),
                    '"' => out.push('"'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'v' => out.push('\x0b'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = self.s.get(self.i..self.i + n)?.iter().collect();
                        let cp = u32::from_str_radix(&hex, 16).ok()?;
                        out.push(char::from_u32(cp)?);
                        self.i += n;
                    }
                    '0'..='7' => {
                        let mut v = e.to_digit(8)?;
                        for _ in 0..2 {
                            match self.peek().and_then(|c| c.to_digit(8)) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    self.i += 1;
                                }
                                None => break,
                            }
                        }
                        out.push(char::from_u32(v)?);
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
        }

        fn number(&mut self) -> Option<Value> {
            let start = self.i;
            while self
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
                || (matches!(self.peek(), Some('+' | '-'))
                    && matches!(self.s.get(self.i - 1), Some('e' | 'E'))
                    && !self.s[start..self.i].iter().any(|c| matches!(c, 'x' | 'X')))
            {
                self.i += 1;
            }
            let tok: String = self.s[start..self.i].iter().collect();
            number_value(&tok)
        }
    }

    fn negate(v: Value) -> Option<Value> {
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(Value::from(-i))
                } else if let Some(u) = n.as_u64() {
                    // -(2^63) fits; anything bigger becomes a float like a JSON reader would produce.
                    if u == 1u64 << 63 {
                        Some(Value::from(i64::MIN))
                    } else {
                        serde_json::Number::from_f64(-(u as f64)).map(Value::Number)
                    }
                } else {
                    n.as_f64()
                        .and_then(|f| serde_json::Number::from_f64(-f))
                        .map(Value::Number)
                }
            }
            _ => None,
        }
    }

    fn valid_digits(s: &str, radix: u32) -> bool {
        !s.is_empty()
            && !s.starts_with('_')
            && !s.ends_with('_')
            && !s.contains("__")
            && s.chars().all(|c| c == '_' || c.is_digit(radix))
    }

    fn int_value(digits: &str, radix: u32) -> Option<Value> {
        let d = digits.replace('_', "");
        if let Ok(v) = u64::from_str_radix(&d, radix) {
            return Some(Value::from(v));
        }
        // Beyond u64: a JSON reader yields a float, so produce the same.
        let mut f = 0f64;
        for c in d.chars() {
            f = f * f64::from(radix) + f64::from(c.to_digit(radix)?);
        }
        serde_json::Number::from_f64(f).map(Value::Number)
    }

    fn number_value(tok: &str) -> Option<Value> {
        let lower = tok.to_ascii_lowercase();
        for (p, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
            if let Some(rest) = lower.strip_prefix(p) {
                let rest = rest.strip_prefix('_').unwrap_or(rest);
                return valid_digits(rest, radix)
                    .then(|| int_value(rest, radix))
                    .flatten();
            }
        }
        if lower.ends_with('j') {
            return None; // complex: Ansible stringifies it; not supported here
        }
        if valid_digits(&lower, 10) {
            let d = lower.replace('_', "");
            if d.len() > 1 && d.starts_with('0') && d.chars().any(|c| c != '0') {
                return None; // leading zeros are a syntax error in Python 3
            }
            return int_value(&lower, 10);
        }
        // Float: digits [. digits] [e [+-] digits]
        let (mant, exp) = match lower.split_once('e') {
            Some((m, e)) => (m, Some(e)),
            None => (lower.as_str(), None),
        };
        let (ip, fp) = match mant.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (mant, None),
        };
        if exp.is_none() && fp.is_none() {
            return None;
        }
        if ip.is_empty() && fp.is_none_or(str::is_empty) {
            return None;
        }
        if !ip.is_empty() && !valid_digits(ip, 10) {
            return None;
        }
        if let Some(f) = fp
            && !f.is_empty()
            && !valid_digits(f, 10)
        {
            return None;
        }
        if let Some(e) = exp {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            if !valid_digits(e, 10) {
                return None;
            }
        }
        let f: f64 = lower.replace('_', "").parse().ok()?;
        serde_json::Number::from_f64(f).map(Value::Number)
    }

    fn key_string(k: &Value) -> Option<String> {
        Some(match k {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".into(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::literal_eval as le;
        use serde_json::json;

        #[test]
        fn literals() {
            assert_eq!(le("5"), Some(json!(5)));
            assert_eq!(le("-5"), Some(json!(-5)));
            assert_eq!(le("1_000"), Some(json!(1000)));
            assert_eq!(le("0x1f"), Some(json!(31)));
            assert_eq!(le("05"), None);
            assert_eq!(le("1.5"), Some(json!(1.5)));
            assert_eq!(le("1e3"), Some(json!(1000.0)));
            assert_eq!(le("True"), Some(json!(true)));
            assert_eq!(le("None"), Some(json!(null)));
            assert_eq!(le("'a b'"), Some(json!("a b")));
            assert_eq!(le("'a' \"b\""), Some(json!("ab")));
            assert_eq!(le("[1, 'x', [2]]"), Some(json!([1, "x", [2]])));
            assert_eq!(le("(1,)"), Some(json!([1])));
            assert_eq!(le("1, 2"), Some(json!([1, 2])));
            assert_eq!(le("{'a': 1, 2: None}"), Some(json!({"a": 1, "2": null})));
            assert_eq!(le("{1, 2}"), Some(json!([1, 2])));
            assert_eq!(le("abc"), None);
            assert_eq!(le("true"), None);
            assert_eq!(le("1.2.3"), None);
            assert_eq!(le("{a:1}"), None);
            assert_eq!(le("10.0.0.1"), None);
            assert_eq!(le("-abc"), None);
        }
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
