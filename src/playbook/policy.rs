//! Named partition policies: where `policy("name")` and `mig.apply{ policy = "name" }`
//! find them, read once per run and compiled once per Lua state.
//!
//! The search path is every `--policy-dir` in the order given, then `lua/policies/` beside
//! the playbook's folder and in the working directory, then the policies built into the
//! binary (`lua/policies/*.lua` of this repository), so a local file of the same name wins
//! over a shipped one and `migfleet run` works from any directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use mlua::chunk::ChunkMode;
use mlua::{Function, Lua, Value};

use super::error::{ErrorKind, PlaybookError};
use super::play::SourcePos;
use super::sandbox;

/// The policies shipped with migfleet, compiled into the binary.
const BUILT_IN: &[(&str, &str)] = &[
    ("balanced", include_str!("../../lua/policies/balanced.lua")),
    ("by-model", include_str!("../../lua/policies/by-model.lua")),
    ("demand", include_str!("../../lua/policies/demand.lua")),
    (
        "one-per-gpu",
        include_str!("../../lua/policies/one-per-gpu.lua"),
    ),
    (
        "smallest-max",
        include_str!("../../lua/policies/smallest-max.lua"),
    ),
];

/// Where built-in policies say they come from in `file:line` positions.
pub const BUILT_IN_PREFIX: &str = "<built-in>/policies/";

/// A policy's text and the name its chunk carries (its path, for positions).
#[derive(Debug)]
pub struct PolicySource {
    pub chunk: String,
    pub text: String,
}

/// The policy search path of a run, with what was read from it.
#[derive(Debug, Default)]
pub struct Policies {
    dirs: Vec<PathBuf>,
    read: Mutex<HashMap<String, Arc<PolicySource>>>,
}

impl Policies {
    /// `dirs` are searched in order, then the built-in policies.
    pub fn new(dirs: Vec<PathBuf>) -> Policies {
        Policies {
            dirs,
            read: Mutex::default(),
        }
    }

    /// The search path for a playbook: `explicit` (`--policy-dir`, in order), then
    /// `lua/policies` beside the playbook's folder (the repository layout,
    /// `playbooks/x.lua` next to `lua/policies/`), in the playbook's folder, and in the
    /// working directory; folders that do not exist are left out.
    pub fn search_path(explicit: &[PathBuf], playbook: &Path) -> Vec<PathBuf> {
        let dir = playbook.parent().unwrap_or_else(|| Path::new("."));
        let mut out: Vec<PathBuf> = explicit.to_vec();
        for candidate in [
            dir.parent().map(|p| p.join("lua/policies")),
            Some(dir.join("lua/policies")),
            Some(PathBuf::from("lua/policies")),
        ]
        .into_iter()
        .flatten()
        {
            let same = |p: &PathBuf| {
                p == &candidate
                    || (p.canonicalize().ok().is_some()
                        && p.canonicalize().ok() == candidate.canonicalize().ok())
            };
            if candidate.is_dir() && !out.iter().any(same) {
                out.push(candidate);
            }
        }
        out
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Every policy name on the search path, sorted.
    pub fn available(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILT_IN.iter().map(|(n, _)| n.to_string()).collect();
        for dir in &self.dirs {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "lua")
                    && let Some(stem) = p.file_stem().and_then(|s| s.to_str())
                {
                    names.push(stem.to_string());
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    /// The source of policy `name`: the first file on the search path, else the built-in
    /// one. Read once per run.
    pub fn find(&self, name: &str) -> Result<Arc<PolicySource>, String> {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(format!(
                "invalid policy name '{name}' (use letters, digits, '_' and '-')"
            ));
        }
        if let Some(s) = self
            .read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
        {
            return Ok(s.clone());
        }
        let mut found = None;
        for dir in &self.dirs {
            let path = dir.join(format!("{name}.lua"));
            if path.is_file() {
                let text = crate::input::read_text(&path)
                    .map_err(|e| format!("cannot read policy {}: {e}", path.display()))?;
                found = Some(PolicySource {
                    chunk: path.display().to_string(),
                    text,
                });
                break;
            }
        }
        if found.is_none()
            && let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name)
        {
            found = Some(PolicySource {
                chunk: format!("{BUILT_IN_PREFIX}{name}.lua"),
                text: (*text).to_string(),
            });
        }
        let Some(src) = found else {
            let mut msg = format!("policy '{name}' not found");
            if let Some(close) =
                super::modules::closest(name, self.available().iter().map(String::as_str))
            {
                msg.push_str(&format!(" (did you mean '{close}'?)"));
            }
            let searched: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
            msg.push_str(&format!(
                "; looked in {}{}built-in policies; available: {}",
                searched.join(", "),
                if searched.is_empty() { "" } else { ", " },
                self.available().join(", ")
            ));
            return Err(msg);
        };
        let src = Arc::new(src);
        self.read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), src.clone());
        Ok(src)
    }
}

