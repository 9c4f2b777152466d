//! One host's part in a run: its session (one SSH connection and one agent for the whole
//! run, across plays), its own Lua state with the playbook loaded into it (hosts share
//! no Lua globals), its counters, and its task loop — `when`, the module or `run`
//! function, retries. Check mode keeps the facts as earlier tasks would have left them.

use std::sync::Arc;

use migfleet_proto::Facts;
use serde_json::{Map, Value};

use super::convert::{from_lua_value, to_lua_value};
use super::error::PlaybookError;
use super::loader::{PlaybookSource, Shared, load_plays, new_state};
use super::modules::{Lost, OperatorMark, TaskCx, closest};
use super::play::{Action, Cond, FnRef, Play};
use super::{offload, sandbox};
use crate::fleet::session::{self, Context, Opening, Session};
use crate::fleet::{Events, Status, TaskResult};
use crate::inventory::Connection;
use crate::report::recap::HostStats;

/// What every host of a run shares.
pub struct RunWorld {
    pub source: PlaybookSource,
    pub shared: Shared,
    pub limits: sandbox::Limits,
    pub check: bool,
    pub context: Arc<Context>,
    pub events: Events,
    /// Set by the first Ctrl-C: tasks in flight finish, nothing new starts.
    pub interrupted: Arc<std::sync::atomic::AtomicBool>,
    /// The Kubernetes client for `k8s.*` tasks.
    pub k8s: crate::k8s::K8s,
}

impl RunWorld {
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Why a host stopped taking part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Down {
    pub status: Status,
    pub message: String,
    pub hints: Vec<String>,
}

pub struct HostRun {
    pub name: String,
    conn: Arc<Connection>,
    inventory_vars: Arc<Map<String, Value>>,
    session: Option<Session>,
    lua: Option<(mlua::Lua, Vec<Play>)>,
    /// Check mode: the facts as the tasks so far would have left them.
    projected: Option<Facts>,
    /// GPUs the host was rebooted for (pending MIG mode) in this run.
    rebooted_for_pending: Vec<u32>,
    /// A `drain` ran and no `restore` since.
    pub drained: bool,
    /// The host's node is `pending` under the GPU Operator protocol.
    pub operator: Option<OperatorMark>,
    /// Results of tasks with `register`, by name: variables for the tasks after them.
    registered: Map<String, Value>,
    /// The host's share of the pending pods' demand, from the last `k8s.demand`.
    pub demand: Option<Result<Value, String>>,
    pub stats: HostStats,
    /// Set once the host failed or became unreachable: it takes no further part.
    pub down: Option<Down>,
}

impl HostRun {
    pub fn new(
        name: &str,
        conn: Arc<Connection>,
        inventory_vars: Arc<Map<String, Value>>,
    ) -> HostRun {
        HostRun {
            name: name.to_string(),
            conn,
            inventory_vars,
            session: None,
            lua: None,
            projected: None,
            rebooted_for_pending: Vec::new(),
            drained: false,
            operator: None,
            registered: Map::new(),
            demand: None,
            stats: HostStats::default(),
            down: None,
        }
    }

    /// A new run of the same host with nothing open (what is left after a panic).
    pub fn fresh(&self) -> HostRun {
        let mut h = HostRun::new(&self.name, self.conn.clone(), self.inventory_vars.clone());
        // A node left pending is still finished on the way out.
        h.operator = self.operator.clone();
        h
    }

    /// Marks the host out of the run, counting the failure once.
    pub fn fail(&mut self, down: Down) {
        if self.down.is_none() {
            self.stats.add(down.status);
            self.down = Some(down);
        }
    }

