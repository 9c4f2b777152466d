//! Jinja in inventory variables, rendered where the values are used (connection settings,
//! `migfleet_*`, the vars playbooks see), lazily as Ansible's templar does: a variable is
//! rendered when a template asks for it, with the host's own variables and Ansible's magic
//! variables (`inventory_hostname`, `inventory_hostname_short`, `group_names`, `groups`,
//! `hostvars`, `inventory_file`, `inventory_dir`; `playbook_dir` is not one of them here). `!unsafe` values are never
//! rendered. A template that is one expression (`"{{ base_port + 1 }}"`) keeps its type,
//! as ansible-core 2.19 does; anything else renders to a string.
//!
//! The engine is `minijinja`, with strict undefined variables (Ansible fails on them
//! too) and the filters inventories use that it lacks (`regex_replace`, `regex_search`,
//! `basename`, `dirname`, `quote`, `ternary`, `to_json`); `default`, `lower`, `upper`,
//! `replace`, `join`, `int`, `bool`, `trim`, `split`, `length` are its own.

use super::vault::Secrets;
use super::{Inventory, yaml11};
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value as JValue};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

fn jv<T: serde::Serialize>(v: T) -> JValue {
    JValue::from(minijinja::value::Serde(v))
}

/// How deep variables may refer to variables (a loop is refused before this).
const MAX_DEPTH: usize = 32;

/// Whether a string holds template syntax.
pub fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Whether any string inside `v` (outside `!unsafe` values) is a template.
fn has_template(v: &Value) -> bool {
    if yaml11::unsafe_text(v).is_some() {
        return false;
    }
    match v {
        Value::String(s) => is_template(s),
        Value::Array(items) => items.iter().any(has_template),
        Value::Object(m) => m.values().any(has_template),
        _ => false,
    }
}

/// A template failure, for the message: the variable and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub variable: String,
    pub message: String,
}

/// Renders every variable of `host` (given its merged raw variables): templates rendered,
/// `!unsafe` values unwrapped. Returns the first failure with the variable it is in.
/// `world` is asked for only when the host has a template: an inventory without any never
/// builds one.
pub fn render_host(
    world: impl FnOnce() -> Arc<World>,
    host: &str,
    raw: Map<String, Value>,
    vault: &Secrets,
) -> Result<Map<String, Value>, TemplateError> {
    if !raw.values().any(has_template) {
        let mut out = raw;
        for (k, v) in out.iter_mut() {
            let mut plain = v.clone();
            match plain_value(&mut plain, vault) {
                Ok(()) => *v = plain,
                Err(message) => keep_encrypted(k, message)?,
            }
        }
        return Ok(out);
    }
    let scope = Arc::new(HostScope::new(world(), host, raw.clone()));
    let mut out = Map::new();
    for (k, raw_v) in raw {
        let v = match scope.resolve(&k) {
            Ok(v) => v,
            // A vault value nothing renders: left encrypted, as below.
            Err(message) if !has_template(&raw_v) && has_vault(&raw_v) => {
                keep_encrypted(&k, message)?;
                raw_v
            }
            Err(message) => {
                return Err(TemplateError {
                    variable: k,
                    message,
                });
            }
        };
        out.insert(k, v);
    }
    Ok(out)
}

/// A vault value that cannot be decrypted (no password, or not the right one) fails
/// only where it is used, as in Ansible: a variable the connection is made from (see
/// [`super::connection::ANSIBLE_VARS_READ`], and every `migfleet_*`) fails the host now;
/// any other is left encrypted for playbooks, with a warning naming it.
fn keep_encrypted(variable: &str, message: String) -> Result<(), TemplateError> {
    if variable.starts_with("migfleet_") || super::connection::ANSIBLE_VARS_READ.contains(&variable)
    {
        return Err(TemplateError {
            variable: variable.to_string(),
            message,
        });
    }
    crate::report::warn_once(&format!(
        "variable `{variable}` is {message}: left encrypted, playbooks see {{__ansible_vault = TEXT}}"
    ));
    Ok(())
}

