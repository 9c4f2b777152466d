//! Runs one play on one host: a Lua state of its own (own globals), the host's facts as
//! Lua values, each task's `when`, then its module carried out through the host's agent
//! (or its Lua function called). Produces the host's counters and report lines; the fleet
//! executor runs this for many hosts at once.

use super::layout_arg;
use super::{
    Action, Cond, FnRef, Limits, PlaybookError, Task, from_lua_value, load_playbook, new_lua,
    to_lua_value,
};
use crate::fleet::session::Session;
use crate::fleet::{Event, Outcome, Status};
use crate::inventory::Connection;
use crate::report::recap::HostStats;
use crate::transport::agent::CallError;
use migfleet_mig::catalog::find_model;
use migfleet_mig::geometry::{self, ProfileSet};
use migfleet_proto::{self as proto, Facts, GpuLayout, Op, Reply};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// What every host's run shares.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub playbook: PathBuf,
    pub policy_dir: PathBuf,
    pub extra_vars: Map<String, Value>,
    pub check: bool,
    pub diff: bool,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub limits: Limits,
}

/// One task's result on one host.
struct TaskResult {
    status: Status,
    message: String,
    /// Lines for `--check` plans and `--diff` (printed after the run).
    report: Vec<String>,
}

impl TaskResult {
    fn ok(message: impl Into<String>) -> TaskResult {
        TaskResult {
            status: Status::Ok,
            message: message.into(),
            report: Vec::new(),
        }
    }
    fn changed(message: impl Into<String>) -> TaskResult {
        TaskResult {
            status: Status::Changed,
            message: message.into(),
            report: Vec::new(),
        }
    }
    fn failed(message: impl Into<String>) -> TaskResult {
        TaskResult {
            status: Status::Failed,
            message: message.into(),
            report: Vec::new(),
        }
    }
}

/// Runs play number `play` of the playbook on one host.
pub async fn run_play_on_host(
    play: usize,
    mut session: Session,
    conn: Connection,
    host_vars: Map<String, Value>,
    opts: Arc<RunOptions>,
    events: UnboundedSender<Event>,
) -> Outcome {
    let host = conn.host.clone();
    let say = |m: String| {
        let host = host.clone();
        let _ = events.send(match m.strip_prefix('\t') {
            Some(detail) => Event::HostDetail {
                host,
                message: detail.to_string(),
            },
            None => Event::HostProgress { host, message: m },
        });
    };
    let lua = match new_lua(&opts.limits).and_then(|lua| install_helpers(&lua).map(|_| lua)) {
        Ok(l) => l,
        Err(e) => return Outcome::failed(format!("cannot set up Lua: {e}")),
    };
    let plays = match load_playbook(&lua, &opts.playbook, &opts.extra_vars, &opts.policy_dir) {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e.to_string()),
    };
    let Some(play) = plays.get(play) else {
        return Outcome::failed("the playbook changed while running");
    };
    let mut vars = host_vars;
    for (k, v) in &play.vars {
        vars.insert(k.clone(), v.clone());
    }
    for (k, v) in &opts.extra_vars {
        vars.insert(k.clone(), v.clone());
    }

    let mut stats = HostStats::default();
    let mut report: Vec<String> = Vec::new();
    let mut last = String::new();
    let mut failed: Option<String> = None;
    for task in &play.tasks {
        if !task.selected(&opts.tags, &opts.skip_tags) {
            continue;
        }
        say(task.name.clone());
        let facts = match call(&mut session, Op::Facts, &say).await {
            Ok(Reply::Facts(f)) => f,
            Ok(_) => return unexpected(&host),
            Err(e) => return lost_or_failed(e, &mut stats),
        };
        let ctx = context(&host, &vars, &facts);
        if let Some(cond) = &task.when {
            let run = match cond {
                Cond::Bool(b) => Ok(*b),
                Cond::Function(f) => call_lua::<bool>(&lua, f, &ctx),
            };
            match run {
                Ok(true) => {}
                Ok(false) => {
                    stats.add(Status::Skipped);
                    continue;
                }
                Err(e) => {
                    stats.add(Status::Failed);
                    failed = Some(format!("task `{}`: {e}", task.name));
                    break;
                }
            }
        }
        let mut attempt = 0;
        let result = loop {
            let r = run_task(&lua, task, &mut session, &conn, &facts, &ctx, &opts, &say).await;
            match r {
                Err(e) => return lost_or_failed(e, &mut stats),
                Ok(r) if r.status == Status::Failed && attempt < task.retries => {
                    attempt += 1;
                    say(format!(
                        "{}: retrying ({attempt}/{}) after: {}",
                        task.name, task.retries, r.message
                    ));
                    tokio::time::sleep(task.delay).await;
                }
                Ok(r) => break r,
            }
        };
        stats.add(result.status);
        for line in result.report {
            report.push(format!("{host}: {line}"));
        }
        if result.status == Status::Failed {
            failed = Some(format!(
                "task `{}` ({}): {}",
                task.name, task.pos, result.message
            ));
            break;
        }
        last = format!("{}: {}", task.name, result.message);
    }
    let status = if failed.is_some() {
        Status::Failed
    } else if stats.changed > 0 {
        Status::Changed
    } else {
        Status::Ok
    };
    Outcome {
        status,
        message: failed.unwrap_or(last),
        data: Some(json!({ "stats": stats, "report": report })),
    }
}

