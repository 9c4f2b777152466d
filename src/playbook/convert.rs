//! Values between Lua and JSON: what the playbook layer hands to Lua (facts, vars) and
//! takes back (policy results, module arguments). Strict: functions, mixed or sparse
//! tables, non-finite numbers and deep or recursive tables are errors naming the path.

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt, Value};
use serde_json::Value as Json;

use super::error::{ErrorKind, PlaybookError};

/// Tables nested deeper than this are refused (a recursive table would never end).
const MAX_DEPTH: usize = 64;

/// JSON -> Lua. Objects become tables, arrays 1-based sequences (tagged with mlua's array
/// metatable so `[]` round-trips), `null` becomes `nil`.
pub fn to_lua_value(lua: &Lua, v: &Json) -> mlua::Result<Value> {
    lua.to_value_with(
        v,
        SerializeOptions::new()
            .serialize_none_to_null(false)
            .serialize_unit_to_null(false),
    )
}

/// Lua -> JSON. Tables whose keys are exactly `1..n` become arrays, tables with string keys
/// objects; empty tables are `{}` unless they carry the array metatable (then `[]`).
/// Functions, mixed or sparse tables, non-finite numbers, deep/recursive tables are errors.
pub fn from_lua_value(v: Value) -> Result<Json, PlaybookError> {
    lua_to_json(v, "").map_err(|m| PlaybookError::new(ErrorKind::Conversion, None, m))
}

/// [`from_lua_value`] with the path of the value for messages (`vars`, `layout`).
pub(crate) fn lua_to_json(v: Value, path: &str) -> Result<Json, String> {
    let mut budget = MAX_NODES;
    convert(v, path, 0, &mut budget)
}

/// Values a conversion may produce in all. A table that holds the same subtable many
/// times (`t = {s, s, s}` nested a few levels) would otherwise be expanded exponentially.
pub const MAX_NODES: usize = 100_000;

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" at '{path}'")
    }
}

fn convert(v: Value, path: &str, depth: usize, budget: &mut usize) -> Result<Json, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "table nesting deeper than {MAX_DEPTH}{} (recursive table?)",
            at(path)
        ));
    }
    if *budget == 0 {
        return Err(format!(
            "value{} holds more than {MAX_NODES} values in all (a table that repeats the same subtable many times?)",
            at(path)
        ));
    }
    *budget -= 1;
    Ok(match v {
        Value::Nil => Json::Null,
        Value::LightUserData(ud) if ud.0.is_null() => Json::Null,
        Value::Boolean(b) => Json::Bool(b),
        Value::Integer(i) => Json::from(i),
        Value::Number(n) => match serde_json::Number::from_f64(n) {
            Some(n) => Json::Number(n),
            None => {
                return Err(format!(
                    "number {n}{} cannot be represented in JSON",
                    at(path)
                ));
            }
        },
        Value::String(s) => match s.to_str() {
            Ok(s) => Json::String(s.to_string()),
            Err(_) => return Err(format!("string{} is not valid UTF-8", at(path))),
        },
        Value::Function(_) => {
            return Err(format!("cannot convert a function{} to data", at(path)));
        }
        Value::Table(t) => {
            let mut pairs = Vec::new();
            for kv in t.pairs::<Value, Value>() {
                if pairs.len() >= *budget {
                    return Err(format!(
                        "table{} holds more than {MAX_NODES} values in all",
                        at(path)
                    ));
                }
                pairs.push(kv.map_err(|e| e.to_string())?);
            }
            if pairs.is_empty() {
                // mlua's Serialize knows whether the table carries the array metatable.
                return Ok(serde_json::to_value(Value::Table(t))
                    .ok()
                    .filter(Json::is_array)
                    .unwrap_or_else(|| Json::Object(Default::default())));
            }
            let n = pairs.len();
            let all_int = pairs.iter().all(|(k, _)| {
                matches!(k, Value::Integer(i) if *i >= 1 && usize::try_from(*i).is_ok_and(|i| i <= n))
            });
            if all_int {
                let mut slots: Vec<Option<Value>> = vec![None; n];
                for (k, v) in pairs {
                    if let Value::Integer(i) = k
                        && let Some(slot) =
                            usize::try_from(i - 1).ok().and_then(|i| slots.get_mut(i))
                    {
                        *slot = Some(v);
                    }
                }
                let mut arr = Vec::with_capacity(n);
                for (i, v) in slots.into_iter().enumerate() {
                    let v = v.unwrap_or(Value::Nil);
                    arr.push(convert(
                        v,
                        &child(path, &(i + 1).to_string()),
                        depth + 1,
                        budget,
                    )?);
                }
                Json::Array(arr)
            } else {
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    let key = match k {
                        Value::String(s) => s.to_string_lossy(),
                        other => {
                            return Err(format!(
                                "table{} mixes list entries and named keys (key {})",
                                at(path),
                                key_display(&other)
                            ));
                        }
                    };
                    let j = convert(v, &child(path, &key), depth + 1, budget)?;
                    map.insert(key, j);
                }
                Json::Object(map)
            }
        }
        other => {
            return Err(format!(
                "cannot convert a {}{} to data",
                other.type_name(),
                at(path)
            ));
        }
    })
}

/// A Lua key for messages: `3`, `"name"`, or its type.
pub(crate) fn key_display(k: &Value) -> String {
    match k {
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        other => other.type_name().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::sandbox::{Limits, eval, new_lua};
    use serde_json::json;

    #[test]
    fn json_roundtrip() {
        let lua = new_lua(&Limits::default()).unwrap();
        let v = json!({"a": [1, 2.5, "x", true], "b": {"c": []}, "d": {}});
        let l = to_lua_value(&lua, &v).unwrap();
        assert_eq!(from_lua_value(l).unwrap(), v);
    }

    #[test]
    fn lua_tables_to_json() {
        let lua = new_lua(&Limits::default()).unwrap();
        let v = eval(&lua, "t", "return {1, 2, {x = 1}, {}}").unwrap();
        assert_eq!(from_lua_value(v).unwrap(), json!([1, 2, {"x": 1}, {}]));
        for bad in [
            "return {1, x = 2}",
            "return {[1] = 1, [3] = 3}",
            "return {f = function() end}",
            "return 0/0",
            "local t = {} t.t = t return t",
            // 2^30 leaves from 30 levels of one shared subtable.
            "local t = {1} for i = 1, 30 do t = {t, t} end return t",
        ] {
            let v = eval(&lua, "t", bad).unwrap();
            let e = from_lua_value(v).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Conversion, "{bad}: {e}");
        }
    }
}