/// Policies compiled in one Lua state, by name.
#[derive(Default)]
struct Compiled(Mutex<HashMap<String, Function>>);

/// Policy `name` as a function of `lua`: compiled (in its own sandbox environment) the
/// first time this state asks for it. The chunk must return a function.
pub fn load(lua: &Lua, policies: &Policies, name: &str) -> Result<Function, PlaybookError> {
    if lua.app_data_ref::<Compiled>().is_none() {
        lua.set_app_data(Compiled::default());
    }
    let cached = lua.app_data_ref::<Compiled>().and_then(|c| {
        c.0.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    });
    if let Some(f) = cached {
        return Ok(f);
    }
    let src = policies
        .find(name)
        .map_err(|m| PlaybookError::new(ErrorKind::Invalid, None, m))?;
    sandbox::remember_chunk(lua, &src.chunk);
    sandbox::reset_budget(lua);
    let env = sandbox::new_env(lua).map_err(|e| PlaybookError::from_lua(lua, e))?;
    let ret: Value = lua
        .load(src.text.as_str())
        .set_name(format!("@{}", src.chunk))
        .set_mode(ChunkMode::Text)
        .set_environment(env)
        .call(())
        .map_err(|e| PlaybookError::from_lua(lua, e))?;
    let Value::Function(f) = ret else {
        return Err(PlaybookError::new(
            ErrorKind::Invalid,
            Some(SourcePos {
                file: src.chunk.clone(),
                line: 0,
            }),
            format!(
                "policy '{name}' must return a function(gpu, ctx), got {}",
                ret.type_name()
            ),
        ));
    };
    if let Some(c) = lua.app_data_ref::<Compiled>() {
        c.0.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), f.clone());
    }
    Ok(f)
}

/// The `policy(name)` function playbooks call.
pub fn loader(lua: &Lua, policies: Arc<Policies>) -> mlua::Result<Function> {
    lua.create_function(move |lua, name: Value| {
        let Value::String(name) = name else {
            return Err(PlaybookError::new(
                ErrorKind::Runtime,
                sandbox::caller_pos(lua),
                format!("policy expects a name string, got {}", name.type_name()),
            )
            .into());
        };
        let name = name.to_str()?.to_string();
        load(lua, &policies, &name).map_err(|mut e| {
            if e.pos.is_none() {
                e.pos = sandbox::caller_pos(lua);
            }
            e.into()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_policies_are_found_and_a_local_file_wins() {
        let p = Policies::new(Vec::new());
        let s = p.find("balanced").unwrap();
        assert_eq!(s.chunk, "<built-in>/policies/balanced.lua");
        let dir = std::env::temp_dir().join(format!("mf-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("balanced.lua"), "return function() return nil end").unwrap();
        let p = Policies::new(vec![dir.clone()]);
        assert!(
            p.find("balanced")
                .unwrap()
                .chunk
                .starts_with(dir.to_str().unwrap())
        );
        let e = p.find("balancd").unwrap_err();
        assert!(e.contains("did you mean 'balanced'?"), "{e}");
        assert!(p.find("../etc/passwd").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
