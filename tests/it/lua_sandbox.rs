//! Sandbox escapes and resource exhaustion.

use std::time::{Duration, Instant};

use crate::support::lua::{eval, eval_json, fresh, second_state_works};
use migfleet::playbook::sandbox::{self, Limits, new_lua};
use migfleet::playbook::{ErrorKind, PlaybookError};
use serde_json::json;

fn err(src: &str) -> PlaybookError {
    let lua = fresh();
    match eval(&lua, src) {
        Ok(v) => panic!("expected an error from {src:?}, got {v:?}"),
        Err(e) => e,
    }
}

fn assert_err_contains(src: &str, needle: &str) {
    let e = err(src);
    assert!(
        e.to_string().contains(needle),
        "{src:?}: error {e:?} does not contain {needle:?}"
    );
}

#[test]
fn only_whitelisted_globals() {
    let lua = fresh();
    let mut names: Vec<String> = serde_json::from_value(eval_json(
        &lua,
        "local t = {} for k in pairs(_G) do t[#t + 1] = k end table.sort(t) return t",
    ))
    .unwrap();
    names.sort();
    let expected = [
        "_G",
        "_VERSION",
        "assert",
        "collectgarbage",
        "coroutine",
        "error",
        "getmetatable",
        "ipairs",
        "load",
        "math",
        "next",
        "pairs",
        "pcall",
        "print",
        "rawequal",
        "rawget",
        "rawlen",
        "rawset",
        "select",
        "setmetatable",
        "string",
        "table",
        "tonumber",
        "tostring",
        "type",
        "utf8",
        "xpcall",
    ];
    assert_eq!(names, expected);
}

#[test]
fn io_os_package_debug_require_are_absent() {
    assert_err_contains(
        "return io.open('/etc/passwd')",
        "attempt to index a nil value (global 'io')",
    );
    assert_err_contains("return os.execute('true')", "global 'os'");
    assert_err_contains("return require('os')", "global 'require'");
    assert_err_contains("return package.loadlib('x', 'y')", "global 'package'");
    assert_err_contains("return debug.getregistry()", "global 'debug'");
    assert_err_contains("return dofile('/etc/passwd')", "global 'dofile'");
    assert_err_contains("return loadfile('/etc/passwd')", "global 'loadfile'");
    // Errors carry the chunk position.
    assert_eq!(err("\n\nreturn io.open('x')").location(), "test.lua:3");
}

