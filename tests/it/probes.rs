//! Probes: hostile Lua that must end within its bound, refused clearly, and leave the
//! state usable for what follows. Each probe runs in a sandbox with a 1 s wall budget and
//! a 20 M instruction budget, on its own thread; the bound asserted is 10 s — a probe that
//! takes longer is one the sandbox cannot stop (a hang, not a slow machine).

use std::sync::mpsc;
use std::time::Duration;

use migfleet::playbook::sandbox::{self, Limits};
use migfleet::playbook::{PlaybookError, api};

/// How long any probe may take, budget included.
const BOUND: Duration = Duration::from_secs(10);

fn limits() -> Limits {
    Limits {
        memory_bytes: 64 * 1024 * 1024,
        instructions: 20_000_000,
        wall: Duration::from_secs(1),
    }
}

/// Runs `src` in a fresh sandbox with migfleet's helpers on its own thread; the result,
/// or `None` when the bound passed.
fn probe(src: &'static str) -> Option<Result<String, PlaybookError>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lua = sandbox::new_lua(&limits()).unwrap();
        api::install(&lua).unwrap();
        let r = sandbox::eval(&lua, "probe.lua", src)
            .map(|v| format!("{v:?}"))
            .map_err(|e| PlaybookError::from_lua(&lua, e));
        let _ = tx.send(r);
    });
    rx.recv_timeout(BOUND).ok()
}

#[test]
fn hostile_lua_ends_within_its_bound() {
    // (probe, what it does)
    let probes: &[(&str, &str)] = &[
        ("return string.rep('x', 1e9)", "a 1 GB string"),
        ("return string.rep('', 1e12)", "a trillion empty strings"),
        (
            "return string.rep('', 1e12, '')",
            "empty with an empty separator",
        ),
        (
            "return ('x'):rep(1e6, ('y'):rep(1e6))",
            "a terabyte with a separator",
        ),
        (
            "return table.move({}, 1, 1e12, 1, {})",
            "moving nothing a trillion times",
        ),
        (
            "return table.concat({}, ',', 1, 1e12)",
            "concatenating a trillion nils",
        ),
        (
            "local s = ('a'):rep(40) return s:find(('a*'):rep(20) .. 'b')",
            "backtracking find",
        ),
        (
            "local s = ('a'):rep(5000) return s:match('.-.-.-.-.-b')",
            "lazy backtracking match",
        ),
        (
            "local s = ('a'):rep(10000) return s:gsub('(.-)b', '%1')",
            "gsub that never matches",
        ),
        (
            "return select('#', string.byte(('x'):rep(1e8), 1, -1))",
            "a hundred million returns",
        ),
        (
            "return table.unpack({}, 1, 1e8)",
            "unpacking a hundred million nils",
        ),
        (
            "return xpcall(function() while true do end end, function() while true do end end)",
            "a looping message handler",
        ),
        (
            "local n = 0 return load(function() n = n + 1 while true do end end)",
            "a reader that loops",
        ),
        (
            "for i = 1, 100000 do pcall(mig.layouts, 'H100-80GB') end",
            "helpers called after the budget",
        ),
        (
            "for i = 1, 1e9 do local x = mig.pack('H100-80GB', {['1g.10gb'] = 1}) end",
            "a helper in a long loop",
        ),
        (
            "return coroutine.wrap(function() while true do end end)()",
            "a loop in a coroutine",
        ),
    ];
    let mut hung = Vec::new();
    for (src, what) in probes {
        match probe(src) {
            None => hung.push(format!("{what}: {src}")),
            Some(Ok(v)) if v.len() > 1000 => {}
            Some(_) => {}
        }
    }
    assert!(
        hung.is_empty(),
        "did not end within {BOUND:?}:\n{}",
        hung.join("\n")
    );
}

#[test]
fn library_tables_cannot_be_reached_or_changed() {
    for (src, what) in [
        (
            "for k, v in pairs(string) do end local _, t = pairs(string) t.len = nil return string.len('ab')",
            "the table pairs hands out",
        ),
        (
            "local f, t = pairs(math) rawset(t, 'floor', nil) return math.floor(1.5)",
            "rawset on it",
        ),
        ("local k = next(math) return k", "next over a library"),
        (
            "local t = getmetatable('').__index t.len = nil return ('ab'):len()",
            "the string metatable's index",
        ),
    ] {
        let lua = sandbox::new_lua(&limits()).unwrap();
        let _ = sandbox::eval(&lua, "probe.lua", src);
        // Whatever the probe did, the libraries are intact afterwards.
        let ok = sandbox::eval(
            &lua,
            "check.lua",
            "return string.len('ab') == 2 and math.floor(1.5) == 1 and ('ab'):len() == 2",
        );
        assert!(
            matches!(ok, Ok(mlua::Value::Boolean(true))),
            "{what}: {src}: {ok:?}"
        );
    }
}
