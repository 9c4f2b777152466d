//! Loading playbooks: data model, typed module arguments, policies, validation errors
//! with positions.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::lua::Scratch;
use migfleet::fleet::Serial;
use migfleet::playbook::modules::target::Target;
use migfleet::playbook::modules::{Module, ModuleName};
use migfleet::playbook::policy::Policies;
use migfleet::playbook::{
    Action, Cond, ErrorKind, Limits, Play, PlaybookError, PlaybookSource, Shared, from_lua_value,
    load_plays, new_state, to_lua_value,
};
use serde_json::{Map, Value, json};

fn shared(dir: &Scratch, extra: &Map<String, Value>) -> Shared {
    Shared {
        policies: Arc::new(Policies::new(vec![dir.path().join("lua/policies")])),
        configs: Default::default(),
        extra_vars: extra.clone(),
    }
}

fn load(dir: &Scratch, text: &str) -> (mlua::Lua, Result<Vec<Play>, PlaybookError>, String) {
    load_with(dir, text, &Map::new())
}

fn load_with(
    dir: &Scratch,
    text: &str,
    extra: &Map<String, Value>,
) -> (mlua::Lua, Result<Vec<Play>, PlaybookError>, String) {
    let path = dir.write("site.lua", text);
    let lua = new_state(&Limits::default()).unwrap();
    let res =
        PlaybookSource::read(&path).and_then(|src| load_plays(&lua, &src, &shared(dir, extra)));
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
    { drain{ units = "dcgm" }, tags = {"never", "reboot"} },
    { command{ argv = {"nvidia-smi", "-L"} } },
    { mig.assert{ layout = vars.expect } },
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
        Action::Module(Module::Drain(d)) => {
            assert_eq!(d.units, vec!["slurmd"]);
            assert_eq!(d.timeout, Duration::from_secs(300));
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
        Action::Module(Module::MigApply(a)) => {
            let Target::Policy { name: None, func } = &a.target else {
                panic!("{:?}", a.target)
            };
            assert_eq!(func.pos.line, 13);
            let gpu = to_lua_value(&lua, &json!({"index": 3})).unwrap();
            let r: mlua::Value = func.call(&lua, (gpu, mlua::Value::Nil)).unwrap();
            assert_eq!(from_lua_value(r).unwrap(), json!([3]));
        }
        other => panic!("{other:?}"),
    }

    let t = &p.tasks[2];
    assert_eq!(t.name, "check");
    assert_eq!(t.pos.line, 20, "line of the task{{}} call");
    let host = to_lua_value(&lua, &json!({"name": "gpu01", "gpus": 8})).unwrap();
    match &t.when {
        Some(Cond::Function(f)) => {
            assert!(f.call::<_, bool>(&lua, host.clone()).unwrap());
        }
        other => panic!("{other:?}"),
    }
    match &t.action {
        Action::Function(f) => {
            assert_eq!(f.pos.line, 20);
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
        ["mig.mode", "restore", "drain", "command", "mig.assert"]
    );
    assert_eq!(p.tasks[3].name, "mig.mode", "default name is the module");
    assert_eq!(p.tasks[5].tags, vec!["never", "reboot"]);
    match &p.tasks[7].action {
        Action::Module(Module::MigAssert(a)) => {
            let Some(Target::Layout(spec)) = &a.target else {
                panic!("{:?}", a.target)
            };
            assert_eq!(
                spec.for_gpu(Some("H100-80GB")).unwrap()[0].profile,
                "1g.10gb"
            );
        }
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
fn a_bare_module_call_is_a_task() {
    let dir = Scratch::new("bare");
    let (_lua, plays, _) = load_ok(
        &dir,
        r#"return { hosts = "all", tasks = {
  mig.mode{ enabled = true },
  { name = "check", mig.assert{ layout = {"7g.80gb"} } },
} }"#,
    );
    let tasks = &plays[0].tasks;
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].name, "mig.mode", "named after its module");
    assert_eq!(tasks[0].pos.line, 2);
    assert!(matches!(
        tasks[0].action,
        Action::Module(Module::MigMode(_))
    ));
    assert!(matches!(
        tasks[1].action,
        Action::Module(Module::MigAssert(_))
    ));
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
    let Action::Module(Module::MigApply(a)) = &plays[0].tasks[0].action else {
        panic!()
    };
    let Target::Policy { func: f, .. } = &a.target else {
        panic!("{:?}", a.target)
    };
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
    let (_lua, res, _) = load(
        &dir,
        "\nlocal p = policy('balanced')\nreturn { hosts = 'x' }",
    );
    assert!(res.is_ok(), "the built-in balanced policy: {:?}", res.err());
    // No local `balanced`: the built-in one is found.
    let (_lua, res, file) = load(
        &dir,
        "\nlocal p = policy('balancd')\nreturn { hosts = 'x' }",
    );
    let e = res.unwrap_err();
    assert!(
        e.message
            .contains("policy 'balancd' not found (did you mean 'balanced'?)")
            && e.message
                .contains("available: balanced, by-model, demand, even,"),
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
        e.message
            .contains("must return a function(gpu, ctx), got table"),
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
    { name = "typo", restore{},
      retires = 3 },
  },
}"#,
    );
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_eq!(e.location(), format!("{file}:5"));
    assert!(
        e.message
            .contains("unknown task key 'retires' (did you mean 'retries'?)"),
        "{e}"
    );
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
            "return { hosts = 'a', tasks = {\n { restore{}, action = restore{} } } }",
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
            "return { hosts = 'a', tasks = {\n { restore{}, restore{} } } }",
            "unexpected entry [2]",
            2,
        ),
        (
            "return { hosts = 'a', tasks = {\n { command{ argv = {1, x = 2} } } } }",
            "`argv` must be a list of strings",
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
    // An endless loop is stopped by whichever budget runs out first: on a loaded
    // machine the time budget can beat the instruction budget.
    let stopped = [ErrorKind::InstructionLimit, ErrorKind::TimeLimit];
    let e = call(2);
    assert!(stopped.contains(&e.kind), "{e:?}");
    assert_eq!(e.location(), format!("{file}:7"));
    // The budget resets per call.
    let e2 = call(2);
    assert!(stopped.contains(&e2.kind), "{e2:?}");
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
    let src = PlaybookSource::read(&path).unwrap();
    let shared = shared(&dir, &Map::new());
    let a = new_state(&Limits::default()).unwrap();
    let b = new_state(&Limits::default()).unwrap();
    let pa = load_plays(&a, &src, &shared).unwrap();
    let pa2 = load_plays(&a, &src, &shared).unwrap();
    let pb = load_plays(&b, &src, &shared).unwrap();
    // Every load gets a fresh environment: nothing carries over, not even in one state.
    for p in [&pa, &pa2, &pb] {
        assert_eq!(p[0].vars["counter"], json!(1));
    }
}

