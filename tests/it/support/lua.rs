//! Shared test helpers: scratch directories and quick Lua evaluation.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use migfleet::playbook::sandbox::{self, Limits};
use migfleet::playbook::{PlaybookError, from_lua_value};
use mlua::Lua;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh scratch directory under the system temp dir (removed on drop).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pbtest-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Evaluates `src` in a sandbox env of `lua`, mapping errors to `PlaybookError`.
pub fn eval(lua: &Lua, src: &str) -> Result<mlua::Value, PlaybookError> {
    sandbox::eval(lua, "test.lua", src).map_err(|e| PlaybookError::from_lua(lua, e))
}

pub fn eval_json(lua: &Lua, src: &str) -> serde_json::Value {
    from_lua_value(eval(lua, src).unwrap()).unwrap()
}

pub fn fresh() -> Lua {
    sandbox::new_lua(&Limits::default()).unwrap()
}

/// Asserts a second, fresh state still works after an exhausted one.
pub fn second_state_works() {
    let lua = fresh();
    assert_eq!(eval_json(&lua, "return 1 + 1"), serde_json::json!(2));
}
