//! Layouts as playbooks and policies write them, in `crates/mig`'s notation (the same as
//! `migfleet mig plan`): a string (`"3g.40gb@4, 2x1g.10gb"`), a list of such strings or of
//! instance tables (`{profile = "3g.40gb", start = 4, cis = {2, 1}}`), or a table of those
//! keyed by GPU model (`{["H100-80GB"] = ..., ["A30-24GB"] = ...}`). `nil` leaves a GPU as
//! it is; an empty list empties it. Checked as far as possible where it is written (names
//! and compute-instance sizes on the models a per-model table names; syntax otherwise);
//! the agent resolves names against the host's own profile table.

use migfleet_mig::catalog::{GpuModel, ProfileName, find_model};
use migfleet_mig::notation::{self, Item};
use migfleet_proto::WantedInstance;
use serde_json::Value;

/// A layout for the GPUs of a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutSpec {
    /// The same layout for every GPU.
    All(Vec<WantedInstance>),
    /// A layout per catalog model; GPUs of other models are left alone.
    ByModel(Vec<(&'static str, Vec<WantedInstance>)>),
}

impl LayoutSpec {
    /// Reads a layout value; `Ok(None)` for `nil` (leave the GPU alone).
    pub fn parse(v: &Value) -> Result<Option<LayoutSpec>, String> {
        match v {
            Value::Null => Ok(None),
            Value::Object(map) if !map.is_empty() => {
                let mut by_model = Vec::new();
                for (key, entry) in map {
                    let model = find_model(key)
                        .map_err(|e| format!("layout key `{key}` is not a GPU model: {e}"))?;
                    if by_model.iter().any(|(m, _)| *m == model.name) {
                        return Err(format!("layout names {} twice", model.name));
                    }
                    if matches!(entry, Value::Object(m) if !m.is_empty()) {
                        return Err(format!(
                            "the layout for {key} must be a list of instances, not another table"
                        ));
                    }
                    let wanted = instances(entry).map_err(|e| format!("{key}: {e}"))?;
                    check_on(model, &wanted).map_err(|e| format!("{key}: {e}"))?;
                    by_model.push((model.name, wanted));
                }
                Ok(Some(LayoutSpec::ByModel(by_model)))
            }
            other => Ok(Some(LayoutSpec::All(instances(other)?))),
        }
    }

    /// The layout for a GPU of `model` (a catalog name); `None` leaves it alone.
    pub fn for_gpu(&self, model: Option<&str>) -> Option<&[WantedInstance]> {
        match self {
            LayoutSpec::All(w) => Some(w),
            LayoutSpec::ByModel(list) => {
                let model = model?;
                list.iter()
                    .find(|(m, _)| *m == model)
                    .map(|(_, w)| w.as_slice())
            }
        }
    }
}

/// The wanted instances of one layout value (not keyed by model).
fn instances(v: &Value) -> Result<Vec<WantedInstance>, String> {
    match v {
        Value::String(s) => from_text(s),
        Value::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => out.extend(from_text(s)?),
                    Value::Object(m) => out.push(from_table(m)?),
                    other => {
                        return Err(format!(
                            "an instance is a profile like \"3g.40gb@4\" or a table {{profile = ..., start = ..., cis = ...}}, not {}",
                            kind(other)
                        ));
                    }
                }
            }
            Ok(out)
        }
        // An empty Lua table reads as `{}`: the empty layout.
        Value::Object(m) if m.is_empty() => Ok(Vec::new()),
        other => Err(format!(
            "a layout is a list of profiles (or a table of them by GPU model), not {}",
            kind(other)
        )),
    }
}

/// Notation text: `"3g.40gb@4, 2x1g.10gb"`.
fn from_text(text: &str) -> Result<Vec<WantedInstance>, String> {
    let mut out = Vec::new();
    for item in notation::parse_items(text)? {
        check_name(&item)?;
        out.extend((0..item.count).map(|_| WantedInstance {
            profile: item.profile.clone(),
            start: item.start,
            cis: item.cis.clone(),
        }));
    }
    Ok(out)
}

