//! Loading playbooks: runs a playbook file in a sandbox environment that holds the module
//! constructors, `vars`, `policy(name)`, `task{}` and `play{}`, then validates the returned
//! tables into [`Play`]s with `file:line` positions. Also JSON <-> Lua conversion helpers.
//!
//! Positions: Lua tables carry no line information, so positions are recorded when Rust
//! callbacks run: module constructors (`mig.apply{...}`), `task{...}` and `play{...}` look at
//! their caller's current line (`Lua::inspect_stack(1)`) and store it in a weak-keyed side
//! table keyed by the table they return. Functions (`run`, `when`, policies) carry their
//! `linedefined`. A task's position is, in order: its `task{}` call, its module call, its
//! `run`/`when` function; a play's: its `play{}` call, else its first task's position.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::serde::SerializeOptions;
use mlua::{Function, Lua, LuaSerdeExt, Table, Value};
use serde_json::Value as Json;

use super::play::{Action, Cond, FnRef, Play, Serial, SourcePos, Task};
use super::{ErrorKind, PlaybookError, sandbox};

/// Module constructors available to playbooks (dotted names live in a table, `mig.apply`).
pub const MODULES: &[&str] = &[
    "mig.apply",
    "mig.mode",
    "mig.assert",
    "drain",
    "restore",
    "reboot",
    "command",
];

/// Where policies live relative to a project directory.
pub const POLICY_SUBDIR: &str = "lua/policies";

const PLAY_KEYS: &[&str] = &[
    "hosts",
    "name",
    "serial",
    "max_fail_percentage",
    "vars",
    "tasks",
];
const TASK_KEYS: &[&str] = &[
    "name", "when", "tags", "retries", "delay", "run", "action", "[1]",
];
const POSITIONS_KEY: &str = "migfleet.loader.positions";
const DEFAULT_DELAY: Duration = Duration::from_secs(5);
const MAX_DEPTH: usize = 64;

/// `<dir of the playbook>/lua/policies`.
pub fn default_policy_dir(playbook: &Path) -> PathBuf {
    playbook
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(POLICY_SUBDIR)
}

/// Reads `path` (in Rust), runs it as the text chunk `@<path>` in a fresh sandbox
/// environment, and validates the returned play table or list of play tables.
/// `policy(name)` loads `<policy_dir>/<name>.lua`.
pub fn load_playbook(
    lua: &Lua,
    path: &Path,
    extra_vars: &serde_json::Map<String, Json>,
    policy_dir: &Path,
) -> Result<Vec<Play>, PlaybookError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        PlaybookError::new(
            ErrorKind::Io,
            Some(SourcePos {
                file: file.clone(),
                line: 0,
            }),
            format!("cannot read playbook: {e}"),
        )
    })?;
    let lerr = |e| PlaybookError::from_lua(lua, e);

    let positions = lua.create_table().map_err(lerr)?;
    let weak = lua.create_table().map_err(lerr)?;
    weak.raw_set("__mode", "k").map_err(lerr)?;
    positions.set_metatable(Some(weak)).map_err(lerr)?;
    lua.set_named_registry_value(POSITIONS_KEY, &positions)
        .map_err(lerr)?;

    let env = sandbox::new_env(lua).map_err(lerr)?;
    install_api(lua, &env, extra_vars, policy_dir).map_err(lerr)?;

    sandbox::remember_chunk(lua, &file);
    sandbox::reset_budget(lua);
    let ret: Value = lua
        .load(src)
        .set_name(format!("@{file}"))
        .set_mode(ChunkMode::Text)
        .set_environment(env)
        .call(())
        .map_err(lerr)?;

    let whole_file = SourcePos { file, line: 0 };
    let ctx = Ctx {
        positions,
        file_pos: whole_file.clone(),
    };
    let Value::Table(t) = ret else {
        return Err(PlaybookError::invalid(
            &whole_file,
            format!(
                "playbook must return a play table or a list of play tables, got {}",
                ret.type_name()
            ),
        ));
    };
    let has_named = t
        .pairs::<Value, Value>()
        .any(|kv| kv.is_ok_and(|(k, _)| !matches!(k, Value::Integer(_))));
    if has_named {
        return Ok(vec![ctx.play(&t)?]);
    }
    let n = t.raw_len();
    if n == 0 {
        return Err(PlaybookError::invalid(
            &whole_file,
            "playbook returned an empty table; expected a play or a list of plays",
        ));
    }
    let mut plays = Vec::with_capacity(n);
    for i in 1..=n {
        match t.raw_get::<Value>(i).map_err(lerr)? {
            Value::Table(p) => plays.push(ctx.play(&p)?),
            other => {
                return Err(PlaybookError::invalid(
                    &whole_file,
                    format!("play #{i} must be a table, got {}", other.type_name()),
                ));
            }
        }
    }
    Ok(plays)
}