    /// Opens the session (with the host's facts) and loads the playbook into the host's
    /// own Lua state, the first time the host takes part. Returns why not, if it cannot.
    pub async fn start(&mut self, world: &Arc<RunWorld>) -> Result<(), Down> {
        if let Some(d) = &self.down {
            return Err(d.clone());
        }
        if self.session.is_none() {
            match session::open(
                &self.conn,
                &world.context,
                Opening::Facts,
                world.events.clone(),
            )
            .await
            {
                Ok(mut s) => {
                    // One session at a time changes a host; check mode changes nothing.
                    if !world.check
                        && let Err(f) = s.lock(self.conn.lock_wait_s).await
                    {
                        let down = Down {
                            status: if f.ends_session() {
                                Status::Unreachable
                            } else {
                                Status::Failed
                            },
                            message: f.message(),
                            hints: vec![
                                "another migfleet run is changing this host; wait for it, or raise migfleet_lock_wait (seconds) for this host".to_string(),
                            ],
                        };
                        self.fail(down.clone());
                        return Err(down);
                    }
                    self.session = Some(s)
                }
                Err(e) => {
                    let down = Down {
                        status: if e.unreachable {
                            Status::Unreachable
                        } else {
                            Status::Failed
                        },
                        message: e.message,
                        hints: e.hints,
                    };
                    self.fail(down.clone());
                    return Err(down);
                }
            }
        }
        if self.lua.is_none() {
            let (w, host) = (world.clone(), self.name.clone());
            // Loading runs the playbook's top level and compiles its named policies.
            let limit = offload::deadline(&world.limits, 10);
            let loaded = offload::run(limit, move || {
                let lua = new_state(&w.limits)?;
                sandbox::set_print_sink(&lua, {
                    let events = w.events.clone();
                    move |line| {
                        events.send(crate::fleet::Event::Print {
                            host: host.clone(),
                            line: line.to_string(),
                        })
                    }
                });
                let plays = load_plays(&lua, &w.source, &w.shared)?;
                Ok::<_, PlaybookError>((lua, plays))
            })
            .await;
            let message = match loaded {
                Ok(Ok(Ok(l))) => {
                    self.lua = Some(l);
                    return Ok(());
                }
                Ok(Ok(Err(e))) => format!("loading the playbook: {e}"),
                Ok(Err(panic)) => panic,
                Err(stuck) => format!("loading the playbook: {stuck}"),
            };
            let down = Down {
                status: Status::Failed,
                message,
                hints: Vec::new(),
            };
            self.fail(down.clone());
            return Err(down);
        }
        Ok(())
    }

    /// Runs task `task` of play `play` (0-based) on this host and counts its result.
    pub async fn run_task(&mut self, world: &RunWorld, play: usize, task: usize) -> TaskResult {
        let (mut result, lua_stuck) = self.task_result(world, play, task, false).await;
        self.register(world, play, task, &result);
        if result.status == Status::Unreachable && self.drained {
            result = result.hint(
                "this host was drained and cannot be restored now: the units drain stopped stay stopped (the agent records them) until a restore{} task runs on it",
            );
        }
        if lua_stuck && let Some(l) = self.lua.take() {
            offload::abandon(l);
        }
        self.stats.add(result.status);
        if result.status.is_failure() && self.down.is_none() {
            self.down = Some(Down {
                status: result.status,
                message: result.message.clone(),
                hints: result.hints.clone(),
            });
        }
        result
    }

    /// The node this host is in the cluster (`k8s_node`, else its name).
    pub fn node_name(&self) -> String {
        self.conn
            .k8s_node
            .clone()
            .unwrap_or_else(|| self.name.clone())
    }

    /// The host's facts as the next task sees them (in check mode, as the tasks so far
    /// would have left them).
    pub async fn current_facts(&mut self, world: &RunWorld) -> Result<Facts, String> {
        if world.check
            && let Some(p) = &self.projected
        {
            return Ok(p.clone());
        }
        let Some(session) = self.session.as_mut() else {
            return Err("the host's session is not open".into());
        };
        session
            .facts()
            .await
            .cloned()
            .map_err(|f| format!("cannot read the host's facts: {}", f.message()))
    }

    /// A task's `register` and `check_mode` after it ran: its result becomes a variable,
    /// and what a check-mode task projected does not outlive it in a real run.
    fn register(&mut self, world: &RunWorld, play: usize, task: usize, r: &TaskResult) {
        let Some(t) = self
            .lua
            .as_ref()
            .and_then(|(_, plays)| plays.get(play))
            .and_then(|p| p.tasks.get(task))
        else {
            return;
        };
        if t.check_mode && !world.check {
            self.projected = None;
        }
        if let Some(name) = &t.register {
            self.registered.insert(
                name.clone(),
                serde_json::json!({
                    "changed": r.status == Status::Changed,
                    "failed": r.status.is_failure(),
                    "skipped": r.status == Status::Skipped,
                    "msg": r.message,
                }),
            );
        }
    }

