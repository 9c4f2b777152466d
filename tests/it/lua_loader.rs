//! Loading playbooks: data model, policies, validation errors with positions.

use std::path::Path;
use std::time::Duration;

use crate::support::lua::{Scratch, fresh};
use migfleet::playbook::{
    Action, Cond, ErrorKind, Play, PlaybookError, Serial, from_lua_value, load_playbook,
    to_lua_value,
};
use serde_json::{Map, Value, json};

fn load(dir: &Scratch, text: &str) -> (mlua::Lua, Result<Vec<Play>, PlaybookError>, String) {
    load_with(dir, text, &Map::new())
}

fn load_with(
    dir: &Scratch,
    text: &str,
    extra: &Map<String, Value>,
) -> (mlua::Lua, Result<Vec<Play>, PlaybookError>, String) {
    let path = dir.write("site.lua", text);
    let lua = fresh();
    let res = load_playbook(&lua, &path, extra, &dir.path().join("lua/policies"));
    (lua, res, path.display().to_string())
}

fn load_ok(dir: &Scratch, text: &str) -> (mlua::Lua, Vec<Play>, String) {
    let (lua, res, file) = load(dir, text);
    (lua, res.unwrap(), file)
}

fn load_err(text: &str) -> (PlaybookError, String) {
    let dir = Scratch::new("err");
    let (_lua, res, file) = load(&dir, text);
    (res.unwrap_err(), file)
}

const FULL: &str = r#"
return {
  name = "repartition",
  hosts = "gpu",
  serial = {1, "30%"},
  max_fail_percentage = 25,
  vars = { profile = "3g.40gb", count = 2 },
  tasks = {
    { name = "drain", drain{ units = {"slurmd"} }, tags = "drain" },
    {
      name = "apply",
      mig.apply{
        layout = { "3g.40gb", "3g.40gb" },
        policy = function(gpu, ctx) return {gpu.index} end,
      },
      tags = {"mig", "always"},
      retries = 3,
      delay = 1.5,
      when = true,
    },
    task{ name = "check", run = function(host)
        return { ok = host.name ~= nil }
      end,
      when = function(host) return host.gpus > 0 end },
    { action = mig.mode{ enabled = true } },
    { restore{} },
    { reboot(), tags = {"never", "reboot"} },
    { command{ argv = {"nvidia-smi", "-L"} } },
    { mig.assert{ expect = vars.expect } },
  },
}
"#;