/// Installs the playbook API into `env`.
fn install_api(
    lua: &Lua,
    env: &Table,
    extra_vars: &serde_json::Map<String, Json>,
    policy_dir: &Path,
) -> mlua::Result<()> {
    // Keep helpers the runner put into every environment (`mig.pack`, `mig.layouts`) and
    // add the module constructors beside them.
    let mig = lua.create_table()?;
    if let Value::Table(helpers) = env.raw_get::<Value>("mig")? {
        for kv in helpers.pairs::<Value, Value>() {
            let (k, v) = kv?;
            mig.raw_set(k, v)?;
        }
    }
    for &name in MODULES {
        let ctor = module_ctor(lua, name)?;
        match name.strip_prefix("mig.") {
            Some(short) => mig.raw_set(short, ctor)?,
            None => env.raw_set(name, ctor)?,
        }
    }
    env.raw_set("mig", mig)?;
    env.raw_set(
        "vars",
        to_lua_value(lua, &Json::Object(extra_vars.clone()))?,
    )?;
    env.raw_set("task", marker(lua, "task")?)?;
    env.raw_set("play", marker(lua, "play")?)?;
    env.raw_set("policy", policy_loader(lua, policy_dir.to_path_buf())?)?;
    Ok(())
}

fn positioned_error(lua: &Lua, message: String) -> mlua::Error {
    PlaybookError::new(ErrorKind::Runtime, sandbox::caller_pos(lua), message).into()
}

fn record_pos(lua: &Lua, t: &Table) -> mlua::Result<()> {
    if let Some(pos) = sandbox::caller_pos(lua) {
        let positions: Table = lua.named_registry_value(POSITIONS_KEY)?;
        let rec = lua.create_sequence_from([
            Value::String(lua.create_string(&pos.file)?),
            Value::Integer(i64::from(pos.line)),
        ])?;
        positions.raw_set(t, rec)?;
    }
    Ok(())
}

/// `mig.apply{...}` etc.: returns `{__module = name, args = {...}}` and records its line.
fn module_ctor(lua: &Lua, name: &'static str) -> mlua::Result<Function> {
    lua.create_function(move |lua, arg: Value| {
        let args = match arg {
            Value::Nil => lua.create_table()?,
            Value::Table(t) => t,
            other => {
                return Err(positioned_error(
                    lua,
                    format!(
                        "{name} expects a table argument like {name}{{ ... }}, got {}",
                        other.type_name()
                    ),
                ));
            }
        };
        let desc = lua.create_table()?;
        desc.raw_set("__module", name)?;
        desc.raw_set("args", args)?;
        record_pos(lua, &desc)?;
        Ok(desc)
    })
}

/// `task{...}` / `play{...}`: identity on tables, recording the call line.
fn marker(lua: &Lua, what: &'static str) -> mlua::Result<Function> {
    lua.create_function(move |lua, arg: Value| match arg {
        Value::Table(t) => {
            record_pos(lua, &t)?;
            Ok(t)
        }
        other => Err(positioned_error(
            lua,
            format!("{what} expects a table, got {}", other.type_name()),
        )),
    })
}

fn available_policies(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "lua") {
                p.file_stem().and_then(|s| s.to_str()).map(str::to_string)
            } else {
                None
            }
        })
        .collect();
    names.sort();
    names
}

