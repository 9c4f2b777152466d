//! The compact text notation for layouts, one grammar for the command line, playbooks
//! and messages: `3g.40gb@4, 2x1g.10gb, 3g.40gb[1c,1c,1c], 1c.7g.80gb`. Parsing happens in
//! two steps: [`parse_items`] reads the text alone (playbooks check it when they load,
//! before any GPU is known), [`parse_layout`] also resolves the names on a model.
//!
//! An item is `[N x]PROFILE[@START][[Cc,...]]`: a count (`2x`, `2×` or `2*`), a profile
//! name as the driver spells it (a `Cc.Gg.NNgb` name means one compute instance of that
//! size), an optional placement start, and optional compute-instance sizes. Items are
//! separated by commas, `+` or spaces. `-`, `none` or an empty string is the empty layout.

use crate::catalog::GpuModel;
use crate::layout::Want;

/// One item of a layout as written, before its name is resolved on a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// How many instances the item stands for (`2x`), at least 1.
    pub count: usize,
    /// The profile name as written (`3g.40gb`, `1g.10gb+me`, `1c.7g.80gb`).
    pub profile: String,
    /// A pinned placement start (`@4`).
    pub start: Option<u8>,
    /// Compute-instance sizes (`[2c,1c]`), as written.
    pub cis: Option<Vec<u8>>,
    /// The item's text, for messages.
    pub text: String,
}

/// Reads a layout's text into items without a model. Errors name the item.
pub fn parse_items(text: &str) -> Result<Vec<Item>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "-" || trimmed.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    split_items(trimmed)
        .into_iter()
        .map(|item| read_item(&item).map_err(|e| format!("in `{item}`: {e}")))
        .collect()
}

/// Parses a layout written in the notation into wanted instances on `model`. Errors name
/// the item and, for unknown names, list the names that exist on the model.
pub fn parse_layout(model: &GpuModel, text: &str) -> Result<Vec<Want>, String> {
    let mut wants = Vec::new();
    for item in parse_items(text)? {
        wants.extend(resolve_item(model, &item).map_err(|e| format!("in `{}`: {e}", item.text))?);
    }
    Ok(wants)
}

/// Splits on commas, spaces and `+` outside brackets, keeping `+me` attached to its name.
fn split_items(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut cur = String::new();
    let mut depth = 0u32;
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        let attaches = c == '+' && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic());
        let sep = depth == 0 && (c == ',' || c.is_whitespace() || (c == '+' && !attaches));
        if sep {
            if !cur.is_empty() {
                items.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        items.push(cur);
    }
    items
}

fn read_item(item: &str) -> Result<Item, String> {
    let (count, rest) = split_count(item)?;
    let (rest, cis) = match rest.split_once('[') {
        Some((head, tail)) => {
            let inner = tail.strip_suffix(']').ok_or("missing `]`")?;
            let sizes = inner
                .split(',')
                .map(|c| {
                    let c = c.trim();
                    c.strip_suffix('c')
                        .unwrap_or(c)
                        .parse::<u8>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| {
                            format!("`{c}` is not a compute instance size (write `1c`, `2c`, ...)")
                        })
                })
                .collect::<Result<Vec<u8>, String>>()?;
            (head, Some(sizes))
        }
        None => (rest, None),
    };
    let (name, start) = match rest.split_once('@') {
        Some((n, s)) => {
            let s: u8 = s
                .parse()
                .map_err(|_| format!("`{s}` is not a placement start"))?;
            (n, Some(s))
        }
        None => (rest, None),
    };
    if start.is_some() && count > 1 {
        return Err("a count and a placement start cannot go together".into());
    }
    if name.is_empty() {
        return Err("a profile name is missing".into());
    }
    Ok(Item {
        count,
        profile: name.to_string(),
        start,
        cis,
        text: item.to_string(),
    })
}

/// The wanted instances an item stands for on `model`.
pub fn resolve_item(model: &GpuModel, item: &Item) -> Result<Vec<Want>, String> {
    let r = model.resolve(&item.profile).map_err(|e| e.to_string())?;
    let p = model.profile(r.gi);
    let mut sizes = match &item.cis {
        None => vec![r.ci_slices],
        Some(sizes) => {
            for n in sizes {
                if p.ci_profile(*n).is_none() {
                    let valid: Vec<String> = p.ci_sizes().map(|s| format!("{s}c")).collect();
                    return Err(format!(
                        "`{n}c` is not a compute instance size of {}; sizes: {}",
                        p.name,
                        valid.join(", ")
                    ));
                }
            }
            sizes.clone()
        }
    };
    sizes.sort_by(|a, b| b.cmp(a));
    Ok((0..item.count)
        .map(|_| Want {
            profile: r.gi,
            start: item.start,
            cis: sizes.clone(),
        })
        .collect())
}

fn split_count(item: &str) -> Result<(usize, &str), String> {
    let digits = item.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Ok((1, item));
    }
    let rest = &item[digits..];
    let after = ['x', '×', '*'].iter().find_map(|m| rest.strip_prefix(*m));
    match after {
        Some(r) => {
            let n: usize = item[..digits]
                .parse()
                .map_err(|_| "count too large".to_string())?;
            if n == 0 || n > 16 {
                return Err(format!("count {n} is out of range"));
            }
            Ok((n, r))
        }
        // `1g.10gb` itself starts with a digit.
        None => Ok((1, item)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find_model;

    #[test]
    fn parses_counts_starts_and_compute_instances() {
        let m = find_model("H100-80GB").unwrap();
        let w = parse_layout(m, "3g.40gb@4, 2x1g.10gb + 1g.10gb+me 3g.40gb[1c,2c]").unwrap();
        let shown: Vec<String> = w.iter().map(|w| w.display(m)).collect();
        assert_eq!(
            shown,
            [
                "3g.40gb@4",
                "1g.10gb",
                "1g.10gb",
                "1g.10gb+me",
                "3g.40gb[2c,1c]"
            ]
        );
        let w = parse_layout(m, "1c.7g.80gb").unwrap();
        assert_eq!(w[0].cis, vec![1]);
        assert!(parse_layout(m, "none").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_item() {
        let m = find_model("A30").unwrap();
        let e = parse_layout(m, "1g.6gb, 1g.10gb").unwrap_err();
        assert!(e.starts_with("in `1g.10gb`: profile `1g.10gb` does not exist on A30-24GB; profiles there: 1g.6gb, 1g.6gb+me, 2g.12gb, 2g.12gb+me, 4g.24gb"), "{e}");
        let e = parse_layout(m, "4g.24gb[5c]").unwrap_err();
        assert!(e.contains("`5c` is not a compute instance size"), "{e}");
        assert!(parse_layout(m, "2x2g.12gb@0").is_err());
    }

    #[test]
    fn items_are_read_without_a_model() {
        let items = parse_items("2x1g.10gb, 3g.40gb@4[2c,1c]").unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!((items[0].count, items[0].profile.as_str()), (2, "1g.10gb"));
        assert_eq!(items[1].start, Some(4));
        assert_eq!(items[1].cis, Some(vec![2, 1]));
        let e = parse_items("3g.40gb[xc]").unwrap_err();
        assert!(
            e.starts_with("in `3g.40gb[xc]`: `xc` is not a compute"),
            "{e}"
        );
        assert!(parse_items("@4").is_err());
        assert!(parse_items("none").unwrap().is_empty());
    }
}