#[test]
fn missing_playbook_is_io_error() {
    let e = PlaybookSource::read(Path::new("/nonexistent/site.lua")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/site.lua: cannot read playbook"),
        "{e}"
    );
}

#[test]
fn module_arguments_are_checked_when_the_playbook_loads() {
    let dir = Scratch::new("args");
    dir.write(
        "lua/policies/broken.lua",
        "return function(gpu)\n  return {\nend\n",
    );
    let cases: &[(&str, &str)] = &[
        (
            "drain{ unit = {'dcgm'} }",
            "drain: unknown argument `unit` (did you mean `units`?); it takes: units, gpus, timeout, signal, systemctl",
        ),
        (
            "mig.apply{ polcy = 'balanced' }",
            "mig.apply: unknown argument `polcy` (did you mean `policy`?)",
        ),
        ("mig.apply{}", "give one of layout"),
        (
            "mig.apply{ layout = {'3g.40gb'}, policy = 'balanced' }",
            "give only one of layout, policy, mig_parted (found layout and policy)",
        ),
        (
            "mig.apply{ policy = 'no-such-policy' }",
            "policy 'no-such-policy' not found",
        ),
        (
            "mig.apply{ policy = 'broken' }",
            "broken.lua:3: unexpected symbol",
        ),
        (
            "mig.apply{ layout = {'3g.40bg'} }",
            "not a MIG profile name",
        ),
        (
            "mig.apply{ layout = { ['H100-80GB'] = {'1g.5gb'} } }",
            "does not exist on H100-80GB",
        ),
        (
            "mig.apply{ layout = {'1g.10gb'}, on_busy = 'skip' }",
            "`on_busy` must be one of \"skip_gpu\" or \"fail_host\"",
        ),
        (
            "mig.apply{ layout = {'1g.10gb'}, reset = false }",
            "`reset` only applies with mig_parted",
        ),
        (
            "mig.apply{ mig_parted = { file = 'nowhere.yaml' } }",
            "cannot read nowhere.yaml",
        ),
        ("mig.mode{ enable = true }", "did you mean `enabled`?"),
        (
            "mig.mode{}",
            "mig.mode needs enabled = true or enabled = false",
        ),
        (
            "mig.mode{ enabled = 'yes' }",
            "`enabled` must be true or false, got \"yes\"",
        ),
        (
            "mig.mode{ enabled = true, gpus = 0 }",
            "`gpus` must be a list of GPU indices",
        ),
        ("mig.assert{}", "mig.assert needs something to check"),
        ("drain{ signal = 'STOP' }", "`signal` must be one of TERM"),
        (
            "drain{ timeout = -1 }",
            "`timeout` must be a positive number of seconds",
        ),
        (
            "command{ argv = 'rm -rf /' }",
            "`argv` must be a list of strings",
        ),
        ("restore{ systemctl = {} }", "must name a program"),
    ];
    for (call, needle) in cases {
        let (_lua, res, file) = load(
            &dir,
            &format!("return {{ hosts = 'a', tasks = {{\n  {{ name = 't', {call} }} }} }}"),
        );
        let e = res.expect_err(call);
        assert!(e.to_string().contains(needle), "{call}: {e}");
        if !needle.contains(".lua:") {
            assert_eq!(e.location(), format!("{file}:2"), "{call}: {e}");
        }
    }
}

