//! Loading playbooks: runs a playbook's text in a sandbox environment that holds the
//! module constructors, `vars`, `policy(name)`, `task{}` and `play{}`, then validates the
//! returned tables into [`Play`]s with `file:line` positions, every module's arguments
//! checked and typed ([`Module::parse`]) and every named policy compiled.
//!
//! The text is read once per run ([`PlaybookSource`]) and loaded into each host's own Lua
//! state, so hosts share no Lua globals and an edit to the file during a run changes
//! nothing.
//!
//! Positions: Lua tables carry no line information, so positions are recorded when Rust
//! callbacks run: module constructors (`mig.apply{...}`), `task{...}` and `play{...}` look at
//! their caller's current line (`Lua::inspect_stack(1)`) and store it in a weak-keyed side
//! table keyed by the table they return. Functions (`run`, `when`, policies) carry their
//! `linedefined`. A task's position is, in order: its `task{}` call, its module call, its
//! `run`/`when` function; a play's: its `play{}` call, else its first task's position.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, Table, Value};
use serde_json::Value as Json;

use super::convert::{key_display, lua_to_json, to_lua_value};
use super::error::{ErrorKind, PlaybookError};
use super::modules::target::ConfigFiles;
use super::modules::{Module, ModuleName, ParseCx, closest};
use super::play::{Action, Cond, FnRef, Play, SourcePos, Task};
use super::policy::{self, Policies};
use super::{api, sandbox};
use crate::fleet::Serial;

const PLAY_KEYS: &[&str] = &[
    "hosts",
    "name",
    "serial",
    "max_fail_percentage",
    "any_errors_fatal",
    "vars",
    "tasks",
];
const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "tags",
    "retries",
    "delay",
    "run",
    "action",
    "register",
    "check_mode",
];
const POSITIONS_KEY: &str = "migfleet.loader.positions";
const DEFAULT_DELAY: Duration = Duration::from_secs(5);
/// Bounds on `delay` (a day) and `retries`: beyond them a typo, not a plan.
const MAX_DELAY_S: f64 = 86_400.0;
const MAX_RETRIES: u32 = 10_000;

/// A playbook's text, read once per run.
#[derive(Debug, Clone)]
pub struct PlaybookSource {
    pub path: PathBuf,
    /// The chunk name positions use (the path as given).
    pub name: String,
    pub text: Arc<str>,
}

impl PlaybookSource {
    pub fn read(path: &Path) -> Result<PlaybookSource, PlaybookError> {
        let name = path.display().to_string();
        let text = crate::input::read_text(path).map_err(|e| {
            PlaybookError::new(
                ErrorKind::Io,
                Some(SourcePos {
                    file: name.clone(),
                    line: 0,
                }),
                format!("cannot read playbook: {e}"),
            )
        })?;
        Ok(PlaybookSource {
            path: path.to_path_buf(),
            name,
            text: text.into(),
        })
    }

    /// The folder relative file names in the playbook are looked up in.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or_else(|| Path::new("."))
    }
}

/// What every load of a playbook in a run shares.
#[derive(Debug, Default)]
pub struct Shared {
    pub policies: Arc<Policies>,
    pub configs: ConfigFiles,
    /// `-e` extra variables, the playbook's `vars`.
    pub extra_vars: serde_json::Map<String, Json>,
}

/// A sandboxed Lua state with migfleet's helpers (`mig.pack`, `mig.layouts`).
pub fn new_state(limits: &sandbox::Limits) -> Result<Lua, PlaybookError> {
    let lua = sandbox::new_lua(limits).map_err(|e| {
        PlaybookError::new(ErrorKind::Runtime, None, format!("cannot set up Lua: {e}"))
    })?;
    api::install(&lua).map_err(|e| PlaybookError::from_lua(&lua, e))?;
    Ok(lua)
}