    /// Runs the play's `restore` task `task` for a host that failed after a `drain`, as
    /// Ansible's `always` would: its `when` is not asked, and the host stays failed.
    pub async fn restore_on_the_way_out(
        &mut self,
        world: &RunWorld,
        play: usize,
        task: usize,
    ) -> TaskResult {
        let (mut result, lua_stuck) = self.task_result(world, play, task, true).await;
        if lua_stuck && let Some(l) = self.lua.take() {
            offload::abandon(l);
        }
        self.stats.add(result.status);
        result.message = format!(
            "on the way out (the host failed after drain): {}",
            result.message
        );
        if result.status.is_failure() {
            result = result.hint(
                "the units drain stopped stay stopped (the agent records them): run a restore{} task on this host",
            );
        }
        result
    }

    /// The task's result, and whether the host's Lua got stuck doing it. `forced`: the
    /// task runs once, whatever its `when` says, even for a host that is down.
    async fn task_result(
        &mut self,
        world: &RunWorld,
        play: usize,
        task: usize,
        forced: bool,
    ) -> (TaskResult, bool) {
        let (Some(session), Some((lua, plays))) = (self.session.as_mut(), self.lua.as_ref()) else {
            return (TaskResult::failed("the host's session is not open"), false);
        };
        let Some(p) = plays.get(play) else {
            return (TaskResult::failed("the playbook has no such play"), false);
        };
        let Some(t) = p.tasks.get(task) else {
            return (TaskResult::failed("the play has no such task"), false);
        };
        world.events.progress(&self.name, t.name.clone());
        let mut vars = (*self.inventory_vars).clone();
        vars.insert(
            "inventory_hostname".into(),
            Value::String(self.name.clone()),
        );
        vars.extend(p.vars.clone());
        vars.extend(self.registered.clone());
        vars.extend(world.shared.extra_vars.clone());
        let check = world.check || t.check_mode;
        vars.insert("ansible_check_mode".into(), Value::Bool(check));
        let mut cx = TaskCx {
            host: &self.name,
            lua,
            limits: &world.limits,
            session,
            conn: &self.conn,
            vars: &vars,
            check,
            projected: &mut self.projected,
            context: &world.context,
            events: &world.events,
            rebooted_for_pending: &mut self.rebooted_for_pending,
            drained: &mut self.drained,
            k8s: &world.k8s,
            operator: &mut self.operator,
            demand: self.demand.as_ref(),
        };
        if let Some(cond) = t.when.as_ref().filter(|_| !forced) {
            let run = match cond {
                Cond::Bool(b) => Ok(*b),
                Cond::Function(f) => match host_value(&mut cx).await {
                    Ok(view) => match call_lua::<bool>(&cx, f, view).await {
                        Ok(r) => r,
                        Err(l) => return lost(l),
                    },
                    Err(l) => return lost(l),
                },
            };
            match run {
                Ok(true) => {}
                Ok(false) => return (TaskResult::skipped(""), false),
                Err(e) => return (TaskResult::failed(format!("when: {e}")), false),
            }
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let r = match &t.action {
                Action::Module(m) => m.run(&mut cx).await,
                Action::Function(f) => run_function(&mut cx, f).await,
            };
            let mut r = match r {
                Ok(r) => r,
                Err(l) => return lost(l),
            };
            r.attempts = attempts;
            if r.status != Status::Failed || attempts > t.retries || forced {
                if r.status == Status::Failed {
                    r.message = format!("{} ({}): {}", t.name, t.pos, r.message);
                }
                return (r, false);
            }
            world.events.progress(
                &self.name,
                format!(
                    "FAILED - RETRYING: {} ({} retries left): {}",
                    t.name,
                    t.retries + 1 - attempts,
                    r.message
                ),
            );
            tokio::time::sleep(t.delay).await;
        }
    }
}

fn lost(l: Lost) -> (TaskResult, bool) {
    let r = if l.unreachable {
        TaskResult::unreachable(l.message)
    } else {
        TaskResult::failed(l.message)
    };
    (r, l.lua_stuck)
}

/// The host as Lua sees it, from the facts tasks see.
async fn host_value(cx: &mut TaskCx<'_>) -> Result<Value, Lost> {
    let facts = cx.facts().await?;
    Ok(cx.view(&facts))
}

/// Calls `f` with the host's view, off the async workers and bounded; `Err` when the
/// call did not come back (the host's Lua is then given up on).
fn call_lua<R: mlua::FromLuaMulti + Send + 'static>(
    cx: &TaskCx<'_>,
    f: &FnRef,
    view: Value,
) -> impl std::future::Future<Output = Result<Result<R, PlaybookError>, Lost>> + Send + 'static {
    let (lua, f) = (cx.lua.clone(), f.clone());
    let limit = offload::deadline(cx.limits, 1);
    call_lua_owned(lua, f, view, limit)
}

