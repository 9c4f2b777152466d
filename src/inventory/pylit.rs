//! A small evaluator for Python literals, the subset `ast.literal_eval` accepts (numbers,
//! strings with their prefixes, `True`/`False`/`None`, lists, tuples, dicts, sets), mapped to
//! JSON values: how Ansible types the values of INI inventories.

use super::yaml11;
use serde_json::{Map, Value};

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
    if let Some(t) = yaml11::wide_number_text(&v) {
        let negated = match t.strip_prefix('-') {
            Some(pos) => pos.to_string(),
            None if t == "NaN" => t.to_string(),
            None => format!("-{t}"),
        };
        return Some(yaml11::wide_number(&negated));
    }
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
    // Beyond u64 Python keeps the exact integer: held as its decimal digits.
    if let Ok(v) = u128::from_str_radix(&d, radix) {
        return Some(yaml11::wide_number(&v.to_string()));
    }
    // Beyond that, rarely worth exact digits: a float, as a JSON reader gives.
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
    Some(
        serde_json::Number::from_f64(f)
            .map_or_else(|| yaml11::wide_number("Infinity"), Value::Number),
    )
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
        // Numbers JSON cannot hold keep Python's value.
        let wide = |t: &str| Some(super::yaml11::wide_number(t));
        assert_eq!(
            le("123456789012345678901234"),
            wide("123456789012345678901234")
        );
        assert_eq!(
            le("-123456789012345678901234"),
            wide("-123456789012345678901234")
        );
        assert_eq!(le("0xffffffffffffffffff"), wide("4722366482869645213695"));
        assert_eq!(le("1e400"), wide("Infinity"));
        assert_eq!(le("-1e400"), wide("-Infinity"));
    }
}