/// `policy(name)`: loads `<dir>/<name>.lua` once (text chunk, own environment); the chunk
/// must return a function.
pub(crate) fn policy_loader(lua: &Lua, dir: PathBuf) -> mlua::Result<Function> {
    let cache: Arc<Mutex<HashMap<String, Function>>> = Arc::default();
    lua.create_function(move |lua, name: Value| {
        let Value::String(name) = name else {
            return Err(positioned_error(
                lua,
                format!("policy expects a name string, got {}", name.type_name()),
            ));
        };
        let name = name.to_str()?.to_string();
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(positioned_error(
                lua,
                format!("invalid policy name '{name}' (use letters, digits, '_' and '-')"),
            ));
        }
        if let Some(f) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&name)
        {
            return Ok(f.clone());
        }
        let path = dir.join(format!("{name}.lua"));
        if !path.is_file() {
            let avail = available_policies(&dir);
            let avail = if avail.is_empty() {
                "none".to_string()
            } else {
                avail.join(", ")
            };
            return Err(positioned_error(
                lua,
                format!(
                    "policy '{name}' not found in {} (available: {avail})",
                    dir.display()
                ),
            ));
        }
        let src = std::fs::read_to_string(&path).map_err(|e| {
            positioned_error(lua, format!("cannot read policy {}: {e}", path.display()))
        })?;
        let file = path.display().to_string();
        sandbox::remember_chunk(lua, &file);
        let ret: Value = lua
            .load(src)
            .set_name(format!("@{file}"))
            .set_mode(ChunkMode::Text)
            .set_environment(sandbox::new_env(lua)?)
            .call(())?;
        let Value::Function(f) = ret else {
            return Err(PlaybookError::new(
                ErrorKind::Invalid,
                Some(SourcePos { file, line: 0 }),
                format!(
                    "policy '{name}' must return a function, got {}",
                    ret.type_name()
                ),
            )
            .into());
        };
        cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name, f.clone());
        Ok(f)
    })
}

/// Validation context for one playbook.
struct Ctx {
    positions: Table,
    file_pos: SourcePos,
}

impl Ctx {
    fn recorded(&self, t: &Table) -> Option<SourcePos> {
        let rec: Table = self.positions.raw_get(t).ok()?;
        let file: String = rec.raw_get(1).ok()?;
        let line: u32 = rec.raw_get(2).ok()?;
        Some(SourcePos { file, line })
    }

    fn task_pos(&self, t: &Table) -> Option<SourcePos> {
        if let Some(p) = self.recorded(t) {
            return Some(p);
        }
        for key in [Value::Integer(1), Value::Nil] {
            let v: Value = match key {
                Value::Nil => t.raw_get("action").ok()?,
                k => t.raw_get(k).ok()?,
            };
            if let Value::Table(d) = v
                && let Some(p) = self.recorded(&d)
            {
                return Some(p);
            }
        }
        for key in ["run", "when"] {
            if let Ok(Value::Function(f)) = t.raw_get::<Value>(key) {
                return Some(FnRef::new(f).pos);
            }
        }
        None
    }

