//! Host names at definition time: `host:port` splitting (IPv4/IPv6/hostname grammar) and `[a:b:step]` range expansion.

use regex::Regex;
use std::sync::OnceLock;

struct AddrPatterns {
    bracketed_hostport: Regex,
    hostport: Regex,
    ipv4: Regex,
    ipv6: Regex,
    hostname: Regex,
}

fn patterns() -> &'static AddrPatterns {
    static P: OnceLock<AddrPatterns> = OnceLock::new();
    P.get_or_init(|| {
        let numeric_range = r"\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]";
        let hex_range = r"\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]";
        let alnum_range = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]";
        let i6 = format!("(?:[0-9a-f]{{1,4}}|{hex_range})");
        let i4 = format!("(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{numeric_range})");
        // A label: starts with a word char or range, continues with word chars, '-' or ranges,
        // and does not end with '_' or '-'.
        let label = format!(
            r"(?:[\w]|{alnum_range})(?:(?:[\w-]|{alnum_range})*(?:[^\W_]|{alnum_range}))?"
        );
        let ipv6 = format!(
            "^(?:(?:{0}:){{7}}{0}|(?:{0}:){{1,6}}:|(?:{0}:)(?::{0}){{1,6}}|(?:{0}:){{2}}(?::{0}){{1,5}}|\
             (?:{0}:){{3}}(?::{0}){{1,4}}|(?:{0}:){{4}}(?::{0}){{1,3}}|(?:{0}:){{5}}(?::{0}){{1,2}}|\
             (?:{0}:){{6}}(?::{0})|:(?::{0}){{1,6}}|{0}?::|(?:0:){{6}}(?:{0}\\.){{3}}{0}|\
             ::(?:ffff:)?(?:{0}\\.){{3}}{0}|(?:0:){{5}}ffff:(?:{0}\\.){{3}}{0})$",
            i6
        );
        let build = |s: &str| Regex::new(s).unwrap_or_else(|e| panic!("built-in regex {s}: {e}"));
        AddrPatterns {
            bracketed_hostport: build(r"^\[(.+)\]:([0-9]+)$"),
            hostport: build(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$"),
            ipv4: build(&format!(r"(?i)^(?:{i4}\.){{3}}{i4}$")),
            ipv6: build(&format!("(?i){ipv6}")),
            hostname: build(&format!(r"(?i)^{label}(?:\.{label})*$")),
        }
    })
}

/// True when `s` is a plain IPv4 or IPv6 address (used for `inventory_hostname_short`-like decisions).
pub fn is_ip(s: &str) -> bool {
    let p = patterns();
    p.ipv4.is_match(s) || p.ipv6.is_match(s)
}

/// Ansible's `parse_address`: splits `host:port`, `[v6]:port`; `None` if not a valid host identifier.
pub fn parse_address(address: &str, allow_ranges: bool) -> Option<(String, Option<u16>)> {
    let p = patterns();
    let mut addr = address.to_string();
    let mut port = None;
    for re in [&p.bracketed_hostport, &p.hostport] {
        if let Some(c) = re.captures(&addr.clone()) {
            addr = c[1].to_string();
            port = Some(
                c[2].parse::<u64>()
                    .ok()
                    .map_or(u16::MAX, |v| u16::try_from(v).unwrap_or(u16::MAX)),
            );
        }
    }
    if !(p.ipv4.is_match(&addr) || p.ipv6.is_match(&addr) || p.hostname.is_match(&addr)) {
        return None;
    }
    if !allow_ranges && addr.contains('[') {
        return None;
    }
    Some((addr, port))
}

/// An inventory host key, checked but not yet expanded: `gpu[01:64].dc1:2222`.
#[derive(Debug, Clone)]
pub struct HostPattern {
    /// As written (for messages).
    pub raw: String,
    pub port: Option<u16>,
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Letters(Vec<char>),
    Numbers {
        begin: i128,
        end: i128,
        step: i128,
        width: Option<usize>,
    },
}

impl Part {
    fn len(&self) -> u128 {
        match self {
            Part::Text(_) => 1,
            Part::Letters(l) => l.len() as u128,
            Part::Numbers {
                begin, end, step, ..
            } if begin <= end => ((end - begin) / step + 1) as u128,
            Part::Numbers { .. } => 0,
        }
    }

    fn value(&self, i: u128) -> String {
        match self {
            Part::Text(t) => t.clone(),
            Part::Letters(l) => l.get(i as usize).map(|c| c.to_string()).unwrap_or_default(),
            Part::Numbers {
                begin, step, width, ..
            } => {
                let n = begin + step * i as i128;
                match width {
                    Some(w) => zfill(n, *w),
                    None => n.to_string(),
                }
            }
        }
    }
}