fn unexpected(host: &str) -> Outcome {
    Outcome::failed(format!("{host}: unexpected reply from the agent"))
}

/// The agent went away (connection lost: unreachable) or refused (failed).
fn lost_or_failed(e: CallError, stats: &mut HostStats) -> Outcome {
    match e {
        CallError::Lost(m) => {
            stats.add(Status::Unreachable);
            let mut o = Outcome::unreachable(format!("lost the host: {m}"));
            o.data = Some(json!({ "stats": stats }));
            o
        }
        other => {
            stats.add(Status::Failed);
            let mut o = Outcome::failed(other.to_string());
            o.data = Some(json!({ "stats": stats }));
            o
        }
    }
}

async fn call(
    session: &mut Session,
    op: Op,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<Reply, CallError> {
    session
        .client
        .call(op, |e| match e {
            // NVML steps go out as details: `say` marks them with a leading tab.
            proto::Event::Nvml { gpu, step, of, op } => {
                say(format!("\tGPU {gpu}: {step}/{of} {op}"))
            }
            proto::Event::Progress { message } => say(message),
        })
        .await
}

fn call_lua<R: mlua::FromLuaMulti>(
    lua: &mlua::Lua,
    f: &FnRef,
    ctx: &Value,
) -> Result<R, PlaybookError> {
    let arg = to_lua_value(lua, ctx).map_err(|e| PlaybookError::from_lua(lua, e))?;
    f.call::<_, R>(lua, arg)
}

/// The host as Lua sees it: `{host, vars, gpus = {...}}`.
fn context(host: &str, vars: &Map<String, Value>, facts: &Facts) -> Value {
    let gpus: Vec<Value> = facts.gpus.iter().map(gpu_value).collect();
    json!({ "host": host, "vars": vars, "gpus": gpus })
}

fn gpu_value(g: &proto::GpuFacts) -> Value {
    let (enabled, pending, instances, profiles) = match &g.mig {
        None => (false, false, Vec::new(), Vec::new()),
        Some(m) => (
            m.current,
            m.pending,
            m.instances.clone(),
            m.profiles.clone(),
        ),
    };
    // Plain profiles are NVML's 1/2/3/4/7-slice constants (index 0..=4).
    let mut by_slices = vec![Value::Null; 8];
    for p in profiles.iter().filter(|p| p.nvml <= 4) {
        if let Some(slot) = by_slices.get_mut(usize::from(p.compute_slices).saturating_sub(1)) {
            *slot = Value::String(p.name.clone());
        }
    }
    while by_slices.last().is_some_and(Value::is_null) {
        by_slices.pop();
    }
    json!({
        "index": g.index,
        "name": g.name,
        "model": g.model,
        "uuid": g.uuid,
        "memory_mib": g.memory_mib,
        "mig_capable": g.mig.is_some(),
        "mig_enabled": enabled,
        "mig_pending": pending,
        "instances": instances.iter().map(|i| {
            let pids: Vec<u32> = i.cis.iter().flat_map(|c| c.processes.iter().map(|p| p.pid)).collect();
            json!({"gi_id": i.gi_id, "profile": i.profile, "start": i.start, "busy": !pids.is_empty(), "pids": pids})
        }).collect::<Vec<_>>(),
        "profiles": profiles.iter().map(|p| json!({
            "name": p.name, "plain": p.nvml <= 4, "compute_slices": p.compute_slices,
            "memory_slices": p.memory_slices, "memory_mib": p.memory_mib,
            "max_instances": p.max_instances, "starts": p.starts,
        })).collect::<Vec<_>>(),
        "profile_by_slices": by_slices,
        "pids": g.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn run_task(
    lua: &mlua::Lua,
    task: &Task,
    session: &mut Session,
    conn: &Connection,
    facts: &Facts,
    ctx: &Value,
    opts: &RunOptions,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<TaskResult, CallError> {
    let (name, args, functions) = match &task.action {
        Action::Function(f) => {
            return Ok(match call_lua::<mlua::Value>(lua, f, ctx) {
                Err(e) => TaskResult::failed(e.to_string()),
                Ok(v) => {
                    let v = from_lua_value(v).unwrap_or(Value::Null);
                    let msg = v
                        .get("msg")
                        .and_then(Value::as_str)
                        .unwrap_or("done")
                        .to_string();
                    if v.get("failed").and_then(Value::as_bool) == Some(true) {
                        TaskResult::failed(msg)
                    } else if v.get("changed").and_then(Value::as_bool) == Some(true) {
                        TaskResult::changed(msg)
                    } else {
                        TaskResult::ok(msg)
                    }
                }
            });
        }
        Action::Module {
            name,
            args,
            functions,
        } => (name.as_str(), args, functions),
    };
    let gpus_arg: Option<Vec<u32>> = args.get("gpus").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|v| v.as_u64().map(|n| n as u32))
            .collect()
    });
    match name {
        "mig.mode" => mig_mode(session, conn, facts, args, gpus_arg, opts.check, say).await,
        "mig.apply" | "mig.assert" => {
            let layouts =
                match wanted_layouts(lua, args, functions, facts, ctx, gpus_arg.as_deref(), opts) {
                    Ok(l) => l,
                    Err(e) => return Ok(TaskResult::failed(e)),
                };
            if name == "mig.assert" {
                return mig_assert(session, facts, args, layouts, say).await;
            }
            mig_apply(session, facts, layouts, args, opts, say).await
        }
        "drain" => {
            if opts.check {
                return Ok(TaskResult::ok("skipped in check mode"));
            }
            let units: Vec<String> = strings(args.get("units"));
            let op = Op::Drain {
                units,
                gpus: gpus_arg.unwrap_or_default(),
                timeout_s: args.get("timeout").and_then(Value::as_u64).unwrap_or(300),
                signal: args.get("signal").and_then(Value::as_str).map(String::from),
                systemctl: args.get("systemctl").map(|v| strings(Some(v))),
            };
            match call(session, op, say).await {
                Ok(Reply::Drain(d)) if d.stopped.is_empty() && d.signalled.is_empty() => {
                    Ok(TaskResult::ok("nothing to stop"))
                }
                Ok(Reply::Drain(d)) => Ok(TaskResult::changed(format!(
                    "stopped {} unit(s), signalled {} process(es)",
                    d.stopped.len(),
                    d.signalled.len()
                ))),
                Ok(_) => Ok(TaskResult::failed("unexpected reply")),
                Err(CallError::Agent(e)) => Ok(TaskResult::failed(e.message)),
                Err(e) => Err(e),
            }
        }
        "restore" => {
            if opts.check {
                return Ok(TaskResult::ok("skipped in check mode"));
            }
            let op = Op::Restore {
                systemctl: args.get("systemctl").map(|v| strings(Some(v))),
            };
            match call(session, op, say).await {
                Ok(Reply::Restore { started }) if started.is_empty() => {
                    Ok(TaskResult::ok("nothing to start"))
                }
                Ok(Reply::Restore { started }) => Ok(TaskResult::changed(format!(
                    "started {}",
                    started.join(", ")
                ))),
                Ok(_) => Ok(TaskResult::failed("unexpected reply")),
                Err(CallError::Agent(e)) => Ok(TaskResult::failed(e.message)),
                Err(e) => Err(e),
            }
        }
        "command" => {
            let argv = strings(args.get("argv"));
            if argv.is_empty() {
                return Ok(TaskResult::failed(
                    "command needs argv = { \"program\", \"arg\", ... }",
                ));
            }
            if opts.check {
                return Ok(TaskResult::ok(format!("would run {}", argv.join(" "))));
            }
            let cmd = crate::transport::RemoteCommand {
                argv: argv.clone(),
                env: Vec::new(),
                sudo: conn.become_,
            };
            match session.exec(&cmd).await {
                Ok(out) if out.status == Some(0) => Ok(TaskResult::changed(format!(
                    "{}: {}",
                    argv.join(" "),
                    String::from_utf8_lossy(&out.stdout).trim()
                ))),
                Ok(out) => Ok(TaskResult::failed(format!(
                    "{} exited {:?}: {}",
                    argv.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))),
                Err(e) => Ok(TaskResult::failed(e.to_string())),
            }
        }
        other => Ok(TaskResult::failed(format!(
            "module `{other}` is not supported yet"
        ))),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => s.split_whitespace().map(String::from).collect(),
        _ => Vec::new(),
    }
}

async fn mig_mode(
    session: &mut Session,
    conn: &Connection,
    facts: &Facts,
    args: &Value,
    gpus: Option<Vec<u32>>,
    check: bool,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<TaskResult, CallError> {
    let Some(enabled) = args.get("enabled").and_then(Value::as_bool) else {
        return Ok(TaskResult::failed("mig.mode needs enabled = true or false"));
    };
    let targets: Vec<u32> = facts
        .gpus
        .iter()
        .filter(|g| g.mig.is_some() && gpus.as_ref().is_none_or(|l| l.contains(&g.index)))
        .map(|g| g.index)
        .collect();
    let to_change: Vec<u32> = facts
        .gpus
        .iter()
        .filter(|g| targets.contains(&g.index))
        .filter(|g| {
            g.mig
                .as_ref()
                .is_some_and(|m| m.current != enabled || m.pending != enabled)
        })
        .map(|g| g.index)
        .collect();
    if to_change.is_empty() {
        return Ok(TaskResult::ok(format!(
            "MIG already {} on {} GPU(s)",
            onoff(enabled),
            targets.len()
        )));
    }
    if check {
        let mut r = TaskResult::changed(format!(
            "would turn MIG {} on GPU(s) {:?}",
            onoff(enabled),
            to_change
        ));
        r.report.push(format!(
            "mig.mode: GPUs {to_change:?} -> MIG {}",
            onoff(enabled)
        ));
        return Ok(r);
    }
    let results = match call(
        session,
        Op::SetMigMode {
            gpus: to_change.clone(),
            enabled,
        },
        say,
    )
    .await
    {
        Ok(Reply::SetMigMode { gpus }) => gpus,
        Ok(_) => return Ok(TaskResult::failed("unexpected reply")),
        Err(CallError::Agent(e)) => return Ok(TaskResult::failed(e.message)),
        Err(e) => return Err(e),
    };
    let pending: Vec<u32> = results
        .iter()
        .filter(|r| r.needs_reset)
        .map(|r| r.index)
        .collect();
    if !pending.is_empty() {
        if args.get("reset").and_then(Value::as_bool) == Some(false) {
            return Ok(TaskResult::failed(format!(
                "MIG mode change pending on GPU(s) {pending:?}: a GPU reset is needed and reset = false"
            )));
        }
        say(format!("resetting GPU(s) {pending:?}"));
        let op = Op::ResetGpus {
            gpus: pending.clone(),
            command: conn.gpu_reset_command.clone(),
        };
        match call(session, op, say).await {
            Ok(Reply::ResetGpus { gpus }) => {
                let still: Vec<u32> = gpus
                    .iter()
                    .filter(|g| g.current != enabled)
                    .map(|g| g.index)
                    .collect();
                if !still.is_empty() {
                    return Ok(TaskResult::failed(format!(
                        "MIG mode still pending on GPU(s) {still:?} after a reset; this host needs a reboot"
                    )));
                }
            }
            Ok(_) => return Ok(TaskResult::failed("unexpected reply")),
            Err(CallError::Agent(e)) => {
                return Ok(TaskResult::failed(format!(
                    "GPU reset failed: {}",
                    e.message
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(TaskResult::changed(format!(
        "MIG {} on GPU(s) {:?}",
        onoff(enabled),
        to_change
    )))
}

fn onoff(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Each GPU's wanted layout from `layout`, `policy` or `mig_parted`; GPUs the argument
/// leaves alone are absent.
fn wanted_layouts(
    lua: &mlua::Lua,
    args: &Value,
    functions: &[(String, FnRef)],
    facts: &Facts,
    ctx: &Value,
    gpus: Option<&[u32]>,
    opts: &RunOptions,
) -> Result<Vec<GpuLayout>, String> {
    let selected =
        |g: &&proto::GpuFacts| g.mig.is_some() && gpus.is_none_or(|l| l.contains(&g.index));
    let mut out = Vec::new();
    let policy_fn = functions
        .iter()
        .find(|(k, _)| k == "policy")
        .map(|(_, f)| f.clone());
    let policy_fn = match (policy_fn, args.get("policy").and_then(Value::as_str)) {
        (Some(f), _) => Some(f),
        (None, Some(name)) => Some(named_policy(lua, name, &opts.policy_dir)?),
        (None, None) => None,
    };
    if let Some(f) = policy_fn {
        for (g, gv) in facts
            .gpus
            .iter()
            .zip(ctx["gpus"].as_array().into_iter().flatten())
        {
            if !selected(&g) {
                continue;
            }
            let gpu = to_lua_value(lua, gv).map_err(|e| e.to_string())?;
            let c = to_lua_value(lua, ctx).map_err(|e| e.to_string())?;
            let v: mlua::Value = f.call(lua, (gpu, c)).map_err(|e| e.to_string())?;
            let v = from_lua_value(v).map_err(|e| e.to_string())?;
            if let Some(instances) = layout_arg::for_gpu(&v, g.model.as_deref())
                .map_err(|e| format!("policy for GPU {}: {e}", g.index))?
            {
                out.push(GpuLayout {
                    index: g.index,
                    instances,
                });
            }
        }
        return Ok(out);
    }
    if let Some(layout) = args.get("layout") {
        for g in facts.gpus.iter().filter(selected) {
            if let Some(instances) = layout_arg::for_gpu(layout, g.model.as_deref())
                .map_err(|e| format!("layout: {e}"))?
            {
                out.push(GpuLayout {
                    index: g.index,
                    instances,
                });
            }
        }
        return Ok(out);
    }
    if let Some(mp) = args.get("mig_parted") {
        return mig_parted(mp, facts, gpus, opts);
    }
    Err("give one of layout = {...}, policy = \"name\" or a function, or mig_parted = { file = ..., config = ... }".into())
}

/// `policy = "name"`: the same loader as the playbook's `policy("name")`.
fn named_policy(lua: &mlua::Lua, name: &str, dir: &std::path::Path) -> Result<FnRef, String> {
    let loader = super::loader::policy_loader(lua, dir.to_path_buf()).map_err(|e| e.to_string())?;
    let f: mlua::Function = loader
        .call(name)
        .map_err(|e| PlaybookError::from_lua(lua, e).to_string())?;
    Ok(FnRef::new(f))
}

fn mig_parted(
    mp: &Value,
    facts: &Facts,
    gpus: Option<&[u32]>,
    opts: &RunOptions,
) -> Result<Vec<GpuLayout>, String> {
    let file = mp
        .get("file")
        .and_then(Value::as_str)
        .ok_or("mig_parted needs file = \"path\"")?;
    let path = {
        let p = PathBuf::from(file);
        if p.is_absolute() || p.exists() {
            p
        } else {
            opts.playbook.parent().map(|d| d.join(&p)).unwrap_or(p)
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let show = |errs: Vec<migfleet_mig::spec::v1::SpecError>| {
        errs.iter()
            .map(|e| format!("{}:{e}", path.display()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let config = migfleet_mig::spec::v1::parse(&text).map_err(show)?;
    let named = migfleet_mig::spec::select(&config, mp.get("config").and_then(Value::as_str))
        .map_err(|e| show(vec![e]))?;
    let host: Vec<migfleet_mig::spec::HostGpu> = facts
        .gpus
        .iter()
        .map(|g| migfleet_mig::spec::HostGpu {
            index: g.index,
            device_id: g.pci.device_id,
            vendor_id: g.pci.vendor_id,
            subsystem: Some((g.pci.subsystem_device_id, g.pci.subsystem_vendor_id)),
            model: migfleet_mig::model_by_pci(g.pci.device_id),
        })
        .collect();
    let resolved = migfleet_mig::spec::resolve(named, &host).map_err(show)?;
    let mut out = Vec::new();
    for r in resolved {
        if gpus.is_some_and(|l| !l.contains(&r.index)) {
            continue;
        }
        if let migfleet_mig::spec::GpuTarget::Enabled { layout, .. } = &r.target {
            let Some(model) = r.model.and_then(|m| find_model(m).ok()) else {
                continue;
            };
            out.push(GpuLayout {
                index: r.index,
                instances: layout
                    .iter()
                    .map(|p| proto::WantedInstance {
                        profile: model.profile(p.profile).name.to_string(),
                        start: Some(p.start),
                        cis: Some(p.cis.clone()),
                    })
                    .collect(),
            });
        }
    }
    Ok(out)
}

async fn mig_apply(
    session: &mut Session,
    facts: &Facts,
    layouts: Vec<GpuLayout>,
    args: &Value,
    opts: &RunOptions,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<TaskResult, CallError> {
    if layouts.is_empty() {
        return Ok(TaskResult::ok("no GPU to partition"));
    }
    for l in &layouts {
        let on = facts
            .gpus
            .iter()
            .find(|g| g.index == l.index)
            .and_then(|g| g.mig.as_ref())
            .is_some_and(|m| m.current);
        if !on && !opts.check {
            return Ok(TaskResult::failed(format!(
                "GPU {}: MIG mode is off; add mig.mode{{ enabled = true }} first",
                l.index
            )));
        }
    }
    let op = Op::Apply {
        gpus: layouts.clone(),
        dry_run: opts.check,
        allow_destroy_in_use: args
            .get("allow_destroy_in_use")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let results = match call(session, op, say).await {
        Ok(Reply::Apply { gpus }) => gpus,
        Ok(_) => return Ok(TaskResult::failed("unexpected reply")),
        Err(CallError::Agent(e)) => return Ok(TaskResult::failed(e.message)),
        Err(e) => return Err(e),
    };
    let changed: Vec<&proto::ApplyResult> = results.iter().filter(|r| r.changed).collect();
    let ops: usize = changed.iter().map(|r| r.ops.len()).sum();
    let mut r = if changed.is_empty() {
        TaskResult::ok(format!("{} GPU(s) already as wanted", results.len()))
    } else {
        TaskResult::changed(format!(
            "{} GPU(s) repartitioned, {ops} NVML operation(s){}",
            changed.len(),
            if opts.check { " planned" } else { "" }
        ))
    };
    for res in &results {
        if opts.diff {
            let before: Vec<String> = facts
                .gpus
                .iter()
                .find(|g| g.index == res.index)
                .and_then(|g| g.mig.as_ref())
                .map(|m| {
                    let mut v: Vec<(u8, String)> = m
                        .instances
                        .iter()
                        .map(|i| (i.start, format!("{}@{}", i.profile, i.start)))
                        .collect();
                    v.sort();
                    v.into_iter().map(|x| x.1).collect()
                })
                .unwrap_or_default();
            r.report
                .push(format!("GPU {} before: {}", res.index, or_empty(&before)));
            r.report.push(format!(
                "GPU {} after:  {}",
                res.index,
                or_empty(&res.after)
            ));
        }
        if opts.check && res.changed {
            for (i, op) in res.ops.iter().enumerate() {
                r.report
                    .push(format!("GPU {}: {:>2}. {op}", res.index, i + 1));
            }
        }
    }
    Ok(r)
}

fn or_empty(v: &[String]) -> String {
    if v.is_empty() {
        "(no instances)".into()
    } else {
        v.join(" ")
    }
}

async fn mig_assert(
    session: &mut Session,
    facts: &Facts,
    args: &Value,
    layouts: Vec<GpuLayout>,
    say: &(dyn Fn(String) + Send + Sync),
) -> Result<TaskResult, CallError> {
    if let Some(want) = args.get("enabled").and_then(Value::as_bool) {
        let wrong: Vec<u32> = facts
            .gpus
            .iter()
            .filter(|g| g.mig.as_ref().is_some_and(|m| m.current != want))
            .map(|g| g.index)
            .collect();
        if !wrong.is_empty() {
            return Ok(TaskResult::failed(format!(
                "MIG is not {} on GPU(s) {wrong:?}",
                onoff(want)
            )));
        }
    }
    if layouts.is_empty() {
        return Ok(TaskResult::ok("as asserted"));
    }
    // A dry run that plans nothing means the GPU already is as wanted.
    let op = Op::Apply {
        gpus: layouts,
        dry_run: true,
        allow_destroy_in_use: false,
    };
    match call(session, op, say).await {
        Ok(Reply::Apply { gpus }) => {
            let off: Vec<String> = gpus
                .iter()
                .filter(|g| g.changed)
                .map(|g| {
                    format!(
                        "GPU {} would need {} operation(s) to become {}",
                        g.index,
                        g.ops.len(),
                        g.after.join(" ")
                    )
                })
                .collect();
            if off.is_empty() {
                Ok(TaskResult::ok(format!("{} GPU(s) as asserted", gpus.len())))
            } else {
                Ok(TaskResult::failed(off.join("; ")))
            }
        }
        Ok(_) => Ok(TaskResult::failed("unexpected reply")),
        Err(CallError::Agent(e)) => Ok(TaskResult::failed(e.message)),
        Err(e) => Err(e),
    }
}

/// `mig.layouts`, `mig.pack` and `mig.profiles`, for policies and playbooks.
fn install_helpers(lua: &mlua::Lua) -> mlua::Result<()> {
    let mig = lua.create_table()?;
    mig.raw_set(
        "layouts",
        lua.create_function(|lua, (model, opts): (String, Option<mlua::Table>)| {
            let m = find_model(&model).map_err(|e| mlua::Error::runtime(e.to_string()))?;
            let maximal = opts
                .as_ref()
                .and_then(|o| o.get::<bool>("maximal").ok())
                .unwrap_or(false);
            let plain = opts
                .as_ref()
                .and_then(|o| o.get::<bool>("plain").ok())
                .unwrap_or(false);
            let set = if plain {
                ProfileSet::Plain
            } else {
                ProfileSet::All
            };
            let list = if maximal {
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
        lua.create_function(|lua, (model, demand): (String, mlua::Table)| {
            let m = find_model(&model).map_err(|e| mlua::Error::runtime(e.to_string()))?;
            let mut want = Vec::new();
            for kv in demand.pairs::<String, u32>() {
                let (name, n) = kv?;
                let r = m
                    .resolve(&name)
                    .map_err(|e| mlua::Error::runtime(e.to_string()))?;
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
    super::sandbox::add_global(lua, "mig", mig)
}