/// Whether a `!vault` value is inside `v`.
pub fn has_vault(v: &Value) -> bool {
    if yaml11::vault_text(v).is_some() {
        return true;
    }
    match v {
        Value::Array(items) => items.iter().any(has_vault),
        Value::Object(m) => m.values().any(has_vault),
        _ => false,
    }
}

/// `v` as playbooks see it: every `{"__ansible_unsafe": s}` inside it replaced by `s`,
/// every `!vault` value by its decrypted text, every number JSON cannot hold by its text
/// as Python's `str` gives it (`inf`, `nan`, the digits). Fails on a vault value no
/// password opens.
pub fn plain_value(v: &mut Value, vault: &Secrets) -> Result<(), String> {
    if let Some(s) = yaml11::unsafe_text(v) {
        *v = Value::String(s.to_string());
        return Ok(());
    }
    if let Some(text) = yaml11::vault_text(v) {
        *v = Value::String(vault.decrypt_cached(text)?);
        return Ok(());
    }
    if let Some(n) = plain_python(v) {
        *v = n;
        return Ok(());
    }
    match v {
        Value::Array(items) => items.iter_mut().try_for_each(|i| plain_value(i, vault)),
        Value::Object(m) => m.values_mut().try_for_each(|i| plain_value(i, vault)),
        _ => Ok(()),
    }
}

/// A value kept in a marker for `--list` (a wide number, a timestamp) as templates and
/// playbooks see it: Python's `str()` of it.
fn plain_python(v: &Value) -> Option<Value> {
    if let Some(iso) = yaml11::datetime_text(v) {
        return Some(Value::String(iso.replacen('T', " ", 1)));
    }
    let text = yaml11::wide_number_text(v)?;
    Some(Value::String(
        match text {
            "Infinity" => "inf",
            "-Infinity" => "-inf",
            "NaN" => "nan",
            digits => digits,
        }
        .to_string(),
    ))
}

/// What every host's templates share: the inventory (for `groups` and `hostvars`) and the
/// engine.
pub struct World {
    inventory: Inventory,
    env: Environment<'static>,
    groups: JValue,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("World")
    }
}

impl World {
    pub fn new(inventory: &Inventory) -> Arc<World> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Python's str/dict/list methods (`inventory_hostname.split('.')`, `d.items()`),
        // which Jinja in Ansible has from Python itself.
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // A value inside a longer template prints as Python's str() prints it.
        env.set_formatter(|out, _state, value| {
            let text = match to_json(value) {
                Ok(Value::Null) => String::new(),
                Ok(Value::String(s)) => s,
                Ok(v) => py_repr(&v),
                Err(_) => value.to_string(),
            };
            out.write_str(&text).map_err(Error::from)
        });
        add_filters(&mut env);
        let mut groups = serde_json::Map::new();
        for g in inventory.group_names() {
            let hosts = inventory.group_hosts(&g);
            groups.insert(g, Value::from(hosts));
        }
        Arc::new(World {
            inventory: inventory.clone(),
            env,
            groups: jv(Value::Object(groups)),
        })
    }
}

/// One host's variables as templates see them: rendered on first use, cached.
struct HostScope {
    world: Arc<World>,
    host: String,
    raw: Map<String, Value>,
    done: Mutex<HashMap<String, Result<Value, String>>>,
    /// Variables being rendered now, to name a loop.
    active: Mutex<Vec<String>>,
}

impl std::fmt::Debug for HostScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vars of {}", self.host)
    }
}

impl HostScope {
    fn new(world: Arc<World>, host: &str, raw: Map<String, Value>) -> HostScope {
        HostScope {
            world,
            host: host.to_string(),
            raw,
            done: Mutex::new(HashMap::new()),
            active: Mutex::new(Vec::new()),
        }
    }

