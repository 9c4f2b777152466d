//! The MIG helpers Lua gets besides the modules: `mig.layouts(model, opts)`,
//! `mig.pack(model, demand)` and `mig.pack_demand(gpus, demand)`, for playbooks and
//! policies alike. Errors point at the Lua
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
    mig.raw_set(
        "pack_demand",
        lua.create_function(|lua, (gpus, demand): (mlua::Table, mlua::Value)| {
            sandbox::check_budget(lua)?;
            let gpus = gpus_of(&gpus)?;
            let demand = super::convert::from_lua_value(demand)
                .map_err(|e| positioned(lua, format!("mig.pack_demand: demand: {e}")))?;
            // A policy asks once per GPU with the same host and demand: the host's plan
            // is computed once and kept until the question changes.
            let key = json!([gpus, demand]).to_string();
            let known = lua
                .app_data_ref::<LastPack>()
                .filter(|l| l.key == key)
                .map(|l| l.out.clone());
            let out = match known {
                Some(out) => out,
                None => {
                    let out = pack_demand(&gpus, &demand)
                        .map_err(|e| positioned(lua, format!("mig.pack_demand: {e}")))?;
                    lua.set_app_data(LastPack {
                        key,
                        out: out.clone(),
                    });
                    out
                }
            };
            // Keyed by GPU index as a number, as `gpu.index` reads.
            let t = lua.create_table()?;
            for (i, layout) in out {
                t.raw_set(i, to_lua_value(lua, &layout)?)?;
            }
            Ok(t)
        })?,
    )?;
    sandbox::add_global(lua, "mig", mig)
}

/// The last `mig.pack_demand` question (its arguments, serialized) and answer.
struct LastPack {
    key: String,
    out: Vec<(u64, Value)>,
}

/// What `mig.pack_demand` reads of each GPU view: index, model, mig_enabled and the
/// instances' profile, start and busy (the rest of a view, such as its sparse
/// `profile_by_slices`, is not looked at).
fn gpus_of(gpus: &mlua::Table) -> mlua::Result<Value> {
    let mut out = Vec::new();
    for g in gpus.sequence_values::<mlua::Table>() {
        let g = g?;
        let mut instances = Vec::new();
        if let Some(list) = g.get::<Option<mlua::Table>>("instances")? {
            for i in list.sequence_values::<mlua::Table>() {
                let i = i?;
                instances.push(json!({
                    "profile": i.get::<Option<String>>("profile")?,
                    "start": i.get::<Option<u64>>("start")?,
                    "busy": i.get::<Option<bool>>("busy")?.unwrap_or(false),
                }));
            }
        }
        out.push(json!({
            "index": g.get::<Option<u64>>("index")?,
            "model": g.get::<Option<String>>("model")?,
            "mig_enabled": g.get::<Option<bool>>("mig_enabled")?.unwrap_or(false),
            "instances": instances,
        }));
    }
    Ok(Value::Array(out))
}

/// `mig.pack_demand(gpus, demand)`: `gpus` as policies see them (`ctx.gpus`), `demand`
/// as `ctx.demand` (`profiles`: profile → instances; `keep`: GPU index → starts that
/// must stay). Returns, by GPU index, the layout serving it (MIG-enabled GPUs of a known
/// model only), as `{profile, start}` lists.
fn pack_demand(gpus: &Value, demand: &Value) -> Result<Vec<(u64, Value)>, String> {
    use migfleet_mig::demand::{Ask, GpuNow, pack};
    let list: Vec<&Value> = match gpus {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return Err("gpus must be a list of GPUs (ctx.gpus)".into()),
    };
    let keep = &demand["keep"];
    let mut now = Vec::new();
    let mut index = Vec::new();
    for g in list {
        let (Some(i), Some(name)) = (g["index"].as_u64(), g["model"].as_str()) else {
            continue;
        };
        if g["mig_enabled"] != Value::Bool(true) {
            continue;
        }
        let Ok(model) = find_model(name) else {
            continue;
        };
        let kept: Vec<u64> = keep[i.to_string()]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let mut instances = Vec::new();
        for inst in g["instances"].as_array().into_iter().flatten() {
            let (Some(p), Some(start)) = (inst["profile"].as_str(), inst["start"].as_u64()) else {
                return Err(format!("GPU {i}: an instance without profile and start"));
            };
            let p = model.resolve(p).map_err(|e| format!("GPU {i}: {e}"))?.gi;
            let fixed = inst["busy"] == Value::Bool(true) || kept.contains(&start);
            instances.push((p, start as u8, fixed));
        }
        now.push(GpuNow { model, instances });
        index.push(i);
    }
    let asks: Vec<Ask> = match &demand["profiles"] {
        Value::Object(m) => m
            .iter()
            .map(|(p, n)| {
                Ok(Ask {
                    profile: p.clone(),
                    count: n
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| format!("demand.profiles.{p} must be a count"))?,
                    eligible: vec![true; now.len()],
                })
            })
            .collect::<Result<_, String>>()?,
        Value::Null => Vec::new(),
        _ => return Err("demand.profiles must be a table of profile = count".into()),
    };
    let packed = pack(&now, &asks);
    let mut out = Vec::new();
    for ((i, g), layout) in index.iter().zip(&now).zip(&packed.layouts) {
        let l: Vec<Value> = layout
            .iter()
            .map(|(p, s)| json!({"profile": g.model.profile(*p).name, "start": s}))
            .collect();
        out.push((*i, Value::Array(l)));
    }
    Ok(out)
}
