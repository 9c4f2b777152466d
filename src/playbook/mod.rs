//! Lua playbooks: loading them ([`loader`]) into sandboxed Lua states ([`sandbox`]), the
//! data model ([`play`]), the modules tasks call ([`modules`]), the host as Lua sees it
//! ([`host_view`]), the MIG helpers ([`api`]), named policies ([`policy`]), layouts as
//! playbooks write them ([`layout`]), one host's task loop ([`host`]) and the run over
//! the fleet ([`run`]).

pub mod api;
pub mod convert;
pub mod error;
pub mod host;
pub mod host_view;
pub mod layout;
pub mod loader;
pub mod modules;
pub mod offload;
pub mod play;
pub mod policy;
pub mod run;
pub mod sandbox;

pub use convert::{from_lua_value, to_lua_value};
pub use error::{ErrorKind, PlaybookError};
pub use loader::{PlaybookSource, Shared, load_plays, new_state};
pub use play::{Action, Cond, FnRef, Play, SourcePos, Task, tags_selected};
pub use sandbox::{Limits, LuaError, new_lua};