#[test]
fn modules_that_do_not_exist_are_refused_with_the_closest_name() {
    for (src, needle) in [
        (
            "return { hosts = 'a', tasks = { { rebot{} } } }",
            "did you mean `reboot`?",
        ),
        (
            "return { hosts = 'a', tasks = { { reboot{ timeot = 5 } } } }",
            "reboot: unknown argument `timeot` (did you mean `timeout`?)",
        ),
        (
            "return { hosts = 'a', tasks = { { mig.mode{ enabled = true, reboot = 'always' } } } }",
            "`reboot` must be \"never\" or \"if_needed\"",
        ),
        (
            "return { hosts = 'a', tasks = { { dran{} } } }",
            "did you mean `drain`?",
        ),
        (
            "return { hosts = 'a', tasks = { { mig.aply{} } } }",
            "did you mean `apply`?",
        ),
    ] {
        let (e, _) = load_err(src);
        assert!(e.message.contains(needle), "{src}: {e}");
    }
}

#[test]
fn the_luals_annotations_declare_exactly_the_modules() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("lua/types/migfleet.lua"),
    )
    .unwrap();
    let declared: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("function "))
        .filter_map(|l| l.split('(').next())
        .map(str::to_string)
        .collect();
    let helpers = ["mig.layouts", "mig.pack", "mig.pack_demand", "policy"];
    let mut modules: Vec<&str> = declared
        .iter()
        .map(String::as_str)
        .filter(|d| !helpers.contains(d))
        .collect();
    modules.sort_unstable();
    let mut want: Vec<&str> = ModuleName::ALL.iter().map(|m| m.as_str()).collect();
    want.sort_unstable();
    assert_eq!(modules, want);
    // Every argument a module takes is annotated.
    for m in ModuleName::ALL {
        let line = text
            .lines()
            .zip(text.lines().skip(1))
            .find(|(_, next)| next.starts_with(&format!("function {}(", m.as_str())))
            .map(|(l, _)| l)
            .unwrap_or_else(|| panic!("no @param line before {}", m.as_str()));
        for key in m.keys() {
            assert!(
                line.contains(&format!("{key}?:")) || line.contains(&format!("{key}:")),
                "{}: {key} missing in {line}",
                m.as_str()
            );
        }
    }
}

#[test]
fn the_mig_helpers_work_while_the_playbook_loads() {
    let dir = Scratch::new("helpers");
    let (_lua, plays, _) = load_ok(
        &dir,
        r#"local l = mig.pack("H100-80GB", { ["3g.40gb"] = 1, ["1g.10gb"] = 7 })
           local n = #mig.layouts("A30-24GB", { maximal = true })
           return { name = table.concat(l, " ") .. " / " .. n, hosts = "all",
                    tasks = { { mig.assert{ layout = l } } } }"#,
    );
    assert_eq!(
        plays[0].name,
        "1g.10gb 1g.10gb 1g.10gb 1g.10gb 3g.40gb / 17"
    );
}