    fn magic(&self, key: &str) -> Option<JValue> {
        let inv = &self.world.inventory;
        Some(match key {
            "inventory_hostname" => JValue::from(self.host.clone()),
            "inventory_hostname_short" => JValue::from(
                self.host
                    .split('.')
                    .next()
                    .unwrap_or(&self.host)
                    .to_string(),
            ),
            "group_names" => {
                let mut g: Vec<String> = inv
                    .host_groups(&self.host)
                    .into_iter()
                    .filter(|g| g != "all")
                    .collect();
                g.sort();
                jv(g)
            }
            "groups" => self.world.groups.clone(),
            // The source the host was first found in, and its directory.
            "inventory_file" | "inventory_dir" => {
                let source = inv
                    .hosts
                    .get(&self.host)
                    .and_then(|h| h.origins.first.clone());
                match source {
                    None => JValue::from(()),
                    Some(f) if key == "inventory_file" => JValue::from(f.display().to_string()),
                    Some(f) => JValue::from(
                        f.parent()
                            .map(|d| d.display().to_string())
                            .unwrap_or_default(),
                    ),
                }
            }
            "hostvars" => JValue::from_object(HostVars {
                world: self.world.clone(),
                cache: Mutex::new(HashMap::new()),
            }),
            _ => return None,
        })
    }

    /// The variable `key`, rendered (and cached).
    fn resolve(self: &Arc<Self>, key: &str) -> Result<Value, String> {
        if let Some(r) = self.done.lock().ok().and_then(|d| d.get(key).cloned()) {
            return r;
        }
        let Some(raw) = self.raw.get(key).cloned() else {
            return Err(format!("`{key}` is not defined"));
        };
        {
            let mut active = self.active.lock().map_err(|_| "poisoned".to_string())?;
            if active.iter().any(|a| a == key) {
                let mut chain = active.clone();
                chain.push(key.to_string());
                return Err(format!(
                    "variables refer to each other in a loop: {}",
                    chain.join(" -> ")
                ));
            }
            if active.len() >= MAX_DEPTH {
                return Err(format!("variables nest more than {MAX_DEPTH} deep"));
            }
            active.push(key.to_string());
        }
        let r = self.render_value(&raw);
        if let Ok(mut active) = self.active.lock() {
            active.pop();
        }
        if let Ok(mut d) = self.done.lock() {
            d.insert(key.to_string(), r.clone());
        }
        r
    }

    fn render_value(self: &Arc<Self>, v: &Value) -> Result<Value, String> {
        if let Some(s) = yaml11::unsafe_text(v) {
            return Ok(Value::String(s.to_string()));
        }
        if let Some(n) = plain_python(v) {
            return Ok(n);
        }
        if let Some(text) = yaml11::vault_text(v) {
            return self
                .world
                .inventory
                .vault
                .decrypt_cached(text)
                .map(Value::String);
        }
        match v {
            Value::String(s) if is_template(s) => self.render_str(s),
            Value::Array(items) => items
                .iter()
                .map(|i| self.render_value(i))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.render_value(v)?);
                }
                Ok(Value::Object(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn render_str(self: &Arc<Self>, s: &str) -> Result<Value, String> {
        let ctx = JValue::from_dyn_object(self.clone());
        let env = &self.world.env;
        // One expression and nothing else keeps its type (2.19's native results).
        // `{{ a }}{{ b }}` leaves `a }}{{ b`, which is no expression: a template then.
        if let Some((expr, compiled)) =
            single_expression(s).and_then(|e| Some((e, env.compile_expression(e).ok()?)))
        {
            let v = compiled.eval(ctx).map_err(|e| describe(&e, self))?;
            if v.is_undefined() {
                return Err(format!("`{expr}` is undefined"));
            }
            return serde_json::to_value(&v).map_err(|e| e.to_string());
        }
        env.render_str(s, ctx)
            .map(Value::String)
            .map_err(|e| describe(&e, self))
    }
}

/// What is between the outer `{{` and `}}`: the one expression the template is, if it
/// compiles as one.
fn single_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    Some(inner.trim())
}

fn describe(e: &Error, _scope: &HostScope) -> String {
    let mut msg = match (e.kind(), e.detail()) {
        // A failure inside a variable this one uses, already worded as such.
        (ErrorKind::InvalidOperation, Some(d)) if d.starts_with("in `") => d.to_string(),
        (ErrorKind::UndefinedError, d) => {
            format!(
                "undefined variable{}",
                d.map(|d| format!(": {d}")).unwrap_or_default()
            )
        }
        (k, d) => format!("{k}{}", d.map(|d| format!(": {d}")).unwrap_or_default()),
    };
    // A failure inside a variable this one uses says which.
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        msg.push_str(": ");
        msg.push_str(&inner.to_string());
        src = inner.source();
    }
    msg
}