    fn play(&self, t: &Table) -> Result<Play, PlaybookError> {
        let pos = self
            .recorded(t)
            .or_else(|| {
                let tasks: Table = t.raw_get("tasks").ok()?;
                let first: Table = tasks.raw_get(1).ok()?;
                self.task_pos(&first)
            })
            .unwrap_or_else(|| self.file_pos.clone());
        let bad = |msg: String| PlaybookError::invalid(&pos, msg);

        let mut name = None;
        let mut hosts = None;
        let mut serial = Vec::new();
        let mut max_fail = None;
        let mut vars = serde_json::Map::new();
        let mut tasks_t = None;
        for kv in t.pairs::<Value, Value>() {
            let (k, v) = kv.map_err(|e| PlaybookError::from_lua_at(&pos, e))?;
            let key = match &k {
                Value::String(s) => s.to_string_lossy(),
                other => {
                    return Err(bad(format!(
                        "unexpected positional entry [{}] in play (expected keys: {})",
                        key_display(other),
                        PLAY_KEYS.join(", ")
                    )));
                }
            };
            match key.as_str() {
                "name" => name = Some(expect_string(&v, "play name").map_err(bad)?),
                "hosts" => hosts = Some(parse_hosts(&v).map_err(bad)?),
                "serial" => serial = parse_serial(&v).map_err(bad)?,
                "max_fail_percentage" => {
                    let p = as_number(&v)
                        .filter(|p| (0.0..=100.0).contains(p))
                        .ok_or_else(|| {
                            bad(format!(
                                "max_fail_percentage must be a number between 0 and 100, got {}",
                                value_display(&v)
                            ))
                        })?;
                    max_fail = Some(p);
                }
                "vars" => {
                    vars = match v {
                        Value::Table(_) => match lua_to_json(v, "vars", 0, &mut None) {
                            Ok(Some(Json::Object(m))) => m,
                            Ok(_) => {
                                return Err(bad(
                                    "vars must be a table of named values, got a list".into(),
                                ));
                            }
                            Err(e) => return Err(bad(e)),
                        },
                        other => {
                            return Err(bad(format!(
                                "vars must be a table, got {}",
                                other.type_name()
                            )));
                        }
                    }
                }
                "tasks" => match v {
                    Value::Table(tt) => tasks_t = Some(tt),
                    other => {
                        return Err(bad(format!(
                            "tasks must be a list of task tables, got {}",
                            other.type_name()
                        )));
                    }
                },
                other => {
                    return Err(bad(format!(
                        "unknown play key '{other}' (expected one of: {})",
                        PLAY_KEYS.join(", ")
                    )));
                }
            }
        }
        let hosts = hosts.ok_or_else(|| bad("play is missing required key 'hosts'".into()))?;
        let mut tasks = Vec::new();
        if let Some(tt) = tasks_t {
            for kv in tt.pairs::<Value, Value>() {
                let (k, _) = kv.map_err(|e| PlaybookError::from_lua_at(&pos, e))?;
                if !matches!(k, Value::Integer(i) if i >= 1) {
                    return Err(bad(format!(
                        "tasks must be a list, found key {}",
                        key_display(&k)
                    )));
                }
            }
            for i in 1..=tt.raw_len() {
                match tt.raw_get::<Value>(i) {
                    Ok(Value::Table(task)) => tasks.push(self.task(&task, &pos, i)?),
                    Ok(other) => {
                        return Err(bad(format!(
                            "task #{i} must be a table, got {}",
                            other.type_name()
                        )));
                    }
                    Err(e) => return Err(PlaybookError::from_lua_at(&pos, e)),
                }
            }
        }
        Ok(Play {
            name: name.unwrap_or_else(|| hosts.clone()),
            hosts,
            serial,
            max_fail_percentage: max_fail,
            vars,
            tasks,
            pos,
        })
    }

    fn task(&self, t: &Table, play_pos: &SourcePos, index: usize) -> Result<Task, PlaybookError> {
        let pos = self.task_pos(t).unwrap_or_else(|| play_pos.clone());
        let bad = |msg: String| PlaybookError::invalid(&pos, format!("task #{index}: {msg}"));

        let mut name = None;
        let mut when = None;
        let mut tags = Vec::new();
        let mut retries = 0;
        let mut delay = DEFAULT_DELAY;
        let mut run = None;
        let mut module: Option<(Table, &str)> = None;
        for kv in t.pairs::<Value, Value>() {
            let (k, v) = kv.map_err(|e| PlaybookError::from_lua_at(&pos, e))?;
            let key = match &k {
                Value::String(s) => s.to_string_lossy(),
                Value::Integer(1) => "[1]".to_string(),
                other => {
                    return Err(bad(format!(
                        "unexpected entry [{}]; a task holds one module call at [1] (expected keys: {})",
                        key_display(other),
                        TASK_KEYS.join(", ")
                    )));
                }
            };
            match key.as_str() {
                "name" => name = Some(expect_string(&v, "task name").map_err(bad)?),
                "when" => {
                    when = Some(match v {
                        Value::Boolean(b) => Cond::Bool(b),
                        Value::Function(f) => Cond::Function(FnRef::new(f)),
                        other => {
                            return Err(bad(format!(
                                "when must be a boolean or a function(host), got {}",
                                other.type_name()
                            )));
                        }
                    });
                }
                "tags" => tags = parse_tags(&v).map_err(bad)?,
                "retries" => {
                    retries = as_int(&v)
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| {
                            bad(format!(
                                "retries must be a non-negative integer, got {}",
                                value_display(&v)
                            ))
                        })?;
                }
                "delay" => {
                    delay = as_number(&v)
                        .filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e9)
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| {
                            bad(format!(
                                "delay must be a non-negative number of seconds, got {}",
                                value_display(&v)
                            ))
                        })?;
                }
                "run" => match v {
                    Value::Function(f) => run = Some(FnRef::new(f)),
                    other => {
                        return Err(bad(format!(
                            "run must be a function(host), got {}",
                            other.type_name()
                        )));
                    }
                },
                "action" | "[1]" => {
                    let slot = if key == "action" { "action" } else { "[1]" };
                    let desc = match v {
                        Value::Table(d) if is_descriptor(&d) => d,
                        other => {
                            return Err(bad(format!(
                                "{slot} must be a module call like mig.apply{{...}}, got {}",
                                describe(&other)
                            )));
                        }
                    };
                    if module.is_some() {
                        return Err(bad(
                            "a task holds exactly one module call (found one at [1] and one under action)"
                                .into(),
                        ));
                    }
                    module = Some((desc, slot));
                }
                other => {
                    return Err(bad(format!(
                        "unknown task key '{other}' (expected one of: {})",
                        TASK_KEYS.join(", ")
                    )));
                }
            }
        }
        let action = match (module, run) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "a task has either a module call or `run`, not both".into()
                ));
            }
            (None, None) => {
                return Err(bad(
                    "task has no action: expected a module call such as mig.apply{...} at [1] or under `action`, or run = function(host) ... end"
                        .into(),
                ));
            }
            (None, Some(f)) => Action::Function(f),
            (Some((desc, _)), None) => {
                let mname: String = desc
                    .raw_get("__module")
                    .map_err(|e| PlaybookError::from_lua_at(&pos, e))?;
                let args: Value = desc
                    .raw_get("args")
                    .map_err(|e| PlaybookError::from_lua_at(&pos, e))?;
                let mut functions = Vec::new();
                let args = lua_to_json(args, "", 0, &mut Some(&mut functions))
                    .map_err(|e| bad(format!("{mname} arguments: {e}")))?
                    .unwrap_or(Json::Object(Default::default()));
                Action::Module {
                    name: mname,
                    args,
                    functions,
                }
            }
        };
        let name = name.unwrap_or_else(|| match &action {
            Action::Module { name, .. } => name.clone(),
            Action::Function(_) => "run".to_string(),
        });
        Ok(Task {
            name,
            action,
            when,
            tags,
            retries,
            delay,
            pos,
        })
    }
}