#[test]
fn single_play_with_everything() {
    let dir = Scratch::new("full");
    let extra: Map<String, Value> = json!({"expect": ["1g.10gb"]}).as_object().unwrap().clone();
    let (lua, res, file) = load_with(&dir, FULL, &extra);
    let plays = res.unwrap();
    assert_eq!(plays.len(), 1);
    let p = &plays[0];
    assert_eq!(p.name, "repartition");
    assert_eq!(p.hosts, "gpu");
    assert_eq!(p.serial, vec![Serial::Count(1), Serial::Percent(30.0)]);
    assert_eq!(p.max_fail_percentage, Some(25.0));
    assert_eq!(
        Value::Object(p.vars.clone()),
        json!({"profile": "3g.40gb", "count": 2})
    );
    assert_eq!(p.pos.file, file);
    assert_eq!(p.pos.line, 9, "play falls back to its first task's line");
    assert_eq!(p.tasks.len(), 8);

    let t = &p.tasks[0];
    assert_eq!(t.name, "drain");
    assert_eq!(t.tags, vec!["drain"]);
    assert_eq!(t.retries, 0);
    assert_eq!(t.delay, Duration::from_secs(5));
    assert!(t.when.is_none());
    assert_eq!(t.pos.line, 9);
    match &t.action {
        Action::Module {
            name,
            args,
            functions,
        } => {
            assert_eq!(name, "drain");
            assert_eq!(args, &json!({"units": ["slurmd"]}));
            assert!(functions.is_empty());
        }
        other => panic!("{other:?}"),
    }

    let t = &p.tasks[1];
    assert_eq!(t.name, "apply");
    assert_eq!(t.tags, vec!["mig", "always"]);
    assert_eq!(t.retries, 3);
    assert_eq!(t.delay, Duration::from_millis(1500));
    assert!(matches!(t.when, Some(Cond::Bool(true))));
    assert_eq!(t.pos.line, 12, "line of the mig.apply call");
    match &t.action {
        Action::Module {
            name,
            args,
            functions,
        } => {
            assert_eq!(name, "mig.apply");
            assert_eq!(args, &json!({"layout": ["3g.40gb", "3g.40gb"]}));
            assert_eq!(functions.len(), 1);
            assert_eq!(functions[0].0, "policy");
            assert_eq!(functions[0].1.pos.line, 14);
            let gpu = to_lua_value(&lua, &json!({"index": 3})).unwrap();
            let r: mlua::Value = functions[0].1.call(&lua, (gpu, mlua::Value::Nil)).unwrap();
            assert_eq!(from_lua_value(r).unwrap(), json!([3]));
        }
        other => panic!("{other:?}"),
    }

    let t = &p.tasks[2];
    assert_eq!(t.name, "check");
    assert_eq!(t.pos.line, 21, "line of the task{{}} call");
    let host = to_lua_value(&lua, &json!({"name": "gpu01", "gpus": 8})).unwrap();
    match &t.when {
        Some(Cond::Function(f)) => {
            assert!(f.call::<_, bool>(&lua, host.clone()).unwrap());
        }
        other => panic!("{other:?}"),
    }
    match &t.action {
        Action::Function(f) => {
            assert_eq!(f.pos.line, 21);
            let r: mlua::Value = f.call(&lua, host).unwrap();
            assert_eq!(from_lua_value(r).unwrap(), json!({"ok": true}));
        }
        other => panic!("{other:?}"),
    }

    let names: Vec<_> = p.tasks[3..]
        .iter()
        .map(|t| t.action.module_name().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["mig.mode", "restore", "reboot", "command", "mig.assert"]
    );
    assert_eq!(p.tasks[3].name, "mig.mode", "default name is the module");
    assert_eq!(p.tasks[5].tags, vec!["never", "reboot"]);
    match &p.tasks[7].action {
        Action::Module { args, .. } => assert_eq!(args, &json!({"expect": ["1g.10gb"]})),
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_of_plays_and_serial_forms() {
    let dir = Scratch::new("list");
    let (_lua, plays, _) = load_ok(
        &dir,
        r#"
local function t(n) return { name = n, command{ argv = {"true"} } } end
return {
  play{ hosts = "a", serial = 2, tasks = { t("one") } },
  play{ hosts = {"b", "c:!d"}, serial = "25%", tasks = {} },
  { hosts = "e", serial = "3" },
}"#,
    );
    assert_eq!(plays.len(), 3);
    assert_eq!(plays[0].serial, vec![Serial::Count(2)]);
    assert_eq!(plays[0].pos.line, 4, "play{{}} records its line");
    assert_eq!(plays[0].name, "a", "name defaults to hosts");
    assert_eq!(plays[0].tasks[0].pos.line, 2);
    assert_eq!(plays[1].hosts, "b,c:!d");
    assert_eq!(plays[1].serial, vec![Serial::Percent(25.0)]);
    assert!(plays[1].tasks.is_empty());
    assert_eq!(plays[2].serial, vec![Serial::Count(3)]);
    assert!(plays[2].max_fail_percentage.is_none());
}

#[test]
fn extra_vars_visible_as_vars() {
    let dir = Scratch::new("vars");
    let extra: Map<String, Value> = json!({"x": 5, "profile": "1g.10gb", "list": [1, 2]})
        .as_object()
        .unwrap()
        .clone();
    let (_lua, res, _) = load_with(
        &dir,
        r#"return { hosts = "all", vars = { doubled = vars.x * 2, n = #vars.list },
                     tasks = { { command{ argv = { vars.profile } } } } }"#,
        &extra,
    );
    let plays = res.unwrap();
    assert_eq!(
        Value::Object(plays[0].vars.clone()),
        json!({"doubled": 10, "n": 2})
    );
}

const POLICY: &str = r#"
local M = {}
return function(gpu, ctx)
  local out = {}
  for i = 1, ctx.slices do out[#out + 1] = "1g.10gb" end
  return out
end
"#;

#[test]
fn policy_loads_from_policy_dir() {
    let dir = Scratch::new("policy");
    dir.write("lua/policies/even.lua", POLICY);
    let (lua, plays, _) = load_ok(
        &dir,
        r#"local even = policy("even")
           assert(policy("even") == even, "cached")
           return { hosts = "gpu", tasks = { { mig.apply{ policy = even } } } }"#,
    );
    let Action::Module { functions, .. } = &plays[0].tasks[0].action else {
        panic!()
    };
    let f = &functions[0].1;
    assert!(f.pos.file.ends_with("lua/policies/even.lua"), "{:?}", f.pos);
    assert_eq!(f.pos.line, 3);
    let ctx = to_lua_value(&lua, &json!({"slices": 3})).unwrap();
    let r: mlua::Value = f.call(&lua, (mlua::Value::Nil, ctx)).unwrap();
    assert_eq!(
        from_lua_value(r).unwrap(),
        json!(["1g.10gb", "1g.10gb", "1g.10gb"])
    );
}

#[test]
fn missing_policy_lists_available() {
    let dir = Scratch::new("nopolicy");
    dir.write("lua/policies/even.lua", POLICY);
    dir.write("lua/policies/packed.lua", POLICY);
    let (_lua, res, file) = load(
        &dir,
        "\nlocal p = policy('balanced')\nreturn { hosts = 'x' }",
    );
    let e = res.unwrap_err();
    assert!(
        e.message.contains("policy 'balanced' not found")
            && e.message.contains("(available: even, packed)"),
        "{e}"
    );
    assert_eq!(e.location(), format!("{file}:2"));

    for bad in ["../etc/passwd", ""] {
        let (_lua, res, _) = load(&dir, &format!("policy({bad:?}) return {{ hosts = 'x' }}"));
        assert!(res.unwrap_err().message.contains("invalid policy name"));
    }
    dir.write("lua/policies/table.lua", "return {}");
    let (_lua, res, _) = load(&dir, "policy('table') return { hosts = 'x' }");
    let e = res.unwrap_err();
    assert!(
        e.message.contains("must return a function, got table"),
        "{e}"
    );
    assert!(e.location().ends_with("table.lua"), "{e}");
}

#[test]
fn syntax_error_reports_file_and_line() {
    let (e, file) = load_err("return {\n  hosts = 'a',\n  tasks = { { name = } },\n}");
    assert_eq!(e.kind, ErrorKind::Syntax);
    assert_eq!(e.location(), format!("{file}:3"));
    assert!(e.message.contains("unexpected symbol"), "{e}");
}

#[test]
fn unknown_task_key_reports_task_line() {
    let (e, file) = load_err(
        r#"return {
  hosts = "gpu",
  tasks = {
    { name = "ok", restore{} },
    { name = "typo", reboot{},
      retires = 3 },
  },
}"#,
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.location(), format!("{file}:5"));
    assert!(e.message.contains("unknown task key 'retires'"), "{e}");
    assert!(e.message.contains("expected one of: name, when"), "{e}");
}

#[test]
fn validation_errors() {
    let cases: &[(&str, &str, u32)] = &[
        (
            "return { hosts = 'a', forks = 3, tasks = { {restore{}} } }",
            "unknown play key 'forks'",
            1,
        ),
        ("return { name = 'x' }", "missing required key 'hosts'", 0),
        (
            "return { hosts = 'a', serial = '0%' }",
            "serial entries must be",
            0,
        ),
        (
            "return { hosts = 'a', serial = {1, true} }",
            "serial entries must be",
            0,
        ),
        (
            "return { hosts = 'a', max_fail_percentage = 150 }",
            "between 0 and 100",
            0,
        ),
        (
            "return { hosts = 'a', tasks = {\n {\n name = 'x' } } }",
            "task has no action",
            0,
        ),
        (
            "return { hosts = 'a', tasks = {\n { restore{}, run = function() end } } }",
            "not both",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { restore{}, action = reboot{} } } }",
            "exactly one module call",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { {argv = {}} } } }",
            "did you forget the module name",
            0,
        ),
        (
            "return { hosts = 'a', tasks = {\n { restore{}, when = 'yes' } } }",
            "when must be a boolean or a function",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { restore{}, tags = {1} } } }",
            "tag must be a string",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { restore{}, retries = -1 } } }",
            "retries must be a non-negative integer",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { restore{}, delay = 'soon' } } }",
            "delay must be a non-negative number",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { restore{}, reboot{} } } }",
            "unexpected entry [2]",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { command{ argv = {1, x = 2} } } } }",
            "mixes list entries",
            2,
        ),
        (
            "return { hosts = 'a', vars = { f = function() end } }",
            "cannot convert a function at 'vars.f'",
            0,
        ),
        ("return 42", "must return a play table or a list", 0),
        ("return {}", "empty table", 0),
        ("return { 1 }", "play #1 must be a table", 0),
    ];
    for (src, needle, line) in cases {
        let (e, file) = load_err(src);
        assert!(e.message.contains(needle), "{src}: {e}");
        let pos = e.pos.clone().unwrap();
        assert_eq!(pos.file, file, "{src}");
        assert_eq!(pos.line, *line, "{src}: {e}");
    }
}

