//! The fleet a command works on, loaded once per run: the inventory (a dynamic one runs
//! once), the `--limit`, known_hosts and the agent builds (hashed once). Selecting hosts,
//! their connection settings and variables, and the one-step fan-out behind `ping` and
//! `facts`.

use super::event::{Event, Events, Outcome};
use super::executor::{self, FleetOptions};
use super::session::{self, Context, Opening, Session};
use crate::error::Failure;
use crate::inventory::{Connection, Inventory};
use crate::report::{Output, monitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

/// Everything about the fleet that does not change during a run.
pub struct Fleet {
    pub inventory: Inventory,
    /// The hosts `--limit` allows (`None`: all).
    limit: Option<Vec<String>>,
    limit_text: Option<String>,
    /// Known hosts and agent builds: loaded only by commands that reach hosts.
    context: Option<Arc<Context>>,
    pub forks: usize,
    /// `-v` count.
    pub verbosity: u8,
    connections: HashMap<String, Result<Connection, String>>,
    /// Each prepared host's variables, templates rendered.
    vars: HashMap<String, Map<String, Value>>,
    /// What templates share, built when the first host needs it.
    templates: std::sync::OnceLock<Arc<crate::inventory::template::World>>,
}

impl Fleet {
    pub fn new(
        inventory: Inventory,
        limit: Option<&str>,
        forks: usize,
        verbosity: u8,
    ) -> Result<Fleet, Failure> {
        let allowed = match limit {
            Some(l) => Some(
                inventory
                    .select(l)
                    .map_err(|e| Failure::options(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Fleet {
            inventory,
            limit: allowed,
            limit_text: limit.map(str::to_string),
            context: None,
            forks,
            verbosity,
            connections: HashMap::new(),
            vars: HashMap::new(),
            templates: std::sync::OnceLock::new(),
        })
    }

    /// What reaching hosts needs (known_hosts, the agent builds), for commands that do.
    pub fn with_context(mut self, context: Context) -> Fleet {
        self.context = Some(Arc::new(context));
        self
    }

    /// The context sessions open with.
    pub fn context(&self) -> Result<Arc<Context>, Failure> {
        self.context
            .clone()
            .ok_or_else(|| Failure::error("no SSH context loaded (a bug: call with_context)"))
    }

    /// The hosts `pattern` names, within `--limit`, in inventory order. `Ok(empty)` is
    /// possible; a bad pattern is a usage error.
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, Failure> {
        let mut hosts = self
            .inventory
            .select(pattern)
            .map_err(|e| Failure::options(e.to_string()))?;
        if let Some(allowed) = &self.limit {
            hosts.retain(|h| allowed.contains(h));
        }
        Ok(hosts)
    }

    /// Like [`Fleet::select`], but no host at all is an error naming the limit.
    pub fn select_some(&self, pattern: &str) -> Result<Vec<String>, Failure> {
        let hosts = self.select(pattern)?;
        if hosts.is_empty() {
            return Err(match &self.limit_text {
                Some(l) => {
                    Failure::options(format!("no hosts match `{pattern}` within --limit `{l}`"))
                }
                None => Failure::options(format!("no hosts match `{pattern}`")),
            });
        }
        Ok(hosts)
    }

    /// Renders every host's variables and checks its connection settings once, so a bad
    /// template or variable is reported before anything connects (all bad hosts at once,
    /// each with host and variable).
    pub fn prepare(&mut self, hosts: &[String]) -> Result<(), Failure> {
        let mut errors = Vec::new();
        for h in hosts {
            if !self.connections.contains_key(h) {
                let rendered = self.render(h);
                let conn = rendered.and_then(|vars| {
                    let c = Connection::from_vars(h, &vars).map_err(|e| e.to_string());
                    self.vars.insert(h.clone(), vars);
                    c
                });
                self.connections.insert(h.clone(), conn);
            }
            if let Some(Err(e)) = self.connections.get(h) {
                errors.push(e.clone());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Failure::parse(errors.join("\n")))
        }
    }

    /// A host's variables with templates rendered (`!unsafe` values as plain strings).
    fn render(&self, host: &str) -> Result<Map<String, Value>, String> {
        // Built once, and only when some host has a template.
        let world = || {
            self.templates
                .get_or_init(|| crate::inventory::template::World::new(&self.inventory))
                .clone()
        };
        self.inventory
            .render_vars(host, world)
            .map_err(|e| e.to_string())
    }

    /// A prepared host's connection settings.
    pub fn connection(&self, host: &str) -> Option<&Connection> {
        self.connections.get(host).and_then(|c| c.as_ref().ok())
    }

    /// A prepared host's variables, as tasks and Lua use them (templates rendered).
    pub fn vars(&self, host: &str) -> Map<String, Value> {
        self.vars.get(host).cloned().unwrap_or_default()
    }
}

/// Runs one step per host (`ping`, `facts`): opens each host's session (with `opening`)
/// and hands it to `work`. Returns the outcomes in host order with the run's exit code;
/// hosts whose session cannot open are unreachable or failed, and the others go on.
pub fn run_on_hosts<W, F>(
    fleet: &mut Fleet,
    output: Output,
    opening: Opening,
    work: W,
) -> Result<(Vec<(String, Outcome)>, u8), Failure>
where
    W: Fn(Session) -> F + Send + Sync + 'static,
    F: Future<Output = Outcome> + Send + 'static,
{
    let hosts = fleet.select_some("all")?;
    fleet.prepare(&hosts)?;
    let connections: Arc<HashMap<String, Connection>> = Arc::new(
        hosts
            .iter()
            .filter_map(|h| fleet.connection(h).map(|c| (h.clone(), c.clone())))
            .collect(),
    );
    let opts = FleetOptions {
        forks: fleet.forks,
        ..FleetOptions::default()
    };
    let ctx = fleet.context()?;
    let work = Arc::new(work);
    let rt = runtime()?;
    let verbosity = fleet.verbosity;
    let outcomes = rt.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let watcher = tokio::spawn(monitor::watch(monitor::Mode::choose(output), verbosity, rx));
        let outcomes = executor::run(hosts, &opts, Events::new(tx), move |host, events| {
            let (ctx, connections, work) = (ctx.clone(), connections.clone(), work.clone());
            async move {
                let Some(conn) = connections.get(&host) else {
                    return Outcome::failed("no connection settings");
                };
                match session::open(conn, &ctx, opening, events).await {
                    Ok(s) => work(s).await,
                    Err(e) if e.unreachable => Outcome::unreachable(e.message),
                    Err(e) => Outcome::failed(e.message),
                }
            }
        })
        .await;
        let _ = watcher.await;
        outcomes
    });
    let stats = crate::report::recap::from_outcomes(&outcomes);
    let code = crate::report::recap::exit_code(&stats);
    if output == Output::Json {
        crate::report::print_json_line(
            &serde_json::json!({"event": "summary", "stats": stats, "exit_code": code}),
        )?;
    }
    Ok((outcomes, code))
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))
}