impl PlaybookError {
    fn from_lua_at(pos: &SourcePos, e: mlua::Error) -> Self {
        PlaybookError::new(ErrorKind::Runtime, Some(pos.clone()), e.to_string())
    }
}

fn is_descriptor(t: &Table) -> bool {
    matches!(t.raw_get::<Value>("__module"), Ok(Value::String(_)))
        && matches!(t.raw_get::<Value>("args"), Ok(Value::Table(_)))
}

fn describe(v: &Value) -> String {
    match v {
        Value::Table(_) => "a plain table (did you forget the module name?)".into(),
        other => other.type_name().to_string(),
    }
}

fn key_display(k: &Value) -> String {
    match k {
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        other => other.type_name().to_string(),
    }
}

fn value_display(v: &Value) -> String {
    match v {
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", s.to_string_lossy()),
        Value::Boolean(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}

fn expect_string(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) => s
            .to_str()
            .map(|s| s.to_string())
            .map_err(|_| format!("{what} must be valid UTF-8")),
        other => Err(format!(
            "{what} must be a string, got {}",
            other.type_name()
        )),
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match *v {
        Value::Integer(i) => Some(i),
        // Integral floats (e.g. `3.0`, `2^3`) are accepted; the range check avoids UB-free
        // but lossy saturation.
        #[allow(clippy::cast_possible_truncation)]
        Value::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(n as i64),
        _ => None,
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match *v {
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(i) => Some(i as f64),
        Value::Number(n) if n.is_finite() => Some(n),
        _ => None,
    }
}

/// `"gpu"` or `{"gpu", "login"}` (joined with `,`).
fn parse_hosts(v: &Value) -> Result<String, String> {
    match v {
        Value::String(_) => {
            let s = expect_string(v, "hosts")?;
            if s.trim().is_empty() {
                return Err("hosts must not be empty".into());
            }
            Ok(s)
        }
        Value::Table(t) => {
            let items = seq_items(t, "hosts")?;
            if items.is_empty() {
                return Err("hosts must not be empty".into());
            }
            let parts = items
                .iter()
                .map(|x| expect_string(x, "hosts entry"))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(parts.join(","))
        }
        other => Err(format!(
            "hosts must be a pattern string or a list of patterns, got {}",
            other.type_name()
        )),
    }
}

fn seq_items(t: &Table, what: &str) -> Result<Vec<Value>, String> {
    let mut count = 0;
    for kv in t.pairs::<Value, Value>() {
        let (k, _) = kv.map_err(|e| e.to_string())?;
        if !matches!(k, Value::Integer(i) if i >= 1) {
            return Err(format!(
                "{what} must be a list, found key {}",
                key_display(&k)
            ));
        }
        count += 1;
    }
    let n = t.raw_len();
    if n != count {
        return Err(format!("{what} must be a list without holes"));
    }
    (1..=n)
        .map(|i| t.raw_get::<Value>(i).map_err(|e| e.to_string()))
        .collect()
}

fn parse_tags(v: &Value) -> Result<Vec<String>, String> {
    let items = match v {
        Value::String(_) => vec![v.clone()],
        Value::Table(t) => seq_items(t, "tags")?,
        other => {
            return Err(format!(
                "tags must be a string or a list of strings, got {}",
                other.type_name()
            ));
        }
    };
    items
        .iter()
        .map(|x| {
            let s = expect_string(x, "tag")?;
            if s.is_empty() {
                Err("tags must not be empty strings".into())
            } else {
                Ok(s)
            }
        })
        .collect()
}

fn parse_serial_item(v: &Value) -> Result<Serial, String> {
    let err = || {
        format!(
            "serial entries must be a positive integer or a percentage string like \"30%\", got {}",
            value_display(v)
        )
    };
    if let Some(n) = as_int(v) {
        return usize::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .map(Serial::Count)
            .ok_or_else(err);
    }
    let Value::String(s) = v else {
        return Err(err());
    };
    let s = s.to_string_lossy();
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p.trim().parse().map_err(|_| err())?;
        if p > 0.0 && p <= 100.0 {
            return Ok(Serial::Percent(p));
        }
        return Err(err());
    }
    s.parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .map(Serial::Count)
        .ok_or_else(err)
}

/// `serial = 2`, `"30%"`, or `{1, 5, "20%"}`.
fn parse_serial(v: &Value) -> Result<Vec<Serial>, String> {
    match v {
        Value::Table(t) => seq_items(t, "serial")?
            .iter()
            .map(parse_serial_item)
            .collect(),
        other => Ok(vec![parse_serial_item(other)?]),
    }
}

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
    lua_to_json(v, "", 0, &mut None)
        .map(|j| j.unwrap_or(Json::Null))
        .map_err(|m| PlaybookError::new(ErrorKind::Conversion, None, m))
}

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

