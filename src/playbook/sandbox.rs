//! Sandboxed Lua 5.4 states: library whitelist, scrubbed base library, read-only libraries,
//! memory limit, and the per-call instruction / wall-clock budget enforced by a VM hook.
//!
//! One state per host: [`new_lua`] is called once per host, so globals never leak between
//! hosts. Every chunk (playbook, policy, `load`) runs in its own environment table made by
//! [`new_env`] from a template of the whitelisted globals.
//!
//! Decisions worth knowing:
//! * `rawget`/`rawequal`/`rawlen` are kept (they only read). `rawset` is kept for
//!   metatable-based objects in policies, but refuses the read-only library tables.
//! * `setmetatable` refuses metatables with `__gc`: Lua runs finalizers with debug hooks
//!   disabled (`GCTM` clears `allowhook`), so a `__gc` loop would escape the budget.
//! * `getmetatable("")` returns the string `"locked"` (`__metatable` is set on the string
//!   metatable and on mlua's array metatable); library tables are read-only proxies.
//! * `pcall`/`xpcall`/`coroutine.resume` re-raise a budget error once the budget tripped,
//!   so scripts cannot swallow the limit and keep running.
//! * `load` only accepts text (mode `"t"`; `"b"`/`"bt"` are refused) and runs the chunk in the
//!   given `env` or in a fresh sandbox environment; `collectgarbage` only allows `"count"`.
//! * Long-running C functions (pathological `string.find` patterns) are not interruptible by
//!   the hook; the wall-clock limit is only checked when Lua instructions run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use mlua::chunk::ChunkMode;
use mlua::{HookTriggers, Lua, LuaOptions, LuaSerdeExt, StdLib, Table, Value, Variadic, VmState};

pub use mlua::Error as LuaError;

use super::play::SourcePos;

/// Resource limits applied to every Lua state made by [`new_lua`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Memory cap of the whole state in bytes (default 64 MiB). 0 = unlimited.
    pub memory_bytes: usize,
    /// VM instructions per call (default 200 000 000). 0 = unlimited.
    pub instructions: u64,
    /// Wall-clock time per call (default 5 s). `Duration::ZERO` = unlimited.
    pub wall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            instructions: 200_000_000,
            wall: Duration::from_secs(5),
        }
    }
}

/// `table.move` over more elements than this is refused: the C loop cannot be interrupted.
pub const MAX_TABLE_MOVE: i64 = 10_000_000;

/// Pattern matches estimated to take more steps than this are refused (see the prelude's
/// `bounded`): Lua's matcher backtracks in C, where the budget hook cannot stop it.
pub const MAX_MATCH_STEPS: f64 = 1e8;

/// The hook runs every this many VM instructions; the instruction budget is therefore
/// enforced with this granularity.
pub const HOOK_EVERY: u32 = 1000;

const TEMPLATE_KEY: &str = "migfleet.sandbox.template";

/// Which limit a [`LimitExceeded`] error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    Instructions,
    Wall,
}

