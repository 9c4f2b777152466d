//! Playbook data model (`Play`, `Task`, `Action`, `Cond`, `FnRef`, `SourcePos`) plus
//! Ansible's tag selection. Batches and the failure budget are the fleet's
//! (`crate::fleet::executor`).

use std::fmt;
use std::time::Duration;

use mlua::{FromLuaMulti, Function, IntoLuaMulti, Lua};
use serde_json::Value;

use super::error::{ErrorKind, PlaybookError};
use super::modules::Module;
use super::sandbox;
use crate::fleet::Serial;

/// A position in a Lua source file. `line == 0` means "somewhere in this file".
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct SourcePos {
    pub file: String,
    pub line: u32,
}

impl fmt::Display for SourcePos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.file)
        } else {
            write!(f, "{}:{}", self.file, self.line)
        }
    }
}

/// One play: a host pattern and an ordered task list.
#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// Host pattern (a Lua list of patterns is joined with `,`).
    pub hosts: String,
    /// Batch sizes; empty = all hosts in one batch. The last entry repeats.
    pub serial: Vec<Serial>,
    pub max_fail_percentage: Option<f64>,
    /// A failure of any host stops the play for every host once the task ends, and the
    /// run (Ansible's `any_errors_fatal`).
    pub any_errors_fatal: bool,
    pub vars: serde_json::Map<String, Value>,
    pub tasks: Vec<Task>,
    pub pos: SourcePos,
}

/// One task of a play.
#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub action: Action,
    pub when: Option<Cond>,
    pub tags: Vec<String>,
    /// Extra attempts after a failure (default 0).
    pub retries: u32,
    /// Pause between attempts (default 5 s, Ansible's default).
    pub delay: Duration,
    /// `register = "name"`: the result is the host's variable `name` for later tasks
    /// (`{ changed, failed, skipped, msg }`), as Ansible's `register`.
    pub register: Option<String>,
    /// `check_mode = true`: this task only says what it would change, as in a `--check`
    /// run (Ansible's task-level `check_mode`).
    pub check_mode: bool,
    pub pos: SourcePos,
}

impl Task {
    /// Whether this task runs for `--tags only` / `--skip-tags skip` (see [`tags_selected`]).
    pub fn selected(&self, only: &[String], skip: &[String]) -> bool {
        tags_selected(&self.tags, only, skip)
    }
}

/// Ansible tag selection (`Taggable.evaluate_tags`): `only` empty means `all`; `always` runs
/// unless explicitly skipped (or `all` is skipped without `always` being kept); `never` runs
/// only when one of its tags is requested; `tagged`/`untagged`/`all` selectors.
pub fn tags_selected(task_tags: &[String], only: &[String], skip: &[String]) -> bool {
    let has = |set: &[String], t: &str| set.iter().any(|s| s == t);
    let untagged = task_tags.is_empty();
    let tags: Vec<&str> = if untagged {
        vec!["untagged"]
    } else {
        task_tags.iter().map(String::as_str).collect()
    };
    let tag_in = |set: &[String]| tags.iter().any(|t| has(set, t));
    let always = tags.contains(&"always");
    let never = tags.contains(&"never");
    let default_all = ["all".to_string()];
    let only = if only.is_empty() {
        &default_all[..]
    } else {
        only
    };

    let mut run = always
        || (has(only, "all") && !never)
        || tag_in(only)
        || (has(only, "tagged") && !untagged && !never);
    if run && !skip.is_empty() {
        if has(skip, "all") {
            if !always || has(skip, "always") {
                run = false;
            }
        } else if tag_in(skip) || (has(skip, "tagged") && !untagged) {
            run = false;
        }
    }
    run
}

#[derive(Debug, Clone)]
pub enum Action {
    /// A module call, e.g. `mig.apply{ layout = {...} }`, its arguments checked and typed
    /// when the playbook loaded.
    Module(Module),
    /// `run = function(host) ... end`.
    Function(FnRef),
}

impl Action {
    pub fn module_name(&self) -> Option<&'static str> {
        match self {
            Action::Module(m) => Some(m.name().as_str()),
            Action::Function(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Cond {
    Bool(bool),
    Function(FnRef),
}

/// A Lua function of the host's Lua state (a registry-backed handle), with the position
/// where it was defined.
#[derive(Clone)]
pub struct FnRef {
    func: Function,
    /// `file:line` where the function is defined.
    pub pos: SourcePos,
}

impl fmt::Debug for FnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FnRef(function at {})", self.pos)
    }
}

impl FnRef {
    /// Wraps a function; the position comes from Lua's debug info (`linedefined`).
    pub fn new(func: Function) -> Self {
        let info = func.info();
        let file = info
            .source
            .as_deref()
            .map(|s| s.strip_prefix(['@', '=']).unwrap_or(s).to_string())
            .unwrap_or_else(|| "?".into());
        let line = info
            .line_defined
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(0);
        FnRef {
            func,
            pos: SourcePos { file, line },
        }
    }

    /// The underlying mlua function.
    pub fn function(&self) -> &Function {
        &self.func
    }

    /// Calls the function under a fresh instruction / wall-clock budget. Errors carry the
    /// position Lua reports (or, failing that, where the function is defined).
    pub fn call<A: IntoLuaMulti, R: FromLuaMulti>(
        &self,
        lua: &Lua,
        args: A,
    ) -> Result<R, PlaybookError> {
        sandbox::reset_budget(lua);
        self.func.call::<R>(args).map_err(|e| {
            let mut err = PlaybookError::from_lua(lua, e);
            if err.pos.is_none() {
                err.pos = Some(self.pos.clone());
            }
            if err.kind == ErrorKind::Conversion {
                err.message = format!("function result: {}", err.message);
            }
            err
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn tag_selection() {
        // Default: everything except `never`.
        assert!(tags_selected(&[], &[], &[]));
        assert!(tags_selected(&s(&["mig"]), &[], &[]));
        assert!(!tags_selected(&s(&["never", "wipe"]), &[], &[]));
        // --tags mig
        assert!(tags_selected(&s(&["mig"]), &s(&["mig"]), &[]));
        assert!(!tags_selected(&s(&["drain"]), &s(&["mig"]), &[]));
        assert!(tags_selected(&s(&["always"]), &s(&["mig"]), &[]));
        assert!(tags_selected(&s(&["never", "wipe"]), &s(&["wipe"]), &[]));
        assert!(!tags_selected(&[], &s(&["mig"]), &[]));
        assert!(tags_selected(&[], &s(&["untagged"]), &[]));
        assert!(tags_selected(&s(&["x"]), &s(&["tagged"]), &[]));
        // --skip-tags
        assert!(!tags_selected(&s(&["mig"]), &[], &s(&["mig"])));
        assert!(tags_selected(&s(&["always"]), &[], &s(&["all"])));
        assert!(!tags_selected(&s(&["always"]), &[], &s(&["always"])));
        assert!(!tags_selected(&s(&["x"]), &[], &s(&["tagged"])));
    }
}