#[test]
fn rawget_cannot_recover_removed_libs() {
    let lua = fresh();
    let v = eval_json(
        &lua,
        r#"local out = {}
           for _, k in ipairs({"io", "os", "package", "debug", "require", "dofile", "loadfile"}) do
             if rawget(_G, k) ~= nil then out[#out + 1] = k end
           end
           if rawget(string, "dump") ~= nil or string.dump ~= nil then out[#out + 1] = "dump" end
           return #out"#,
    );
    assert_eq!(v, json!(0));
}

#[test]
fn bytecode_is_refused() {
    assert_err_contains("return string.dump(function() end)", "field 'dump'");
    assert_err_contains(
        "return load('return 1', 'x', 'b')",
        "only text chunks are allowed in the sandbox (mode 'b' refused)",
    );
    assert_err_contains("return load('return 1', 'x', 'bt')", "mode 'bt' refused");
    // A binary-looking string is refused even with the default mode.
    let lua = fresh();
    let v = eval_json(
        &lua,
        r#"local f, msg = load("\27Lua\84\0") return {f == nil, msg}"#,
    );
    assert_eq!(v[0], json!(true));
    assert!(
        v[1].as_str()
            .unwrap()
            .contains("binary chunks are not allowed"),
        "{v}"
    );
    // Text load still works and uses a sandbox env (no io there either).
    assert_eq!(eval_json(&lua, "return load('return 40 + 2')()"), json!(42));
    assert_eq!(eval_json(&lua, "return load('return io')()"), json!(null));
    assert_eq!(
        eval_json(&lua, "return load('return x', 'c', 't', {x = 7})()"),
        json!(7)
    );
}

#[test]
fn string_metatable_is_protected() {
    let lua = fresh();
    assert_eq!(eval_json(&lua, "return getmetatable('')"), json!("locked"));
    let e = eval(
        &lua,
        "getmetatable('').__index.rep = function() return 'pwned' end",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("attempt to index a nil value"),
        "{e}"
    );
    let e = eval(&lua, "string.rep = function() return 'pwned' end").unwrap_err();
    assert!(e.to_string().contains("read-only table 'string'"), "{e}");
    assert_eq!(e.location(), "test.lua:1");
    let e = eval(&lua, "rawset(string, 'rep', print)").unwrap_err();
    assert!(e.to_string().contains("rawset: table is read-only"), "{e}");
    let e = eval(&lua, "setmetatable(string, {})").unwrap_err();
    assert!(e.to_string().contains("protected metatable"), "{e}");
    let e = eval(&lua, "setmetatable('', {})").unwrap_err();
    assert!(e.to_string().contains("bad argument"), "{e}");
    // Still intact, in this state and in a new one; method syntax still works.
    assert_eq!(eval_json(&lua, "return ('ab'):rep(2)"), json!("abab"));
    assert_eq!(eval_json(&lua, "return string.rep('x', 3)"), json!("xxx"));
    // Library tables can still be iterated (read-only proxies with __pairs).
    assert_eq!(
        eval_json(
            &lua,
            "local n = 0 for _ in pairs(math) do n = n + 1 end return n > 10"
        ),
        json!(true)
    );
    second_state_works();
}

#[test]
fn collectgarbage_only_count() {
    assert_err_contains(
        "collectgarbage('stop')",
        "only collectgarbage(\"count\") is allowed",
    );
    assert_err_contains(
        "collectgarbage()",
        "only collectgarbage(\"count\") is allowed",
    );
    let lua = fresh();
    assert_eq!(
        eval_json(&lua, "return type(collectgarbage('count'))"),
        json!("number")
    );
}

#[test]
fn gc_metamethods_are_refused() {
    // Lua runs __gc finalizers with hooks disabled: they would escape the budget.
    assert_err_contains(
        "setmetatable({}, {__gc = function() while true do end end})",
        "__gc metamethods are not allowed",
    );
    let lua = fresh();
    assert_eq!(
        eval_json(
            &lua,
            "local t = setmetatable({}, {__index = {a = 1}}) return t.a"
        ),
        json!(1)
    );
}

#[test]
fn states_are_separate_per_host() {
    let a = fresh();
    let b = fresh();
    // Globals of one chunk, and even of the raw state, are not visible elsewhere.
    eval(&a, "leak = 'from A'").unwrap();
    a.globals().set("leak2", "x").unwrap();
    assert_eq!(eval_json(&b, "return leak"), json!(null));
    assert_eq!(eval_json(&b, "return leak2"), json!(null));
    // Each chunk has its own environment even within a state.
    assert_eq!(eval_json(&a, "return leak"), json!(null));
}

#[test]
fn print_goes_to_sink() {
    let lua = fresh();
    // Default: discarded without error.
    eval(&lua, "print('dropped')").unwrap();
    let lines = sandbox::collect_prints(&lua);
    eval(&lua, "print('a', 1, nil, true) print(setmetatable({}, {__tostring = function() return 'T' end}))").unwrap();
    assert_eq!(*lines.lock().unwrap(), vec!["a\t1\tnil\ttrue", "T"]);
}

#[test]
fn infinite_loop_hits_instruction_budget() {
    let lua = new_lua(&Limits {
        instructions: 1_000_000,
        ..Limits::default()
    })
    .unwrap();
    let e = eval(&lua, "local x = 0\nwhile true do x = x + 1 end").unwrap_err();
    assert_eq!(e.kind, ErrorKind::InstructionLimit, "{e:?}");
    assert!(
        e.to_string()
            .contains("policy exceeded its instruction budget (1000000)"),
        "{e}"
    );
    assert_eq!(e.location(), "test.lua:2");
    // The budget is per call: the same state works again afterwards.
    assert_eq!(eval_json(&lua, "return 1"), json!(1));
    second_state_works();
}

#[test]
fn default_budget_stops_while_true() {
    let lua = fresh();
    let t = Instant::now();
    let e = eval(&lua, "while true do end").unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::InstructionLimit | ErrorKind::TimeLimit),
        "{e:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(20));
    second_state_works();
}

#[test]
fn budget_cannot_be_swallowed() {
    let lua = new_lua(&Limits {
        instructions: 200_000,
        ..Limits::default()
    })
    .unwrap();
    for src in [
        "while true do pcall(function() for i = 1, 5000 do end end) end",
        "while true do xpcall(function() while true do end end, function(m) return m end) end",
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
        "coroutine.wrap(function() while true do end end)()",
    ] {
        let e = eval(&lua, src).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InstructionLimit, "{src}: {e:?}");
    }
}

