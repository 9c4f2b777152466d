//! What `mig.apply{...}` and `mig.assert{...}` accept as a layout, turned into per-GPU
//! wanted instances: a list of profile names (`"3g.40gb"`, `"3g.40gb@4"`) or tables
//! (`{profile = "3g.40gb", start = 4, cis = {1, 1, 1}}`), the same for every GPU or keyed
//! by model name. Pure: JSON in, protocol values out.

use migfleet_mig::catalog::find_model;
use migfleet_proto::WantedInstance;
use serde_json::Value;

/// One GPU's layout from a layout value. `model` picks the entry when the value is keyed by
/// model; `Ok(None)` means the value names other models only (leave this GPU alone).
pub fn for_gpu(value: &Value, model: Option<&str>) -> Result<Option<Vec<WantedInstance>>, String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(instance)
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Value::Object(map) if map.is_empty() => Ok(Some(Vec::new())),
        Value::Object(map) => {
            let Some(model) = model else {
                return Ok(None);
            };
            for (key, entry) in map {
                let same = match (find_model(key), find_model(model)) {
                    (Ok(a), Ok(b)) => a.name == b.name,
                    _ => key.eq_ignore_ascii_case(model),
                };
                if same {
                    return for_gpu(entry, Some(model));
                }
            }
            Ok(None)
        }
        Value::Null => Ok(None),
        other => Err(format!(
            "a layout is a list of profiles (or a table of them by GPU model), not {}",
            kind(other)
        )),
    }
}

fn instance(v: &Value) -> Result<WantedInstance, String> {
    match v {
        Value::String(s) => {
            let (name, start) = match s.split_once('@') {
                Some((n, st)) => (
                    n,
                    Some(
                        st.parse::<u8>()
                            .map_err(|_| format!("`{s}`: `{st}` is not a placement start"))?,
                    ),
                ),
                None => (s.as_str(), None),
            };
            Ok(WantedInstance {
                profile: name.trim().to_string(),
                start,
                cis: None,
            })
        }
        Value::Object(m) => {
            for k in m.keys() {
                if !["profile", "start", "cis"].contains(&k.as_str()) {
                    return Err(format!(
                        "unknown key `{k}` in an instance (expected profile, start, cis)"
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
                        .ok_or_else(|| format!("`start` of {profile} must be a small integer"))?,
                ),
            };
            let cis = match m.get("cis") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => Some(
                    a.iter()
                        .map(|c| c.as_u64().and_then(|n| u8::try_from(n).ok()))
                        .collect::<Option<Vec<u8>>>()
                        .ok_or_else(|| {
                            format!("`cis` of {profile} must list compute slice counts")
                        })?,
                ),
                Some(_) => return Err(format!("`cis` of {profile} must be a list")),
            };
            Ok(WantedInstance {
                profile,
                start,
                cis,
            })
        }
        other => Err(format!(
            "an instance is a profile name or a table, not {}",
            kind(other)
        )),
    }
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

    #[test]
    fn lists_tables_and_per_model_layouts() {
        let l = for_gpu(
            &json!(["3g.40gb@4", {"profile": "1g.10gb", "cis": [1]}]),
            Some("H100-80GB"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(l[0].start, Some(4));
        assert_eq!(l[1].cis, Some(vec![1]));
        let per_model = json!({"NVIDIA H100 80GB HBM3": ["7g.80gb"], "A30": ["4g.24gb"]});
        assert_eq!(
            for_gpu(&per_model, Some("H100-80GB")).unwrap().unwrap()[0].profile,
            "7g.80gb"
        );
        assert_eq!(for_gpu(&per_model, Some("B200-180GB")).unwrap(), None);
        assert!(
            for_gpu(&json!(3), None)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            for_gpu(&json!([{"profile": "x", "size": 1}]), None)
                .unwrap_err()
                .contains("unknown key `size`")
        );
    }
}