fn check_name(item: &Item) -> Result<(), String> {
    ProfileName::parse(&item.profile).map(|_| ()).map_err(|e| {
        format!(
            "in `{}`: `{}` is not a MIG profile name: {e}",
            item.text, item.profile
        )
    })
}

fn from_table(m: &serde_json::Map<String, Value>) -> Result<WantedInstance, String> {
    const KEYS: [&str; 3] = ["profile", "start", "cis"];
    for k in m.keys() {
        if !KEYS.contains(&k.as_str()) {
            let hint = super::modules::closest(k, KEYS.iter().copied())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "unknown key `{k}` in an instance{hint}; keys: profile, start, cis"
            ));
        }
    }
    let profile = m
        .get("profile")
        .and_then(Value::as_str)
        .ok_or("an instance table needs `profile = \"<name>\"`")?
        .to_string();
    let start = match m.get("start") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| format!("`start` of {profile} must be a memory slice number"))?,
        ),
    };
    let cis = match m.get("cis") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|c| {
                    c.as_u64()
                        .and_then(|n| u8::try_from(n).ok())
                        .filter(|n| *n > 0)
                })
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| format!("`cis` of {profile} must list compute slice counts"))?,
        ),
        Some(_) => return Err(format!("`cis` of {profile} must be a list")),
    };
    let item = Item {
        count: 1,
        profile: profile.clone(),
        start,
        cis: cis.clone(),
        text: profile.clone(),
    };
    check_name(&item)?;
    Ok(WantedInstance {
        profile,
        start,
        cis,
    })
}

/// Names and compute-instance sizes exist on `model`.
fn check_on(model: &GpuModel, wanted: &[WantedInstance]) -> Result<(), String> {
    for w in wanted {
        let item = Item {
            count: 1,
            profile: w.profile.clone(),
            start: w.start,
            cis: w.cis.clone(),
            text: w.profile.clone(),
        };
        notation::resolve_item(model, &item)?;
    }
    Ok(())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn all(v: Value) -> Vec<WantedInstance> {
        match LayoutSpec::parse(&v).unwrap().unwrap() {
            LayoutSpec::All(w) => w,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn notation_strings_lists_and_tables() {
        let w = all(json!("3g.40gb@4, 2x1g.10gb"));
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].start, Some(4));
        let w = all(json!(["3g.40gb[2c,1c]", {"profile": "1g.10gb", "start": 0}]));
        assert_eq!(w[0].cis, Some(vec![2, 1]));
        assert_eq!(w[1].start, Some(0));
        assert!(all(json!({})).is_empty());
        assert_eq!(LayoutSpec::parse(&json!(null)).unwrap(), None);
    }

    #[test]
    fn per_model_layouts_are_checked_on_their_model() {
        let spec =
            LayoutSpec::parse(&json!({"NVIDIA H100 80GB HBM3": ["7g.80gb"], "A30": "4g.24gb"}))
                .unwrap()
                .unwrap();
        assert_eq!(
            spec.for_gpu(Some("H100-80GB")).unwrap()[0].profile,
            "7g.80gb"
        );
        assert_eq!(spec.for_gpu(Some("B200-180GB")), None);
        let e = LayoutSpec::parse(&json!({"H100-80GB": ["1g.5gb"]})).unwrap_err();
        assert!(
            e.contains("1g.5gb") && e.contains("does not exist on H100-80GB"),
            "{e}"
        );
        let e = LayoutSpec::parse(&json!({"H10-80GB": ["1g.10gb"]})).unwrap_err();
        assert!(e.contains("not a GPU model"), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        let e = LayoutSpec::parse(&json!(3)).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
        let e = LayoutSpec::parse(&json!([{"profile": "1g.10gb", "strat": 1}])).unwrap_err();
        assert!(
            e.contains("unknown key `strat`") && e.contains("did you mean `start`?"),
            "{e}"
        );
        let e = LayoutSpec::parse(&json!(["3g.40bg"])).unwrap_err();
        assert!(e.contains("not a MIG profile name"), "{e}");
    }
}
