//! Reading a module's argument table strictly: every key must be one the module takes
//! (else the error names it and the closest valid key), and every value the type the key
//! wants. Errors name the module; the loader adds `file:line` and the task.

use std::path::Path;
use std::time::Duration;

use mlua::{Table, Value};
use serde_json::Value as Json;

use super::{ModuleName, closest};
use crate::playbook::convert::{key_display, lua_to_json};
use crate::playbook::play::FnRef;
use crate::playbook::policy::Policies;
use migfleet_proto::OnBusy;

/// The longest time a module argument may ask for.
const WEEK_S: f64 = 7.0 * 24.0 * 3600.0;

/// What parsing may consult: the Lua state (to compile named policies), the policy
/// search path, the mig-parted files read so far, and where relative paths start.
pub struct ParseCx<'a> {
    pub lua: &'a mlua::Lua,
    pub policies: &'a Policies,
    pub configs: &'a super::target::ConfigFiles,
    /// The playbook's folder: relative file names are looked up there too.
    pub base_dir: &'a Path,
}

/// One module call's arguments.
pub struct Args<'a> {
    pub module: ModuleName,
    table: &'a Table,
    pub cx: &'a ParseCx<'a>,
}

impl<'a> Args<'a> {
    /// Checks every key of `table` against the module's keys.
    pub fn new(
        module: ModuleName,
        table: &'a Table,
        cx: &'a ParseCx<'a>,
    ) -> Result<Args<'a>, String> {
        let keys = module.keys();
        for kv in table.pairs::<Value, Value>() {
            let (k, _) = kv.map_err(|e| e.to_string())?;
            let Value::String(s) = &k else {
                return Err(format!(
                    "{}: unexpected positional entry [{}]; arguments are named: {}",
                    module.as_str(),
                    key_display(&k),
                    keys.join(", ")
                ));
            };
            let key = s.to_string_lossy();
            if !keys.contains(&key.as_str()) {
                let hint = closest(&key, keys.iter().copied())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(format!(
                    "{}: unknown argument `{key}`{hint}; it takes: {}",
                    module.as_str(),
                    keys.join(", ")
                ));
            }
        }
        Ok(Args { module, table, cx })
    }

    fn bad(&self, key: &str, expected: &str, got: &Value) -> String {
        format!(
            "{}: `{key}` must be {expected}, got {}",
            self.module.as_str(),
            describe(got)
        )
    }

    /// The raw value of `key` (`Nil` when absent).
    pub fn raw(&self, key: &str) -> Result<Value, String> {
        self.table.raw_get(key).map_err(|e| e.to_string())
    }

    pub fn has(&self, key: &str) -> bool {
        !matches!(self.raw(key), Ok(Value::Nil) | Err(_))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::Boolean(b) => Ok(Some(b)),
            other => Err(self.bad(key, "true or false", &other)),
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::String(s) => s
                .to_str()
                .map(|s| Some(s.to_string()))
                .map_err(|_| format!("{}: `{key}` is not valid UTF-8", self.module.as_str())),
            other => Err(self.bad(key, "a string", &other)),
        }
    }

    /// A list of strings; with `one_ok`, a single string is a list of one.
    pub fn strings(&self, key: &str, one_ok: bool) -> Result<Option<Vec<String>>, String> {
        let expected = if one_ok {
            "a string or a list of strings"
        } else {
            "a list of strings"
        };
        match self.raw(key)? {
            Value::Nil => Ok(None),
            Value::String(s) if one_ok => Ok(Some(vec![s.to_string_lossy()])),
            v @ Value::Table(_) => match lua_to_json(v.clone(), key).map(Some) {
                Ok(Some(Json::Array(items))) => items
                    .into_iter()
                    .map(|i| match i {
                        Json::String(s) => Ok(s),
                        _ => Err(self.bad(key, expected, &v)),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some),
                // `{}` is an empty list.
                Ok(Some(Json::Object(m))) if m.is_empty() => Ok(Some(Vec::new())),
                _ => Err(self.bad(key, expected, &v)),
            },
            other => Err(self.bad(key, expected, &other)),
        }
    }

    /// A positive number of seconds, up to a week.
    pub fn seconds(&self, key: &str) -> Result<Option<Duration>, String> {
        let v = self.raw(key)?;
        let n = match v {
            Value::Nil => return Ok(None),
            Value::Integer(i) => i as f64,
            Value::Number(n) => n,
            ref other => return Err(self.bad(key, "a number of seconds", other)),
        };
        if !(n.is_finite() && n > 0.0 && n <= WEEK_S) {
            return Err(self.bad(key, "a positive number of seconds (at most a week)", &v));
        }
        Ok(Some(Duration::from_secs_f64(n)))
    }

    /// A number of seconds from 0 up to a week (a delay, where none is a valid choice).
    pub fn delay(&self, key: &str) -> Result<Option<Duration>, String> {
        match self.raw(key)? {
            Value::Integer(0) => Ok(Some(Duration::ZERO)),
            Value::Number(0.0) => Ok(Some(Duration::ZERO)),
            _ => self.seconds(key),
        }
    }

    /// `gpus = {0, 1}`: GPU indices.
    pub fn gpus(&self) -> Result<Option<Vec<u32>>, String> {
        let v = self.raw("gpus")?;
        let expected = "a list of GPU indices like {0, 1}";
        match &v {
            Value::Nil => Ok(None),
            Value::Table(_) => match lua_to_json(v.clone(), "gpus").map(Some) {
                Ok(Some(Json::Array(items))) if !items.is_empty() => {
                    let mut out = Vec::new();
                    for i in items {
                        let n = i
                            .as_u64()
                            .and_then(|n| u32::try_from(n).ok())
                            .ok_or_else(|| self.bad("gpus", expected, &v))?;
                        if !out.contains(&n) {
                            out.push(n);
                        }
                    }
                    Ok(Some(out))
                }
                _ => Err(self.bad("gpus", expected, &v)),
            },
            other => Err(self.bad("gpus", expected, other)),
        }
    }

    /// `on_busy = "skip_gpu" | "fail_host"` (default `skip_gpu`).
    pub fn on_busy(&self) -> Result<OnBusy, String> {
        match self.string("on_busy")? {
            None => Ok(OnBusy::default()),
            Some(s) => OnBusy::from_name(&s).ok_or_else(|| {
                format!(
                    "{}: `on_busy` must be one of {}, got \"{s}\"",
                    self.module.as_str(),
                    OnBusy::NAMES
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(" or ")
                )
            }),
        }
    }

    /// A plain value (no functions) as JSON.
    pub fn json(&self, key: &str) -> Result<Option<Json>, String> {
        match self.raw(key)? {
            Value::Nil => Ok(None),
            v => lua_to_json(v, key)
                .map(Some)
                .map_err(|e| format!("{}: {e}", self.module.as_str())),
        }
    }

    /// A function value, if `key` holds one.
    pub fn function(&self, key: &str) -> Result<Option<FnRef>, String> {
        match self.raw(key)? {
            Value::Function(f) => Ok(Some(FnRef::new(f))),
            _ => Ok(None),
        }
    }

    /// The module's name, for messages.
    pub fn name(&self) -> &'static str {
        self.module.as_str()
    }
}

/// A Lua value for messages: its type, and the value when short.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let s = s.to_string_lossy();
            if s.chars().count() > 40 {
                format!("a string \"{}...\"", s.chars().take(37).collect::<String>())
            } else {
                format!("\"{s}\"")
            }
        }
        Value::Table(_) => "a table".into(),
        Value::Function(_) => "a function".into(),
        other => other.type_name().to_string(),
    }
}