impl HostPattern {
    /// Splits `host:port` and checks every `[begin:end(:step)]` range.
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        let (name, port) = match parse_address(pattern, true) {
            Some((h, p)) => (h, p),
            None => (pattern.to_string(), None),
        };
        Ok(HostPattern {
            raw: pattern.to_string(),
            port,
            parts: parse_ranges(&name)?,
        })
    }

    /// How many names it stands for (saturating).
    pub fn count(&self) -> u128 {
        self.parts
            .iter()
            .try_fold(1u128, |n, p| n.checked_mul(p.len()))
            .unwrap_or(u128::MAX)
    }

    /// Every name, the first range varying slowest; refused (before anything is expanded)
    /// when there would be more than `max`.
    pub fn expand(&self, max: usize) -> Result<Vec<String>, String> {
        let count = self.count();
        if count > max as u128 {
            let n = if count == u128::MAX {
                "more than 2^128".to_string()
            } else {
                count.to_string()
            };
            return Err(format!(
                "host range '{}' names {n} hosts, more than the {max} this inventory may still define (raise --max-hosts if that is meant)",
                self.raw
            ));
        }
        let mut out = Vec::with_capacity(count as usize);
        let mut index = vec![0u128; self.parts.len()];
        for _ in 0..count {
            let mut name = String::new();
            for (part, i) in self.parts.iter().zip(&index) {
                name.push_str(&part.value(*i));
            }
            out.push(name);
            // Odometer: the last range turns fastest.
            for (part, i) in self.parts.iter().zip(index.iter_mut()).rev() {
                *i += 1;
                if *i < part.len() {
                    break;
                }
                *i = 0;
            }
        }
        Ok(out)
    }
}

/// Splits an inventory host key into host pattern and optional port, then expands ranges
/// (at most `max` names).
pub fn expand_host_pattern(
    pattern: &str,
    max: usize,
) -> Result<(Vec<String>, Option<u16>), String> {
    let p = HostPattern::parse(pattern)?;
    Ok((p.expand(max)?, p.port))
}

const ASCII_LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Expands `prefix[beg:end(:step)]suffix` (several ranges allowed, the first varies slowest),
/// refusing more than `max` names. Numeric bounds with a leading zero keep their width;
/// letters run over a-z then A-Z.
pub fn expand_hostname_range(line: &str, max: usize) -> Result<Vec<String>, String> {
    HostPattern {
        raw: line.to_string(),
        port: None,
        parts: parse_ranges(line)?,
    }
    .expand(max)
}

fn parse_ranges(line: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest.find(']') else {
            return Err(format!("host range in '{line}' has no closing ']'"));
        };
        if close < open
            || rest[open + 1..]
                .find('[')
                .is_some_and(|i| open + 1 + i < close)
        {
            return Err(format!(
                "malformed host range in '{line}': expected prefix[begin:end]suffix"
            ));
        }
        if open > 0 {
            parts.push(Part::Text(rest[..open].to_string()));
        }
        parts.push(parse_range(line, &rest[open + 1..close])?);
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() || parts.is_empty() {
        parts.push(Part::Text(rest.to_string()));
    }
    Ok(parts)
}

fn parse_range(line: &str, body: &str) -> Result<Part, String> {
    let bounds: Vec<&str> = body.split(':').collect();
    if bounds.len() != 2 && bounds.len() != 3 {
        return Err(format!(
            "host range '[{body}]' in '{line}' must be begin:end or begin:end:step"
        ));
    }
    let beg = if bounds[0].is_empty() { "0" } else { bounds[0] };
    let end = bounds[1];
    if end.is_empty() {
        return Err(format!(
            "host range '[{body}]' in '{line}' must specify an end value"
        ));
    }
    let step: i128 = match bounds.get(2) {
        None => 1,
        Some(s) => number(s.trim(), line, "step")?,
    };
    if step <= 0 {
        return Err(format!("host range step in '{line}' must be at least 1"));
    }
    let width = if beg.starts_with('0') && beg.len() > 1 {
        if beg.len() != end.len() {
            return Err(format!(
                "host range '[{body}]' in '{line}' must specify equal-length begin and end formats"
            ));
        }
        Some(beg.len())
    } else {
        None
    };
    if let (Some(b), Some(e)) = (ASCII_LETTERS.find(beg), ASCII_LETTERS.find(end)) {
        if b > e {
            return Err(format!(
                "host range '[{body}]' in '{line}' must have begin <= end"
            ));
        }
        let step = usize::try_from(step).unwrap_or(usize::MAX);
        return Ok(Part::Letters(
            ASCII_LETTERS[b..=e].chars().step_by(step).collect(),
        ));
    }
    Ok(Part::Numbers {
        begin: number(beg.trim(), line, "begin")?,
        end: number(end.trim(), line, "end")?,
        step,
        width,
    })
}