impl Object for HostScope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let key = key.as_str()?;
        if self.raw.contains_key(key) {
            return match self.resolve(key) {
                Ok(v) => Some(jv(v)),
                // An error inside a variable used here: raised as this lookup's failure.
                Err(m) => Some(JValue::from(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "in `{key}` of {} (set in {}): {m}",
                        self.host,
                        self.world.inventory.var_origin(&self.host, key).display()
                    ),
                ))),
            };
        }
        self.magic(key)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<JValue> = self.raw.keys().map(|k| JValue::from(k.clone())).collect();
        for m in [
            "inventory_hostname",
            "inventory_hostname_short",
            "group_names",
            "groups",
            "hostvars",
            "inventory_file",
            "inventory_dir",
        ] {
            keys.push(JValue::from(m));
        }
        Enumerator::Values(keys)
    }
}

/// `hostvars`: every host's variables, each rendered in that host's own scope.
struct HostVars {
    world: Arc<World>,
    cache: Mutex<HashMap<String, Arc<HostScope>>>,
}

impl std::fmt::Debug for HostVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("hostvars")
    }
}

impl Object for HostVars {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let host = key.as_str()?;
        if !self.world.inventory.hosts.contains_key(host) {
            return None;
        }
        let mut cache = self.cache.lock().ok()?;
        let scope = cache
            .entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(HostScope::new(
                    self.world.clone(),
                    host,
                    self.world.inventory.host_vars(host),
                ))
            })
            .clone();
        Some(JValue::from_dyn_object(scope))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(
            self.world
                .inventory
                .hosts()
                .into_iter()
                .map(JValue::from)
                .collect(),
        )
    }
}