async fn call_lua_owned<R: mlua::FromLuaMulti + Send + 'static>(
    lua: mlua::Lua,
    f: FnRef,
    view: Value,
    limit: std::time::Duration,
) -> Result<Result<R, PlaybookError>, Lost> {
    match offload::run(limit, move || {
        let arg = to_lua_value(&lua, &view).map_err(|e| PlaybookError::from_lua(&lua, e))?;
        f.call::<_, R>(&lua, arg)
    })
    .await
    {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(panic)) => Err(Lost::new(panic, false)),
        Err(stuck) => Err(Lost::stuck(stuck)),
    }
}

/// The keys a `run` function's result may have.
const RUN_RESULT_KEYS: [&str; 4] = ["changed", "failed", "skipped", "msg"];

/// `run = function(host) ... end`: its result `{changed, failed, skipped, msg}` (or nil)
/// is the task's.
async fn run_function(cx: &mut TaskCx<'_>, f: &FnRef) -> Result<TaskResult, Lost> {
    let view = host_value(cx).await?;
    // The result is turned into data inside the call: Lua values stay on the Lua side.
    let (lua, f) = (cx.lua.clone(), f.clone());
    let limit = offload::deadline(cx.limits, 1);
    let v = offload::run(limit, move || {
        let arg = to_lua_value(&lua, &view).map_err(|e| PlaybookError::from_lua(&lua, e))?;
        let v: mlua::Value = f.call(&lua, arg)?;
        from_lua_value(v).map_err(|e| {
            PlaybookError::new(e.kind, e.pos, format!("run function result: {}", e.message))
        })
    })
    .await;
    let v = match v {
        Ok(Ok(Ok(v))) => v,
        Ok(Ok(Err(e))) => return Ok(TaskResult::failed(e.to_string())),
        Ok(Err(panic)) => return Err(Lost::new(panic, false)),
        Err(stuck) => return Err(Lost::stuck(stuck)),
    };
    let map = match v {
        Value::Null => return Ok(TaskResult::ok("done")),
        Value::Object(m) => m,
        other => {
            return Ok(TaskResult::failed(format!(
                "a run function returns nil or a table {{changed = ..., failed = ..., msg = ...}}, not {other}"
            )));
        }
    };
    for k in map.keys() {
        if !RUN_RESULT_KEYS.contains(&k.as_str()) {
            let hint = closest(k, RUN_RESULT_KEYS)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Ok(TaskResult::failed(format!(
                "the run function returned an unknown key `{k}`{hint}; keys: {}",
                RUN_RESULT_KEYS.join(", ")
            )));
        }
    }
    let flag = |k: &str| map.get(k).and_then(Value::as_bool) == Some(true);
    let msg = map
        .get("msg")
        .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))
        .unwrap_or_else(|| "done".to_string());
    Ok(if flag("failed") {
        TaskResult::failed(msg)
    } else if flag("skipped") {
        TaskResult::skipped(msg)
    } else if flag("changed") {
        TaskResult::changed(msg)
    } else {
        TaskResult::ok(msg)
    })
}