#[test]
fn module_call_errors_have_positions() {
    let (e, file) = load_err("\n\nlocal x = mig.apply('3g')\nreturn {hosts='a'}");
    assert!(
        e.message.contains("mig.apply expects a table argument"),
        "{e}"
    );
    assert_eq!(e.location(), format!("{file}:3"));
    // Unknown modules are simply absent globals.
    let (e, file) = load_err("return { hosts = 'a', tasks = {\n { mig.partition{} } } }");
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert_eq!(e.location(), format!("{file}:2"));
    assert!(e.message.contains("field 'partition'"), "{e}");
    let (e, _) = load_err("return { hosts = 'a', tasks = { { shell{} } } }");
    assert!(e.message.contains("global 'shell'"), "{e}");
}

#[test]
fn runtime_error_in_run_reports_its_line() {
    let dir = Scratch::new("rt");
    let (lua, plays, file) = load_ok(
        &dir,
        r#"return { hosts = "a", tasks = {
  { run = function(host)
      local gpus = host.gpus
      return { n = #gpus + nil_value.x }
    end },
  { run = function(host) error("no MIG on " .. host.name) end },
  { run = function(host) while true do end end },
} }"#,
    );
    let host = to_lua_value(&lua, &json!({"name": "gpu07", "gpus": [0, 1]})).unwrap();
    let call = |i: usize| {
        let Action::Function(f) = &plays[0].tasks[i].action else {
            panic!()
        };
        f.call::<_, mlua::Value>(&lua, host.clone()).unwrap_err()
    };
    let e = call(0);
    assert_eq!(e.kind, ErrorKind::Runtime);
    assert_eq!(e.location(), format!("{file}:4"));
    assert!(e.message.contains("nil_value"), "{e}");
    assert!(
        e.traceback
            .as_deref()
            .unwrap_or("")
            .contains("stack traceback"),
        "{e:?}"
    );
    let e = call(1);
    assert_eq!(e.location(), format!("{file}:6"));
    assert_eq!(e.message, "no MIG on gpu07");
    let e = call(2);
    assert_eq!(e.kind, ErrorKind::InstructionLimit);
    assert_eq!(e.location(), format!("{file}:7"));
    // The budget resets per call.
    let e2 = call(2);
    assert_eq!(e2.kind, ErrorKind::InstructionLimit);
    let _ = Path::new(&file);
}

#[test]
fn each_host_loads_into_its_own_state() {
    let dir = Scratch::new("hosts");
    let path = dir.write(
        "site.lua",
        r#"counter = (counter or 0) + 1
           return { hosts = "a", vars = { counter = counter } }"#,
    );
    let pdir = dir.path().join("lua/policies");
    let a = fresh();
    let b = fresh();
    let pa = load_playbook(&a, &path, &Map::new(), &pdir).unwrap();
    let pa2 = load_playbook(&a, &path, &Map::new(), &pdir).unwrap();
    let pb = load_playbook(&b, &path, &Map::new(), &pdir).unwrap();
    // Every load gets a fresh environment: nothing carries over, not even in one state.
    for p in [&pa, &pa2, &pb] {
        assert_eq!(p[0].vars["counter"], json!(1));
    }
}

#[test]
fn missing_playbook_is_io_error() {
    let lua = fresh();
    let e = load_playbook(
        &lua,
        Path::new("/nonexistent/site.lua"),
        &Map::new(),
        Path::new("/x"),
    )
    .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/site.lua: cannot read playbook"),
        "{e}"
    );
}