fn add_filters(env: &mut Environment<'static>) {
    fn regex(pattern: &str) -> Result<regex::Regex, Error> {
        regex::Regex::new(pattern)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("bad regex: {e}")))
    }
    // Python's `\1` back-references become the regex crate's `${1}`.
    fn replacement(r: &str) -> String {
        let mut out = String::new();
        let mut chars = r.chars().peekable();
        while let Some(c) = chars.next() {
            match (c, chars.peek()) {
                ('\\', Some(d)) if d.is_ascii_digit() => {
                    let d = *d;
                    chars.next();
                    out.push_str(&format!("${{{d}}}"));
                }
                ('$', _) => out.push_str("$$"),
                _ => out.push(c),
            }
        }
        out
    }
    env.add_filter(
        "regex_replace",
        |value: String, pattern: String, replace: Option<String>| -> Result<String, Error> {
            let re = regex(&pattern)?;
            Ok(re
                .replace_all(&value, replacement(&replace.unwrap_or_default()).as_str())
                .into_owned())
        },
    );
    env.add_filter(
        "regex_search",
        |value: String, pattern: String| -> Result<JValue, Error> {
            let re = regex(&pattern)?;
            Ok(re
                .find(&value)
                .map_or(JValue::from(()), |m| JValue::from(m.as_str().to_string())))
        },
    );
    env.add_filter("basename", |value: String| -> String {
        value.rsplit('/').next().unwrap_or("").to_string()
    });
    env.add_filter("dirname", |value: String| -> String {
        match value.rfind('/') {
            Some(0) => "/".to_string(),
            Some(i) => value[..i].to_string(),
            None => String::new(),
        }
    });
    env.add_filter("quote", |value: String| -> String {
        if !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c))
        {
            value
        } else {
            format!("'{}'", value.replace('\'', "'\"'\"'"))
        }
    });
    env.add_filter(
        "ternary",
        |value: JValue, yes: JValue, no: JValue| -> JValue {
            if value.is_true() { yes } else { no }
        },
    );
    env.add_filter("to_json", |value: JValue| -> Result<String, Error> {
        python_json_dumps(&value, None)
    });
    env.add_filter("to_nice_json", |value: JValue| -> Result<String, Error> {
        python_json_dumps(&value, Some(4))
    });
    env.add_filter("from_json", |text: String| -> Result<JValue, Error> {
        serde_json::from_str::<Value>(&text)
            .map(jv)
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("from_json: {e}")))
    });
    env.add_filter("dict2items", |value: JValue| -> Result<JValue, Error> {
        let m: Map<String, Value> = serde_json::from_value(to_json(&value)?)
            .map_err(|_| Error::new(ErrorKind::InvalidOperation, "dict2items needs a mapping"))?;
        Ok(jv(m
            .into_iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect::<Vec<_>>()))
    });
    env.add_filter("items2dict", |value: JValue| -> Result<JValue, Error> {
        let items: Vec<Value> = serde_json::from_value(to_json(&value)?).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "items2dict needs a list of {key, value}",
            )
        })?;
        let mut out = Map::new();
        for i in items {
            match (i.get("key"), i.get("value")) {
                (Some(Value::String(k)), Some(v)) => {
                    out.insert(k.clone(), v.clone());
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "items2dict needs a list of {key, value}",
                    ));
                }
            }
        }
        Ok(jv(out))
    });
    env.add_filter(
        "combine",
        |base: JValue,
         rest: minijinja::value::Rest<JValue>,
         kwargs: minijinja::value::Kwargs|
         -> Result<JValue, Error> {
            let recursive: Option<bool> = kwargs.get("recursive")?;
            kwargs.assert_all_used()?;
            let mut out = to_json(&base)?;
            for other in rest.iter() {
                combine(&mut out, to_json(other)?, recursive.unwrap_or(false));
            }
            Ok(jv(out))
        },
    );
    env.add_filter("b64encode", |value: String| -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
    });
    env.add_filter("b64decode", |value: String| -> Result<String, Error> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.trim())
            .map_err(|e| Error::new(ErrorKind::InvalidOperation, format!("b64decode: {e}")))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    });
    env.add_filter(
        "regex_findall",
        |value: String, pattern: String| -> Result<Vec<String>, Error> {
            Ok(regex(&pattern)?
                .find_iter(&value)
                .map(|m| m.as_str().to_string())
                .collect())
        },
    );
    env.add_filter("flatten", |value: JValue| -> Result<JValue, Error> {
        fn flat(v: Value, out: &mut Vec<Value>) {
            match v {
                Value::Array(items) => items.into_iter().for_each(|i| flat(i, out)),
                other => out.push(other),
            }
        }
        let mut out = Vec::new();
        flat(to_json(&value)?, &mut out);
        Ok(jv(out))
    });
    // Set filters, keeping the first list's order as Ansible's do.
    fn set_op(a: &JValue, b: &JValue, keep: fn(bool, bool) -> bool) -> Result<JValue, Error> {
        let (Value::Array(a), Value::Array(b)) = (to_json(a)?, to_json(b)?) else {
            return Err(Error::new(ErrorKind::InvalidOperation, "needs two lists"));
        };
        let mut out: Vec<Value> = Vec::new();
        for v in a.iter().chain(b.iter()) {
            if keep(a.contains(v), b.contains(v)) && !out.contains(v) {
                out.push(v.clone());
            }
        }
        Ok(jv(out))
    }
    env.add_filter("union", |a: JValue, b: JValue| set_op(&a, &b, |_, _| true));
    env.add_filter("intersect", |a: JValue, b: JValue| {
        set_op(&a, &b, |x, y| x && y)
    });
    env.add_filter("difference", |a: JValue, b: JValue| {
        set_op(&a, &b, |x, y| x && !y)
    });
    env.add_filter("symmetric_difference", |a: JValue, b: JValue| {
        set_op(&a, &b, |x, y| x != y)
    });
    env.add_filter(
        "mandatory",
        |value: JValue, msg: Option<String>| -> Result<JValue, Error> {
            if value.is_undefined() {
                return Err(Error::new(
                    ErrorKind::UndefinedError,
                    msg.unwrap_or_else(|| "a mandatory variable is not defined".into()),
                ));
            }
            Ok(value)
        },
    );
    // Ansible's regex tests: `match` anchors at the start, `search` anywhere.
    env.add_test(
        "match",
        |value: String, pattern: String| -> Result<bool, Error> {
            Ok(regex(&format!("^(?:{pattern})"))?.is_match(&value))
        },
    );
    env.add_test(
        "search",
        |value: String, pattern: String| -> Result<bool, Error> {
            Ok(regex(&pattern)?.is_match(&value))
        },
    );
    env.add_test(
        "regex",
        |value: String, pattern: String| -> Result<bool, Error> {
            Ok(regex(&pattern)?.is_match(&value))
        },
    );
    // Only the `env` lookup: inventories read the controller's environment with it; the
    // others read files or run commands, which a template here never does.
    env.add_function(
        "lookup",
        |kind: String, name: String, kwargs: minijinja::value::Kwargs| -> Result<JValue, Error> {
            let default: Option<JValue> = kwargs.get("default")?;
            kwargs.assert_all_used()?;
            if kind != "env" {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "lookup('{kind}', ...) is not supported here (only lookup('env', NAME))"
                    ),
                ));
            }
            Ok(match std::env::var(&name) {
                Ok(v) => JValue::from(v),
                Err(_) => default.unwrap_or_else(|| JValue::from("")),
            })
        },
    );
}