/// Error raised by the budget hook (carried through Lua as an external error).
#[derive(Debug, Clone)]
pub struct LimitExceeded {
    pub kind: LimitKind,
    pub pos: Option<SourcePos>,
    pub message: String,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for LimitExceeded {}

/// Per-state budget shared by the hook and [`reset_budget`].
struct Budget {
    limits: Limits,
    used: AtomicU64,
    tripped: AtomicBool,
    started: Mutex<Instant>,
}

impl Budget {
    fn reset(&self) {
        self.used.store(0, Ordering::Relaxed);
        self.tripped.store(false, Ordering::Relaxed);
        *self.started.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn elapsed(&self) -> Duration {
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }
}

#[derive(Clone)]
struct BudgetHandle(Arc<Budget>);

type Sink = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
struct PrintSink(Option<Sink>);

/// Chunk names (file paths) loaded into this state, used to expand Lua's truncated
/// `...tail/of/path.lua` short sources back to full paths in error messages.
#[derive(Default)]
pub(crate) struct KnownChunks(pub(crate) Mutex<Vec<String>>);

/// Human-friendly duration: `5s`, `100ms`, `1.5s`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Human-friendly byte count: `64 MiB` when whole MiB, else bytes.
pub(crate) fn fmt_bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// Trusted prelude run once per state with the full base library, before scrubbing. It
/// builds the whitelisted environment template. Arguments: print, make_env, tripped, and
/// the bounds on C functions (`max_bytes`, `max_move`, `max_match_steps`).
const PRELUDE: &str = r#"
local print_fn, make_env, tripped, limits = ...
local raw_setmetatable, raw_getmetatable = setmetatable, getmetatable
local raw_rawset, raw_rawget, raw_load = rawset, rawget, load
local raw_pcall, raw_xpcall, raw_error, raw_type = pcall, xpcall, error, type
local raw_next, raw_tostring, raw_cg, raw_select = next, tostring, collectgarbage, select
local co_resume, co_close = coroutine.resume, coroutine.close

local frozen = raw_setmetatable({}, { __mode = "k" })

local function freeze(name, real)
  local proxy = {}
  raw_setmetatable(proxy, {
    __index = real,
    __newindex = function(_, k)
      raw_error("attempt to modify read-only table '" .. name .. "' (field '" .. raw_tostring(k) .. "')", 2)
    end,
    -- Iterating yields the entries, never the table itself (pairs(t) would hand out
    -- `real` as its state, and with it a way to change the library).
    __pairs = function()
      local k
      return function()
        local v
        k, v = raw_next(real, k)
        return k, v
      end
    end,
    __len = function() return #real end,
    __metatable = "locked",
  })
  frozen[proxy] = true
  return proxy
end

local function copy(t)
  local c = {}
  for k, v in raw_next, t do c[k] = v end
  return c
end

-- Re-raise budget errors that a protected call caught.
local function check(ok, ...)
  if not ok and tripped() then raw_error((...), 0) end
  return ok, ...
end

local env = {}
for _, k in ipairs({ "assert", "error", "ipairs", "next", "pairs", "select", "tonumber",
                     "tostring", "type", "rawequal", "rawlen", "rawget", "getmetatable",
                     "_VERSION" }) do
  env[k] = _G[k]
end

env.pcall = function(f, ...) return check(raw_pcall(f, ...)) end
-- Once the budget tripped, the message handler is not run: a handler that loops would
-- otherwise run again for each error it raises.
env.xpcall = function(f, h, ...)
  return check(raw_xpcall(f, function(e)
    if tripped() then return e end
    return h(e)
  end, ...))
end

env.rawset = function(t, k, v)
  if frozen[t] then raw_error("rawset: table is read-only", 2) end
  return raw_rawset(t, k, v)
end

env.setmetatable = function(t, mt)
  if raw_type(mt) == "table" and raw_rawget(mt, "__gc") ~= nil then
    raw_error("setmetatable: __gc metamethods are not allowed in the sandbox", 2)
  end
  return raw_setmetatable(t, mt)
end

env.collectgarbage = function(opt, ...)
  if opt == "count" then return raw_cg("count") end
  raw_error("collectgarbage: only collectgarbage(\"count\") is allowed in the sandbox (got "
            .. raw_tostring(opt) .. ")", 2)
end

env.load = function(chunk, name, mode, e)
  if mode ~= nil and mode ~= "t" then
    raw_error("load: only text chunks are allowed in the sandbox (mode '" .. raw_tostring(mode)
              .. "' refused)", 2)
  end
  if raw_type(chunk) == "string" and chunk:byte(1) == 27 then
    return nil, "load: binary chunks are not allowed in the sandbox"
  end
  if e == nil then e = make_env() end
  local f, err = raw_load(chunk, name, "t", e)
  -- A reader function that ran out of budget must not end as a quiet `nil, message`.
  if f == nil and tripped() then raw_error(err, 0) end
  return f, err
end

env.print = print_fn

local str = copy(string)

-- C functions the budget hook cannot interrupt, bounded before they start.
local raw_rep, raw_move, raw_sub, raw_format = string.rep, table.move, string.sub, string.format
local raw_find, raw_match, raw_gmatch, raw_gsub = string.find, string.match, string.gmatch, string.gsub
local MAX_BYTES, MAX_MOVE, MAX_MATCH_STEPS = limits.max_bytes, limits.max_move, limits.max_match_steps

str.rep = function(s, n, sep)
  if raw_type(n) == "number" and n > 0 then
    local ls = #(raw_tostring(s) or "")
    local lsep = sep ~= nil and #(raw_tostring(sep) or "") or 0
    local total = ls * n + lsep * (n - 1)
    if total == 0 then return "" end
    if total > MAX_BYTES then
      raw_error("string.rep: the result would be " .. raw_format("%.0f", total)
                .. " bytes (at most " .. MAX_BYTES .. ")", 2)
    end
  end
  return raw_rep(s, n, sep)
end

-- Lua patterns backtrack: each repetition item (`*`, `+`, `-`, `?`) can multiply the work
-- by the subject's length. The estimate is (length + 1) ^ (items + 1) steps.
local function repetitions(p)
  local n, i, len = 0, 1, #p
  while i <= len do
    local c = raw_sub(p, i, i)
    if c == "%" then
      i = i + 2
    elseif c == "[" then
      i = i + 1
      if raw_sub(p, i, i) == "^" then i = i + 1 end
      if raw_sub(p, i, i) == "]" then i = i + 1 end
      while i <= len and raw_sub(p, i, i) ~= "]" do
        if raw_sub(p, i, i) == "%" then i = i + 1 end
        i = i + 1
      end
      i = i + 1
    else
      if i > 1 and (c == "*" or c == "+" or c == "-" or c == "?") then n = n + 1 end
      i = i + 1
    end
  end
  return n
end

local function bounded(fname, s, p)
  if raw_type(s) ~= "string" and raw_type(s) ~= "number" then return end
  if raw_type(p) ~= "string" and raw_type(p) ~= "number" then return end
  s, p = raw_tostring(s), raw_tostring(p)
  local steps = (#s + 1) ^ (repetitions(p) + 1)
  if steps > MAX_MATCH_STEPS then
    raw_error(fname .. ": pattern " .. raw_format("%q", raw_sub(p, 1, 40)) .. " has too many repetition"
              .. " items for a subject of " .. #s .. " bytes (it could backtrack for hours);"
              .. " shorten the subject or simplify the pattern", 3)
  end
end

str.find = function(s, p, init, plain)
  if not plain then bounded("string.find", s, p) end
  return raw_find(s, p, init, plain)
end
str.match = function(s, p, init)
  bounded("string.match", s, p)
  return raw_match(s, p, init)
end
str.gmatch = function(s, p, init)
  bounded("string.gmatch", s, p)
  return raw_gmatch(s, p, init)
end
str.gsub = function(s, p, r, n)
  bounded("string.gsub", s, p)
  return raw_gsub(s, p, r, n)
end

local tbl = copy(table)
tbl.move = function(a1, f, e, t, a2)
  if raw_type(f) == "number" and raw_type(e) == "number" and e - f + 1 > MAX_MOVE then
    raw_error("table.move: " .. raw_format("%.0f", e - f + 1) .. " elements to move (at most "
              .. MAX_MOVE .. ")", 2)
  end
  return raw_move(a1, f, e, t, a2)
end
str.dump = nil
env.string = freeze("string", str)
env.table = freeze("table", tbl)
env.math = freeze("math", copy(math))
env.utf8 = freeze("utf8", copy(utf8))
local co = copy(coroutine)
co.resume = function(c, ...) return check(co_resume(c, ...)) end
co.close = function(c) return check(co_close(c)) end
env.coroutine = freeze("coroutine", co)

-- `("x"):rep(3)` keeps working, but the string metatable cannot be obtained or changed.
local smt = raw_getmetatable("")
smt.__index = str
smt.__metatable = "locked"

return env
"#;

/// Creates a sandboxed Lua 5.4 state with the limits installed. See the module docs.
pub fn new_lua(limits: &Limits) -> Result<Lua, LuaError> {
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::UTF8 | StdLib::COROUTINE;
    let lua = Lua::new_with(libs, LuaOptions::default())?;

    let budget = Arc::new(Budget {
        limits: limits.clone(),
        used: AtomicU64::new(0),
        tripped: AtomicBool::new(false),
        started: Mutex::new(Instant::now()),
    });
    lua.set_app_data(BudgetHandle(budget.clone()));
    lua.set_app_data(PrintSink(None));
    lua.set_app_data(KnownChunks::default());

    let print_fn = lua.create_function(|lua, args: Variadic<Value>| {
        let sink = lua.app_data_ref::<PrintSink>().and_then(|s| s.0.clone());
        if let Some(sink) = sink {
            let parts = args
                .iter()
                .map(Value::to_string)
                .collect::<Result<Vec<_>, _>>()?;
            sink(&parts.join("\t"));
        }
        Ok(())
    })?;
    let make_env = lua.create_function(|lua, ()| new_env(lua))?;
    let tripped = lua.create_function(|lua, ()| {
        Ok(lua
            .app_data_ref::<BudgetHandle>()
            .is_some_and(|b| b.0.tripped.load(Ordering::Relaxed)))
    })?;

    let bounds = lua.create_table()?;
    // Strings past the memory limit cannot be built anyway; without one, 1 GiB.
    let max_bytes = if limits.memory_bytes > 0 {
        limits.memory_bytes
    } else {
        1 << 30
    };
    bounds.raw_set("max_bytes", max_bytes)?;
    bounds.raw_set("max_move", MAX_TABLE_MOVE)?;
    bounds.raw_set("max_match_steps", MAX_MATCH_STEPS)?;
    let template: Table = lua
        .load(PRELUDE)
        .set_name("=sandbox")
        .set_mode(ChunkMode::Text)
        .call((print_fn, make_env, tripped, bounds))?;

    // mlua's array metatable (used by to_lua_value) is shared: lock it too.
    lua.array_metatable().raw_set("__metatable", "locked")?;

    // Scrub the real globals down to the template as well (defence in depth).
    let globals = lua.globals();
    let keys = globals
        .pairs::<Value, Value>()
        .map(|kv| kv.map(|(k, _)| k))
        .collect::<Result<Vec<_>, _>>()?;
    for k in keys {
        globals.raw_set(k, Value::Nil)?;
    }
    for kv in template.pairs::<Value, Value>() {
        let (k, v) = kv?;
        globals.raw_set(k, v)?;
    }
    globals.raw_set("_G", &globals)?;
    lua.set_named_registry_value(TEMPLATE_KEY, template)?;

    if limits.memory_bytes > 0 {
        lua.set_memory_limit(limits.memory_bytes)?;
    }

    let hook_budget = budget;
    lua.set_global_hook(
        HookTriggers::new().every_nth_instruction(HOOK_EVERY),
        move |_lua, debug| {
            let b = &hook_budget;
            let used =
                b.used.fetch_add(u64::from(HOOK_EVERY), Ordering::Relaxed) + u64::from(HOOK_EVERY);
            let over_instr = b.limits.instructions > 0 && used > b.limits.instructions;
            let over_wall = !b.limits.wall.is_zero() && b.elapsed() > b.limits.wall;
            if !over_instr && !over_wall {
                return Ok(VmState::Continue);
            }
            b.tripped.store(true, Ordering::Relaxed);
            let src = debug.source();
            let file = src
                .source
                .as_deref()
                .map(|s| s.strip_prefix(['@', '=']).unwrap_or(s).to_string());
            let line = debug.current_line();
            let pos = match (file, line) {
                (Some(file), Some(line)) => Some(SourcePos {
                    file,
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                }),
                _ => None,
            };
            let (kind, message) = if over_instr {
                (
                    LimitKind::Instructions,
                    format!(
                        "policy exceeded its instruction budget ({})",
                        b.limits.instructions
                    ),
                )
            } else {
                (
                    LimitKind::Wall,
                    format!("policy ran longer than {}", fmt_duration(b.limits.wall)),
                )
            };
            Err(LuaError::external(LimitExceeded { kind, pos, message }))
        },
    )?;
    Ok(lua)
}

/// A fresh environment table holding the whitelisted globals (`_G` points to itself).
pub fn new_env(lua: &Lua) -> Result<Table, LuaError> {
    let template: Table = lua.named_registry_value(TEMPLATE_KEY)?;
    let env = lua.create_table()?;
    for kv in template.pairs::<Value, Value>() {
        let (k, v) = kv?;
        env.raw_set(k, v)?;
    }
    env.raw_set("_G", &env)?;
    Ok(env)
}

/// Adds a global to every environment made from now on (the helpers `api` provides to
/// playbooks and policies, such as `mig.pack`).
pub fn add_global(lua: &Lua, name: &str, value: impl mlua::IntoLua) -> Result<(), LuaError> {
    let template: Table = lua.named_registry_value(TEMPLATE_KEY)?;
    template.raw_set(name, value)
}

/// Restarts the instruction count and the wall clock. Called before every entry into Lua
/// ([`super::FnRef::call`], playbook loading).
pub fn reset_budget(lua: &Lua) {
    if let Some(b) = lua.app_data_ref::<BudgetHandle>() {
        b.0.reset();
    }
}

/// For Rust functions Lua calls (the MIG helpers): refuses to start once the budget is
/// spent. Their work happens outside the Lua VM, where the hook never looks, so a script
/// calling them in a loop would otherwise run on after its budget (and could swallow the
/// hook's error with `pcall` between calls).
pub fn check_budget(lua: &Lua) -> Result<(), LuaError> {
    let Some(b) = lua.app_data_ref::<BudgetHandle>().map(|b| b.0.clone()) else {
        return Ok(());
    };
    let over_wall = !b.limits.wall.is_zero() && b.elapsed() > b.limits.wall;
    if !b.tripped.load(Ordering::Relaxed) && !over_wall {
        return Ok(());
    }
    b.tripped.store(true, Ordering::Relaxed);
    Err(LuaError::external(LimitExceeded {
        kind: if over_wall {
            LimitKind::Wall
        } else {
            LimitKind::Instructions
        },
        pos: caller_pos(lua),
        message: if over_wall {
            format!("policy ran longer than {}", fmt_duration(b.limits.wall))
        } else {
            format!(
                "policy exceeded its instruction budget ({})",
                b.limits.instructions
            )
        },
    }))
}

/// The limits this state was created with.
pub fn limits(lua: &Lua) -> Option<Limits> {
    lua.app_data_ref::<BudgetHandle>()
        .map(|b| b.0.limits.clone())
}

/// Routes Lua `print` to `sink` (one call per `print`, arguments joined by tabs).
pub fn set_print_sink(lua: &Lua, sink: impl Fn(&str) + Send + Sync + 'static) {
    lua.set_app_data(PrintSink(Some(Arc::new(sink))));
}

/// Convenience: collect `print` lines into a shared vector.
pub fn collect_prints(lua: &Lua) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink_lines = lines.clone();
    set_print_sink(lua, move |s| {
        sink_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(s.to_string());
    });
    lines
}

/// Runs `src` as a text chunk named `@name` in a fresh sandbox environment under a fresh
/// budget and returns its first result. For tests and small host-side snippets.
pub fn eval(lua: &Lua, name: &str, src: &str) -> Result<Value, LuaError> {
    remember_chunk(lua, name);
    reset_budget(lua);
    lua.load(src)
        .set_name(format!("@{name}"))
        .set_mode(ChunkMode::Text)
        .set_environment(new_env(lua)?)
        .call(())
}

/// Records a chunk name for error-position expansion.
pub(crate) fn remember_chunk(lua: &Lua, name: &str) {
    if let Some(k) = lua.app_data_ref::<KnownChunks>() {
        let mut v = k.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !v.iter().any(|n| n == name) {
            v.push(name.to_string());
        }
    }
}

/// Position of the Lua code that called the currently running Rust callback.
pub(crate) fn caller_pos(lua: &Lua) -> Option<SourcePos> {
    lua.inspect_stack(1, |d| {
        let src = d.source();
        let file = src.source.as_deref()?;
        let file = file.strip_prefix(['@', '=']).unwrap_or(file).to_string();
        let line = u32::try_from(d.current_line()?).ok()?;
        Some(SourcePos { file, line })
    })
    .flatten()
}
