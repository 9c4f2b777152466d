//! The playbook layer's error: what kind of failure, where (`file:line`), the message,
//! and Lua's traceback; and the mapping of mlua errors (which carry Lua's `file:line:`
//! prefix in their text) to it.

use std::fmt;

use super::play::SourcePos;
use super::sandbox;

/// What went wrong, for callers that react differently (e.g. budget vs. task failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Reading a file failed.
    Io,
    /// Lua syntax error.
    Syntax,
    /// The playbook is well-formed Lua but not a valid playbook (unknown key, wrong type).
    Invalid,
    /// A Lua runtime error (including `error(...)` raised by the script).
    Runtime,
    /// The instruction budget was exhausted.
    InstructionLimit,
    /// The wall-clock budget was exhausted.
    TimeLimit,
    /// The memory limit was hit.
    MemoryLimit,
    /// A Lua value could not be converted (to JSON or to the requested Rust type).
    Conversion,
}

/// An error with an optional `file:line` position.
#[derive(Debug, Clone, thiserror::Error)]
pub struct PlaybookError {
    pub kind: ErrorKind,
    /// Where the error happened, when known (line 0 = whole file).
    pub pos: Option<SourcePos>,
    /// The message without the position prefix and without the traceback.
    pub message: String,
    /// Lua stack traceback, when Lua produced one.
    pub traceback: Option<String>,
}

impl fmt::Display for PlaybookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl PlaybookError {
    pub fn new(kind: ErrorKind, pos: Option<SourcePos>, message: impl Into<String>) -> Self {
        PlaybookError {
            kind,
            pos,
            message: message.into(),
            traceback: None,
        }
    }

    /// A validation error at `pos`.
    pub fn invalid(pos: &SourcePos, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, Some(pos.clone()), message)
    }

    /// `file:line` as text, or `""`.
    pub fn location(&self) -> String {
        self.pos
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    /// Maps an mlua error, extracting the position Lua reports (`file:line: msg`), the
    /// traceback, and the budget/memory kinds. Calling a name that does not exist
    /// (`dran{...}`) gets the module it probably meant.
    pub fn from_lua(lua: &mlua::Lua, err: mlua::Error) -> Self {
        let mut traceback = None;
        let mut contexts = Vec::new();
        let mut cur = err;
        loop {
            match cur {
                mlua::Error::CallbackError {
                    traceback: tb,
                    cause,
                } => {
                    traceback.get_or_insert(tb);
                    cur = (*cause).clone();
                }
                mlua::Error::WithContext { context, cause } => {
                    contexts.push(context);
                    cur = (*cause).clone();
                }
                _ => break,
            }
        }
        let mut out = match cur {
            mlua::Error::SyntaxError { message, .. } => {
                Self::positioned(lua, ErrorKind::Syntax, &message)
            }
            mlua::Error::RuntimeError(message) => {
                Self::positioned(lua, ErrorKind::Runtime, &message)
            }
            mlua::Error::MemoryError(message) => {
                let limit = sandbox::limits(lua)
                    .map(|l| sandbox::fmt_bytes(l.memory_bytes))
                    .unwrap_or_else(|| "?".into());
                Self::new(
                    ErrorKind::MemoryLimit,
                    None,
                    format!("policy exceeded its memory limit ({limit}): {message}"),
                )
            }
            mlua::Error::ExternalError(ref e) => {
                if let Some(l) = e.downcast_ref::<sandbox::LimitExceeded>() {
                    let kind = match l.kind {
                        sandbox::LimitKind::Instructions => ErrorKind::InstructionLimit,
                        sandbox::LimitKind::Wall => ErrorKind::TimeLimit,
                    };
                    Self::new(kind, l.pos.clone(), l.message.clone())
                } else if let Some(p) = e.downcast_ref::<PlaybookError>() {
                    p.clone()
                } else {
                    Self::positioned(lua, ErrorKind::Runtime, &e.to_string())
                }
            }
            mlua::Error::FromLuaConversionError { .. } => {
                Self::new(ErrorKind::Conversion, None, cur.to_string())
            }
            other => Self::positioned(lua, ErrorKind::Runtime, &other.to_string()),
        };
        if !contexts.is_empty() {
            contexts.reverse();
            out.message = format!("{}: {}", contexts.join(": "), out.message);
        }
        if out.traceback.is_none() {
            out.traceback = traceback;
        }
        if let Some(hint) = unknown_call_hint(&out.message) {
            out.message.push_str(&hint);
        }
        out
    }

    /// Splits `file:line: message\nstack traceback:...` into its parts.
    fn positioned(lua: &mlua::Lua, kind: ErrorKind, raw: &str) -> Self {
        let (head, tb) = match raw.find("\nstack traceback:") {
            Some(i) => (&raw[..i], Some(raw[i + 1..].to_string())),
            None => (raw, None),
        };
        let (pos, message) = split_pos(head);
        let pos = pos.map(|p| expand_short_src(lua, p));
        PlaybookError {
            kind,
            pos,
            message: message.to_string(),
            traceback: tb,
        }
    }
}