/// Python's `repr()` of a value (`str()` for everything but strings, which it quotes):
/// `True`, `None`, `['a', 1]`, `{'k': 2.5}`.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Number(_) => super::python_json(v),
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32));
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn to_json(v: &JValue) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

/// `combine`: `b`'s keys over `a`'s, nested mappings merged too when `recursive`.
fn combine(a: &mut Value, b: Value, recursive: bool) {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            for (k, bv) in bm {
                match am.get_mut(&k) {
                    Some(av) if recursive && av.is_object() && bv.is_object() => {
                        combine(av, bv, true)
                    }
                    _ => {
                        am.insert(k, bv);
                    }
                }
            }
        }
        (a, b) => *a = b,
    }
}

/// Python's `json.dumps` as Ansible's `to_json` calls it: `", "` and `": "` separators,
/// keys in order, non-ASCII as `\uXXXX`; with an indent, `to_nice_json`'s layout
/// (sorted keys).
fn python_json_dumps(v: &JValue, indent: Option<usize>) -> Result<String, Error> {
    let value = to_json(v)?;
    if indent.is_some() {
        return Ok(ascii_only(&super::python_json(&value)));
    }
    fn compact(v: &Value, out: &mut String) {
        match v {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    compact(item, out);
                }
                out.push(']');
            }
            Value::Object(m) => {
                out.push('{');
                for (i, (k, item)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    out.push_str(": ");
                    compact(item, out);
                }
                out.push('}');
            }
            other => out.push_str(&super::python_json(other)),
        }
    }
    let mut out = String::new();
    compact(&value, &mut out);
    Ok(ascii_only(&out))
}

