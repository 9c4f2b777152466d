//! The MIG helpers Lua gets besides the modules: `mig.layouts(model, opts)` and
//! `mig.pack(model, demand)`, for playbooks and policies alike. Errors point at the Lua
//! line that called them.

use super::convert::to_lua_value;
use super::error::{ErrorKind, PlaybookError};
use super::sandbox;
use migfleet_mig::catalog::{GpuModel, find_model};
use migfleet_mig::geometry::{self, ProfileSet};
use serde_json::{Value, json};

fn positioned(lua: &mlua::Lua, message: String) -> mlua::Error {
    PlaybookError::new(ErrorKind::Runtime, sandbox::caller_pos(lua), message).into()
}

fn model(lua: &mlua::Lua, helper: &str, name: &str) -> mlua::Result<&'static GpuModel> {
    find_model(name).map_err(|e| positioned(lua, format!("{helper}: {e}")))
}

/// Installs `mig.layouts` and `mig.pack` into every environment made from now on.
pub fn install(lua: &mlua::Lua) -> mlua::Result<()> {
    let mig = lua.create_table()?;
    mig.raw_set(
        "layouts",
        lua.create_function(|lua, (name, opts): (String, Option<mlua::Table>)| {
            sandbox::check_budget(lua)?;
            let m = model(lua, "mig.layouts", &name)?;
            let flag = |key: &str| -> mlua::Result<bool> {
                match &opts {
                    None => Ok(false),
                    Some(o) => match o.raw_get::<mlua::Value>(key)? {
                        mlua::Value::Nil => Ok(false),
                        mlua::Value::Boolean(b) => Ok(b),
                        other => Err(positioned(
                            lua,
                            format!(
                                "mig.layouts: `{key}` must be true or false, got {}",
                                other.type_name()
                            ),
                        )),
                    },
                }
            };
            let set = if flag("plain")? {
                ProfileSet::Plain
            } else {
                ProfileSet::All
            };
            let list = if flag("maximal")? {
                geometry::maximal_layouts(m, set)
            } else {
                geometry::layouts(m, set)
            };
            let v: Vec<Value> = list
                .iter()
                .map(|g| {
                    Value::Array(
                        g.iter()
                            .map(|(p, s)| json!({"profile": m.profile(*p).name, "start": s}))
                            .collect(),
                    )
                })
                .collect();
            to_lua_value(lua, &Value::Array(v))
        })?,
    )?;
    mig.raw_set(
        "pack",
        lua.create_function(|lua, (name, demand): (String, mlua::Table)| {
            sandbox::check_budget(lua)?;
            let m = model(lua, "mig.pack", &name)?;
            let mut want = Vec::new();
            for kv in demand.pairs::<mlua::Value, mlua::Value>() {
                let (k, v) = kv?;
                let (mlua::Value::String(profile), Some(n)) = (&k, v.as_integer()) else {
                    return Err(positioned(
                        lua,
                        "mig.pack: demand is a table of profile name = count".to_string(),
                    ));
                };
                let profile = profile.to_str()?.to_string();
                let n = u32::try_from(n).map_err(|_| {
                    positioned(lua, format!("mig.pack: count of {profile} must be >= 0"))
                })?;
                let r = m
                    .resolve(&profile)
                    .map_err(|e| positioned(lua, format!("mig.pack: {e}")))?;
                want.push((r.gi, n));
            }
            want.sort();
            let (g, _) = migfleet_mig::pack::pack(m, &want, ProfileSet::All);
            let names: Vec<Value> = g
                .iter()
                .map(|(p, _)| Value::String(m.profile(*p).name.to_string()))
                .collect();
            to_lua_value(lua, &Value::Array(names))
        })?,
    )?;
    sandbox::add_global(lua, "mig", mig)
}