impl From<PlaybookError> for mlua::Error {
    fn from(e: PlaybookError) -> Self {
        mlua::Error::external(e)
    }
}

/// For Lua's "attempt to call a nil value (global 'dran')": the module or helper meant.
fn unknown_call_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("attempt to call a nil value (")?;
    let (kind, name) = rest.split_once(" '")?;
    let name = name.strip_suffix("')")?;
    let known: Vec<String> = match kind {
        "global" => super::modules::ModuleName::ALL
            .iter()
            .filter(|m| !m.as_str().contains('.'))
            .map(|m| m.as_str().to_string())
            .chain(["policy", "task", "play"].map(String::from))
            .collect(),
        "field" => super::modules::ModuleName::ALL
            .iter()
            .filter_map(|m| m.as_str().split_once('.').map(|(_, s)| s.to_string()))
            .chain(["layouts", "pack"].map(String::from))
            .collect(),
        _ => return None,
    };
    let close = crate::playbook::modules::closest(name, known.iter().map(String::as_str))?;
    Some(format!("; did you mean `{close}`?"))
}

/// Parses a leading `file:LINE: ` (Lua's error-position format).
pub(crate) fn split_pos(msg: &str) -> (Option<SourcePos>, &str) {
    let first_line_end = msg.find('\n').unwrap_or(msg.len());
    let first = &msg[..first_line_end];
    for (i, _) in first.match_indices(':') {
        if i == 0 {
            continue;
        }
        let rest = &first[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || !rest[digits..].starts_with(':') {
            continue;
        }
        let Ok(line) = rest[..digits].parse::<u32>() else {
            continue;
        };
        let after = &msg[i + 1 + digits + 1..];
        let message = after.strip_prefix(' ').unwrap_or(after);
        return (
            Some(SourcePos {
                file: first[..i].to_string(),
                line,
            }),
            message,
        );
    }
    (None, msg)
}

/// Lua truncates long chunk names to `...tail`; map them back to a known full path.
fn expand_short_src(lua: &mlua::Lua, mut pos: SourcePos) -> SourcePos {
    if let Some(tail) = pos.file.strip_prefix("...")
        && let Some(known) = lua.app_data_ref::<sandbox::KnownChunks>()
    {
        let names = known
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(full) = names.iter().find(|n| n.ends_with(tail)) {
            pos.file = full.clone();
        }
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_pos_parses_lua_format() {
        let (p, m) = split_pos("/tmp/a.lua:12: boom: x:1: y");
        let p = p.unwrap();
        assert_eq!(p.file, "/tmp/a.lua");
        assert_eq!(p.line, 12);
        assert_eq!(m, "boom: x:1: y");
        let (p, m) = split_pos("no position here");
        assert!(p.is_none());
        assert_eq!(m, "no position here");
        let (p, _) = split_pos("[string \"x\"]:3: bad");
        assert_eq!(p.unwrap().file, "[string \"x\"]");
    }

    #[test]
    fn display_includes_position() {
        let e = PlaybookError::invalid(
            &SourcePos {
                file: "pb.lua".into(),
                line: 7,
            },
            "unknown task key 'nmae'",
        );
        assert_eq!(e.to_string(), "pb.lua:7: unknown task key 'nmae'");
    }
}