/// A range bound or step: a decimal number that fits 64 bits.
fn number(s: &str, line: &str, what: &str) -> Result<i128, String> {
    match s.parse::<i64>() {
        Ok(n) => Ok(i128::from(n)),
        Err(_)
            if !s.is_empty()
                && s.trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit()) =>
        {
            Err(format!("host range {what} '{s}' in '{line}' is too large"))
        }
        Err(_) if what == "step" => {
            Err(format!("host range step '{s}' in '{line}' is not a number"))
        }
        Err(_) => Err(format!(
            "host range {what} '{s}' in '{line}' is not a number or letter"
        )),
    }
}

fn zfill(i: i128, w: usize) -> String {
    if i < 0 {
        format!("-{:0>width$}", -i, width = w.saturating_sub(1))
    } else {
        format!("{i:0>w$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(
            expand_hostname_range("gpu[01:03]", 100).unwrap(),
            ["gpu01", "gpu02", "gpu03"]
        );
        assert_eq!(
            expand_hostname_range("n[1:10:4]", 100).unwrap(),
            ["n1", "n5", "n9"]
        );
        assert_eq!(
            expand_hostname_range("db-[a:c]", 100).unwrap(),
            ["db-a", "db-b", "db-c"]
        );
        assert_eq!(
            expand_hostname_range("r[1:2]-[a:b].x", 100).unwrap(),
            ["r1-a.x", "r1-b.x", "r2-a.x", "r2-b.x"]
        );
        assert_eq!(
            expand_hostname_range("h[y:B]", 100).unwrap(),
            ["hy", "hz", "hA", "hB"]
        );
        assert!(expand_hostname_range("gpu[01:100]", 100).is_err());
        assert!(expand_hostname_range("gpu[1]", 100).is_err());
        assert!(expand_hostname_range("gpu[c:a]", 100).is_err());
        assert!(expand_hostname_range("gpu[1:3:0]", 100).is_err());
        assert!(expand_hostname_range("gpu[1:3:-1]", 100).is_err());
        assert_eq!(expand_hostname_range("plain", 1).unwrap(), ["plain"]);
        assert!(expand_hostname_range("gpu[3:1]", 100).unwrap().is_empty());
    }

    #[test]
    fn ranges_are_counted_before_they_are_expanded() {
        let e = expand_hostname_range("gpu[1:100000000]", 1_000_000).unwrap_err();
        assert!(
            e.contains("names 100000000 hosts, more than the 1000000"),
            "{e}"
        );
        // Nested ranges multiply; the product is checked, not built.
        let e = expand_hostname_range("a[1:100000]b[1:100000]c[1:100000]", 1_000_000).unwrap_err();
        assert!(e.contains("names 1000000000000000 hosts"), "{e}");
        let e = expand_hostname_range(
            "a[0:9223372036854775807]b[0:9223372036854775807]c[0:9223372036854775807]d[0:9223372036854775807]e[0:9223372036854775807]",
            10,
        )
        .unwrap_err();
        assert!(e.contains("more than 2^128"), "{e}");
        // Bounds that overflow 64 bits, or a step that does, are refused or harmless.
        let e = expand_hostname_range("gpu[1:99999999999999999999]", 10).unwrap_err();
        assert!(e.contains("is too large"), "{e}");
        assert_eq!(
            expand_hostname_range(
                "gpu[9223372036854775806:9223372036854775807:18446744073709551615]",
                10
            )
            .unwrap_err(),
            "host range step '18446744073709551615' in 'gpu[9223372036854775806:9223372036854775807:18446744073709551615]' is too large"
        );
        assert_eq!(
            expand_hostname_range(
                "gpu[9223372036854775806:9223372036854775807:9223372036854775807]",
                10
            )
            .unwrap(),
            ["gpu9223372036854775806"]
        );
        assert_eq!(
            expand_hostname_range("n[-2:0]", 10).unwrap(),
            ["n-2", "n-1", "n0"]
        );
        assert_eq!(expand_hostname_range("z[a:c:100]", 10).unwrap(), ["za"]);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("gpu1:2222", true),
            Some(("gpu1".into(), Some(2222)))
        );
        assert_eq!(
            parse_address("[fe80::1]:22", true),
            Some(("fe80::1".into(), Some(22)))
        );
        assert_eq!(
            parse_address("fe80::1", true),
            Some(("fe80::1".into(), None))
        );
        assert_eq!(
            parse_address("10.0.0.[1:3]:22", true),
            Some(("10.0.0.[1:3]".into(), Some(22)))
        );
        assert_eq!(
            parse_address("gpu[01:10]", true),
            Some(("gpu[01:10]".into(), None))
        );
        assert_eq!(parse_address("a:b", true), None);
        assert_eq!(parse_address("bad-", true), None);
    }
}