#[test]
fn wall_clock_limit() {
    let lua = new_lua(&Limits {
        instructions: 0, // disabled
        wall: Duration::from_millis(100),
        ..Limits::default()
    })
    .unwrap();
    let t = Instant::now();
    let e = eval(&lua, "while true do end").unwrap_err();
    assert_eq!(e.kind, ErrorKind::TimeLimit, "{e:?}");
    assert!(
        e.to_string().contains("policy ran longer than 100ms"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    second_state_works();
}

#[test]
fn huge_string_rep_hits_memory_limit() {
    let lua = fresh();
    // A string.rep that could not fit in the memory limit is refused before allocating.
    for src in [
        "return string.rep('x', 2^31)",
        "return string.rep('x', 2^31 - 1)",
        "return string.rep('x', 2^30)",
        "return ('ab'):rep(40000000, 'c')",
    ] {
        let e = eval(&lua, src).unwrap_err();
        assert!(
            e.message.contains("string.rep: the result would be")
                && e.message.contains("bytes (at most 67108864)"),
            "{src}: {e:?}"
        );
    }
    // Growth by other means hits the memory limit itself.
    let e = eval(&lua, "local s = 'x' while true do s = s .. s end").unwrap_err();
    assert_eq!(e.kind, ErrorKind::MemoryLimit, "{e:?}");
    assert!(
        e.to_string().contains("exceeded its memory limit (64 MiB)"),
        "{e}"
    );
    // The same state keeps working after the failed allocation.
    assert_eq!(eval_json(&lua, "return #string.rep('x', 10)"), json!(10));
    assert_eq!(
        eval_json(&lua, "return string.rep('ab', 3, ',')"),
        json!("ab,ab,ab")
    );
    second_state_works();
}

#[test]
fn growing_table_hits_memory_limit() {
    let lua = new_lua(&Limits {
        memory_bytes: 16 * 1024 * 1024,
        ..Limits::default()
    })
    .unwrap();
    let e = eval(
        &lua,
        "local t = {} local i = 0 while true do i = i + 1 t[i] = {i} end",
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::MemoryLimit, "{e:?}");
    assert!(e.to_string().contains("(16 MiB)"), "{e}");
    second_state_works();
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    let lua = fresh();
    let e = eval(&lua, "local function f() return 1 + f() end\nreturn f()").unwrap_err();
    assert!(
        e.message.contains("stack overflow") || e.kind == ErrorKind::MemoryLimit,
        "{e:?}"
    );
    second_state_works();
}

#[test]
fn deep_recursion_with_room_reports_stack_overflow() {
    // With enough memory, Lua's own stack limit (LUAI_MAXSTACK) fires first.
    let lua = new_lua(&Limits {
        memory_bytes: 1024 * 1024 * 1024,
        ..Limits::default()
    })
    .unwrap();
    let e = eval(&lua, "local function f() return 1 + f() end\nreturn f()").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Runtime, "{e:?}");
    assert!(e.message.contains("stack overflow"), "{e:?}");
    assert_eq!(e.location(), "test.lua:1");
    assert_eq!(eval_json(&lua, "return 2"), json!(2));
}

#[test]
fn patterns_and_moves_still_work_when_small() {
    let lua = fresh();
    assert_eq!(
        eval_json(
            &lua,
            "return {('3g.40gb@4'):match('^(%d+)g%.(%d+)gb@(%d+)$')}"
        ),
        json!(["3", "40", "4"])
    );
    assert_eq!(
        eval_json(
            &lua,
            "local n = 0 for w in ('a b c'):gmatch('%a') do n = n + 1 end return n"
        ),
        json!(3)
    );
    assert_eq!(
        eval_json(&lua, "return (('a-b-c'):gsub('-', '+'))"),
        json!("a+b+c")
    );
    assert_eq!(
        eval_json(&lua, "return ('x.y'):find('.', 1, true)"),
        json!(2)
    );
    assert_eq!(
        eval_json(&lua, "return table.move({1, 2, 3}, 1, 3, 2)"),
        json!([1, 1, 2, 3])
    );
    assert_err_contains(
        "local s = ('a'):rep(40) return s:find(('a*'):rep(20) .. 'b')",
        "has too many repetition items for a subject of 40 bytes",
    );
    assert_err_contains(
        "return table.move({}, 1, 1e12, 1, {})",
        "table.move: 1000000000000 elements to move",
    );
}