/// Returns `None` for functions that were collected into `fns` (omitted from JSON).
fn lua_to_json(
    v: Value,
    path: &str,
    depth: usize,
    fns: &mut Option<&mut Vec<(String, FnRef)>>,
) -> Result<Option<Json>, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "table nesting deeper than {MAX_DEPTH}{} (recursive table?)",
            at(path)
        ));
    }
    Ok(Some(match v {
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
        Value::Function(f) => match fns {
            Some(list) => {
                list.push((path.to_string(), FnRef::new(f)));
                return Ok(None);
            }
            None => return Err(format!("cannot convert a function{} to JSON", at(path))),
        },
        Value::Table(t) => {
            let mut pairs = Vec::new();
            for kv in t.pairs::<Value, Value>() {
                pairs.push(kv.map_err(|e| e.to_string())?);
            }
            if pairs.is_empty() {
                // mlua's Serialize knows whether the table carries the array metatable.
                return Ok(Some(
                    serde_json::to_value(Value::Table(t))
                        .ok()
                        .filter(Json::is_array)
                        .unwrap_or_else(|| Json::Object(Default::default())),
                ));
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
                    let j = lua_to_json(v, &child(path, &(i + 1).to_string()), depth + 1, fns)?;
                    arr.push(j.unwrap_or(Json::Null));
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
                    let p = child(path, &key);
                    if let Some(j) = lua_to_json(v, &p, depth + 1, fns)? {
                        map.insert(key, j);
                    }
                }
                Json::Object(map)
            }
        }
        other => {
            return Err(format!(
                "cannot convert a {}{} to JSON",
                other.type_name(),
                at(path)
            ));
        }
    }))
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
        ] {
            let v = eval(&lua, "t", bad).unwrap();
            let e = from_lua_value(v).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Conversion, "{bad}: {e}");
        }
    }
}