/// JSON text with every non-ASCII character escaped (`ensure_ascii`): only strings hold
/// them, so the whole text can be rewritten.
fn ascii_only(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inv(text: &str) -> Inventory {
        let dir = std::env::temp_dir().join(format!("migfleet-tmpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("inv-{}.yml", text.len()));
        std::fs::write(&p, text).unwrap();
        Inventory::load(&[p]).unwrap()
    }

    fn rendered(i: &Inventory, host: &str) -> Result<Map<String, Value>, TemplateError> {
        render_host(|| World::new(i), host, i.host_vars(host), &i.vault)
    }

    #[test]
    fn variables_render_lazily_with_magic_variables_and_filters() {
        let i = inv(r#"
all:
  vars:
    base_port: 2200
    remote_dir: "/srv/{{ inventory_hostname_short }}"
    port: "{{ base_port + 1 }}"
    label: "{{ site | default('none') | upper }}-{{ group_names | join(',') }}"
    bastion_ip: "{{ hostvars['login.example.com']['ansible_host'] }}"
    raw: !unsafe "{{ keep }}"
    clean: '{{ inventory_hostname | regex_replace("^gpu(\d+)\..*$", "node-\\1") }}'
    enabled: "{{ 'yes' | bool }}"
    window: 2024-06-01 04:30:00
    window_text: "{{ window }} UTC"
    ceiling: .inf
  children:
    gpus:
      hosts:
        gpu07.example.com:
    login:
      hosts:
        login.example.com:
          ansible_host: 10.0.0.1
"#);
        let v = rendered(&i, "gpu07.example.com").unwrap();
        assert_eq!(v["remote_dir"], json!("/srv/gpu07"));
        assert_eq!(v["port"], json!(2201), "one expression keeps its type");
        assert_eq!(v["label"], json!("NONE-gpus"));
        assert_eq!(v["bastion_ip"], json!("10.0.0.1"));
        assert_eq!(v["raw"], json!("{{ keep }}"), "!unsafe is never rendered");
        assert_eq!(v["clean"], json!("node-07"));
        assert_eq!(v["enabled"], json!(true));
        // Timestamps and infinities as Python's str() gives them.
        assert_eq!(v["window"], json!("2024-06-01 04:30:00"));
        assert_eq!(v["window_text"], json!("2024-06-01 04:30:00 UTC"));
        assert_eq!(v["ceiling"], json!("inf"));
    }

    /// Expected values are what ansible-core 2.19.14 printed for the same templates.
    #[test]
    fn ansible_filters_tests_and_python_methods_render_as_in_ansible() {
        let i = inv(r#"
all:
  vars:
    ports: [8080, 9090]
    labels: {zone: a, tier: gold}
    site: "Zürich"
    f1: "{{ labels | dict2items | map(attribute='key') | join(',') }}"
    f2: "{{ labels | to_json }}"
    f3: "{{ {'z': site, 'a': [1, 2.5, none, true]} | to_json }}"
    f4: "{{ {'z': 1, 'a': {'b': 2}} | to_nice_json }}"
    f5: "{{ labels | combine({'tier': 'silver', 'extra': 1}) }}"
    f6: "{{ {'a': {'x': 1}} | combine({'a': {'y': 2}}, recursive=true) }}"
    f7: "{{ 'abc' | b64encode }}|{{ 'YWJj' | b64decode }}"
    f8: "{{ [1, [2, [3]]] | flatten }}"
    f9: "{{ [1, 2, 3] | difference([2]) }}|{{ [1, 2] | union([2, 3]) }}|{{ [1, 2] | intersect([2, 3]) }}"
    f10: "{{ inventory_hostname is match('gpu') }}|{{ 'xab' is match('ab') }}|{{ 'xab' is search('ab') }}"
    f11: "{{ inventory_hostname.split('.')[0] }}|{{ labels.keys() | list | sort }}|{{ 'ab'.upper() }}"
    f12: "{{ 'a1b22' | regex_findall('[0-9]+') }}"
    f13: "{{ [{'key': 'k', 'value': 1}] | items2dict }}"
    f14: "{{ inventory_file | basename }}|{{ inventory_dir == (inventory_file | dirname) }}"
    f15: "{{ lookup('env', 'MIGFLEET_SURELY_UNSET_VAR') | default('fallback', true) }}"
    f16: "{{ labels }}|{{ none }}|{{ 2.50 }}|{{ ['a\"b', 'n\nl', 'Zü'] }}|{{ 1e20 }}|{{ {'a': none} }}"
  hosts:
    gpu01.example.com:
"#);
        let v = rendered(&i, "gpu01.example.com").unwrap();
        assert_eq!(
            v["f1"],
            json!("zone,tier"),
            "insertion order, as Python's dicts"
        );
        assert_eq!(v["f2"], json!(r#"{"zone": "a", "tier": "gold"}"#));
        assert_eq!(
            v["f3"],
            json!(r#"{"z": "Z\u00fcrich", "a": [1, 2.5, null, true]}"#)
        );
        assert_eq!(
            v["f4"],
            json!("{\n    \"a\": {\n        \"b\": 2\n    },\n    \"z\": 1\n}")
        );
        assert_eq!(v["f5"], json!({"zone": "a", "tier": "silver", "extra": 1}));
        assert_eq!(v["f6"], json!({"a": {"x": 1, "y": 2}}));
        assert_eq!(v["f7"], json!("YWJj|abc"));
        assert_eq!(v["f8"], json!([1, 2, 3]));
        assert_eq!(v["f9"], json!("[1, 3]|[1, 2, 3]|[2]"));
        assert_eq!(
            v["f10"],
            json!("True|False|True"),
            "Python's str() of a bool"
        );
        assert_eq!(v["f11"], json!("gpu01|['tier', 'zone']|AB"));
        assert_eq!(
            v["f16"],
            json!(r#"{'zone': 'a', 'tier': 'gold'}||2.5|['a"b', 'n\nl', 'Zü']|1e+20|{'a': None}"#)
        );
        assert_eq!(v["f12"], json!(["1", "22"]));
        assert_eq!(v["f13"], json!({"k": 1}));
        assert!(v["f14"].as_str().unwrap().ends_with(".yml|True"), "{v:?}");
        assert_eq!(v["f15"], json!("fallback"));
    }

    #[test]
    fn undefined_variables_and_loops_name_the_variable() {
        let i = inv("all:\n  hosts:\n    a:\n      x: \"{{ nope }}\"\n      y: 1\n");
        let e = rendered(&i, "a").unwrap_err();
        assert_eq!(e.variable, "x");
        assert!(e.message.contains("undefined"), "{e:?}");
        let i = inv("all:\n  hosts:\n    a:\n      p: \"{{ q }}\"\n      q: \"{{ p }}\"\n");
        let e = rendered(&i, "a").unwrap_err();
        assert_eq!(e.variable, "p");
        assert!(e.message.contains("loop: p -> q -> p"), "{e:?}");
    }

    #[test]
    fn a_template_error_names_the_file_the_variable_came_from() {
        let dir = std::env::temp_dir().join(format!("migfleet-origin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("group_vars/gpus")).unwrap();
        std::fs::create_dir_all(dir.join("host_vars")).unwrap();
        let hosts = dir.join("hosts.ini");
        std::fs::write(&hosts, "[gpus]\ngpu1 base='{{ nope }}'\ngpu2\n").unwrap();
        let site = dir.join("group_vars/gpus/site.yml");
        std::fs::write(&site, "dir: \"/srv/{{ base }}\"\n").unwrap();
        let hv = dir.join("host_vars/gpu2.yml");
        std::fs::write(&hv, "base: \"{{ 1 + }}\"\n").unwrap();
        let i = Inventory::load(std::slice::from_ref(&hosts)).unwrap();
        let err = |h: &str| i.render_vars(h, || World::new(&i)).unwrap_err().to_string();
        // `dir` fails because `base` (set in the INI file for gpu1) does.
        let e = err("gpu1");
        assert!(
            e.starts_with(&format!(
                "host `gpu1`: variable `base` (set in {})",
                hosts.display()
            )) || e.starts_with(&format!(
                "host `gpu1`: variable `dir` (set in {})",
                site.display()
            )),
            "{e}"
        );
        assert!(e.contains(&hosts.display().to_string()), "{e}");
        let e = err("gpu2");
        assert!(e.contains(&hv.display().to_string()), "{e}");
        assert_eq!(i.var_origin("gpu2", "dir"), site);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
