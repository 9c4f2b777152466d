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

/// Splits an inventory host key into host pattern and optional port, then expands ranges.
pub fn expand_host_pattern(pattern: &str) -> Result<(Vec<String>, Option<u16>), String> {
    let (name, port) = match parse_address(pattern, true) {
        Some((h, p)) => (h, p),
        None => (pattern.to_string(), None),
    };
    let hosts = if name.contains('[') {
        expand_hostname_range(&name)?
    } else {
        vec![name]
    };
    Ok((hosts, port))
}

const ASCII_LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Expands `prefix[beg:end(:step)]suffix` (several ranges allowed, the first varies slowest).
/// Numeric bounds with a leading zero keep their width; letters run over a-z then A-Z.
pub fn expand_hostname_range(line: &str) -> Result<Vec<String>, String> {
    let Some(open) = line.find('[') else {
        return Ok(vec![line.to_string()]);
    };
    let Some(close) = line.find(']') else {
        return Err(format!("host range in '{line}' has no closing ']'"));
    };
    if close < open
        || line[open + 1..]
            .find('[')
            .is_some_and(|i| open + 1 + i < close)
    {
        return Err(format!(
            "malformed host range in '{line}': expected prefix[begin:end]suffix"
        ));
    }
    let head = &line[..open];
    let body = &line[open + 1..close];
    let tail = &line[close + 1..];
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
    let step: usize = match bounds.get(2) {
        None => 1,
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("host range step '{s}' in '{line}' is not a number"))?,
    };
    if step == 0 {
        return Err(format!("host range step in '{line}' must not be zero"));
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
    let seq: Vec<String> = match (ASCII_LETTERS.find(beg), ASCII_LETTERS.find(end)) {
        (Some(b), Some(e)) => {
            if b > e {
                return Err(format!(
                    "host range '[{body}]' in '{line}' must have begin <= end"
                ));
            }
            ASCII_LETTERS[b..=e]
                .chars()
                .step_by(step)
                .map(String::from)
                .collect()
        }
        _ => {
            let b: i64 = beg.trim().parse().map_err(|_| {
                format!("host range begin '{beg}' in '{line}' is not a number or letter")
            })?;
            let e: i64 = end.trim().parse().map_err(|_| {
                format!("host range end '{end}' in '{line}' is not a number or letter")
            })?;
            let mut v = Vec::new();
            let mut i = b;
            while i <= e {
                v.push(match width {
                    Some(w) => zfill(i, w),
                    None => i.to_string(),
                });
                i += step as i64;
            }
            v
        }
    };
    let mut out = Vec::new();
    for s in seq {
        let name = format!("{head}{s}{tail}");
        if name.contains('[') {
            out.extend(expand_hostname_range(&name)?);
        } else {
            out.push(name);
        }
    }
    Ok(out)
}

fn zfill(i: i64, w: usize) -> String {
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
            expand_hostname_range("gpu[01:03]").unwrap(),
            ["gpu01", "gpu02", "gpu03"]
        );
        assert_eq!(
            expand_hostname_range("n[1:10:4]").unwrap(),
            ["n1", "n5", "n9"]
        );
        assert_eq!(
            expand_hostname_range("db-[a:c]").unwrap(),
            ["db-a", "db-b", "db-c"]
        );
        assert_eq!(
            expand_hostname_range("r[1:2]-[a:b].x").unwrap(),
            ["r1-a.x", "r1-b.x", "r2-a.x", "r2-b.x"]
        );
        assert_eq!(
            expand_hostname_range("h[y:B]").unwrap(),
            ["hy", "hz", "hA", "hB"]
        );
        assert!(expand_hostname_range("gpu[01:100]").is_err());
        assert!(expand_hostname_range("gpu[1]").is_err());
        assert!(expand_hostname_range("gpu[c:a]").is_err());
        assert!(expand_hostname_range("gpu[1:3:0]").is_err());
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