/// Runs the playbook's text as the chunk `@<path>` in a fresh sandbox environment of
/// `lua`, and validates the returned play table or list of play tables.
pub fn load_plays(
    lua: &Lua,
    src: &PlaybookSource,
    shared: &Shared,
) -> Result<Vec<Play>, PlaybookError> {
    let file = src.name.clone();
    let lerr = |e| PlaybookError::from_lua(lua, e);

    let positions = lua.create_table().map_err(lerr)?;
    let weak = lua.create_table().map_err(lerr)?;
    weak.raw_set("__mode", "k").map_err(lerr)?;
    positions.set_metatable(Some(weak)).map_err(lerr)?;
    lua.set_named_registry_value(POSITIONS_KEY, &positions)
        .map_err(lerr)?;

    let env = sandbox::new_env(lua).map_err(lerr)?;
    install_api(lua, &env, shared).map_err(lerr)?;

    sandbox::remember_chunk(lua, &file);
    sandbox::reset_budget(lua);
    let ret: Value = lua
        .load(&*src.text)
        .set_name(format!("@{file}"))
        .set_mode(ChunkMode::Text)
        .set_environment(env)
        .call(())
        .map_err(lerr)?;

    let whole_file = SourcePos { file, line: 0 };
    let ctx = Ctx {
        positions,
        file_pos: whole_file.clone(),
        parse: ParseCx {
            lua,
            policies: &shared.policies,
            configs: &shared.configs,
            base_dir: src.dir(),
        },
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
fn install_api(lua: &Lua, env: &Table, shared: &Shared) -> mlua::Result<()> {
    // Keep the helpers every environment has (`mig.pack`, `mig.layouts`) and add the
    // module constructors beside them.
    let mig = lua.create_table()?;
    if let Value::Table(helpers) = env.raw_get::<Value>("mig")? {
        for kv in helpers.pairs::<Value, Value>() {
            let (k, v) = kv?;
            mig.raw_set(k, v)?;
        }
    }
    let mut spaces: Vec<(&str, Table)> = vec![("mig", mig)];
    for name in ModuleName::ALL {
        let ctor = module_ctor(lua, name)?;
        match name.as_str().split_once('.') {
            Some((space, short)) => {
                if !spaces.iter().any(|(s, _)| *s == space) {
                    spaces.push((space, lua.create_table()?));
                }
                if let Some((_, t)) = spaces.iter().find(|(s, _)| *s == space) {
                    t.raw_set(short, ctor)?;
                }
            }
            None => env.raw_set(name.as_str(), ctor)?,
        }
    }
    for (space, t) in spaces {
        env.raw_set(space, t)?;
    }
    env.raw_set(
        "vars",
        to_lua_value(lua, &Json::Object(shared.extra_vars.clone()))?,
    )?;
    env.raw_set("task", marker(lua, "task")?)?;
    env.raw_set("play", marker(lua, "play")?)?;
    env.raw_set("policy", policy::loader(lua, shared.policies.clone())?)?;
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

/// `mig.apply{...}` etc.: returns `{__module = name, args = {...}}` and records its line;
/// the arguments are checked when the task is.
fn module_ctor(lua: &Lua, name: ModuleName) -> mlua::Result<Function> {
    lua.create_function(move |lua, arg: Value| {
        let args = match arg {
            Value::Nil => lua.create_table()?,
            Value::Table(t) => t,
            other => {
                return Err(positioned_error(
                    lua,
                    format!(
                        "{n} expects a table argument like {n}{{ ... }}, got {}",
                        other.type_name(),
                        n = name.as_str()
                    ),
                ));
            }
        };
        let desc = lua.create_table()?;
        desc.raw_set("__module", name.as_str())?;
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

/// `unknown key 'nmae' (did you mean 'name'?; expected one of: ...)`.
fn unknown_key(what: &str, key: &str, keys: &[&str]) -> String {
    let hint = closest(key, keys.iter().copied())
        .map(|c| format!(" (did you mean '{c}'?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} key '{key}'{hint}; expected one of: {}",
        keys.join(", ")
    )
}

/// Validation context for one playbook.
struct Ctx<'a> {
    positions: Table,
    file_pos: SourcePos,
    parse: ParseCx<'a>,
}

impl Ctx<'_> {
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
        let mut any_errors_fatal = false;
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
                "any_errors_fatal" => {
                    any_errors_fatal = match v {
                        Value::Boolean(b) => b,
                        other => {
                            return Err(bad(format!(
                                "any_errors_fatal must be true or false, got {}",
                                value_display(&other)
                            )));
                        }
                    }
                }
                "vars" => {
                    vars = match v {
                        Value::Table(_) => match lua_to_json(v, "vars").map(Some) {
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
                other => return Err(bad(unknown_key("play", other, PLAY_KEYS))),
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
            any_errors_fatal,
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
        let mut register = None;
        let mut check_mode = false;
        // A bare module call is a task of its own: `tasks = { mig.apply{...} }`.
        let bare = is_descriptor(t);
        let mut module: Option<(Table, &str)> = bare.then(|| (t.clone(), "[1]"));
        for kv in t.pairs::<Value, Value>().filter(|_| !bare) {
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
                "register" => {
                    let r = expect_string(&v, "register").map_err(bad)?;
                    let ok = r.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                        && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok {
                        return Err(bad(format!(
                            "register must be a variable name (letters, digits, _), got \"{r}\""
                        )));
                    }
                    register = Some(r);
                }
                "check_mode" => match v {
                    Value::Boolean(b) => check_mode = b,
                    other => {
                        return Err(bad(format!(
                            "check_mode must be true or false, got {}",
                            other.type_name()
                        )));
                    }
                },
                "retries" => {
                    retries = as_int(&v)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| *n <= MAX_RETRIES)
                        .ok_or_else(|| {
                            bad(format!(
                                "retries must be a non-negative integer up to {MAX_RETRIES}, got {}",
                                value_display(&v)
                            ))
                        })?;
                }
                "delay" => {
                    delay = as_number(&v)
                        .filter(|d| d.is_finite() && *d >= 0.0 && *d <= MAX_DELAY_S)
                        .map(Duration::from_secs_f64)
                        .ok_or_else(|| {
                            bad(format!(
                                "delay must be a non-negative number of seconds up to a day, got {}",
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
                other => return Err(bad(unknown_key("task", other, TASK_KEYS))),
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
                let args: Table = desc
                    .raw_get("args")
                    .map_err(|e| PlaybookError::from_lua_at(&pos, e))?;
                let Some(module) = ModuleName::from_name(&mname) else {
                    return Err(bad(format!("`{mname}` is not a module")));
                };
                Action::Module(Module::parse(module, &args, &self.parse).map_err(bad)?)
            }
        };
        let name = name.unwrap_or_else(|| match &action {
            Action::Module(m) => m.name().as_str().to_string(),
            Action::Function(_) => "run".to_string(),
        });
        Ok(Task {
            name,
            action,
            when,
            tags,
            retries,
            delay,
            register,
            check_mode,
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
