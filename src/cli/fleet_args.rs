//! The options every fleet command shares: inventory, limit, forks, host keys, agent
//! builds. Defined once so `--help` reads the same everywhere.

use crate::error::Failure;
use crate::fleet::executor::DEFAULT_FORKS;
use crate::fleet::session::Context;
use crate::inventory::{Connection, Inventory};
use crate::transport::push::AgentBuilds;
use crate::transport::ssh::{KnownHosts, SshOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Inventory: an Ansible YAML or INI file, an executable printing Ansible's JSON, or a
    /// directory of them. Repeat for several; later ones win.
    #[arg(short = 'i', long = "inventory", required = true, value_name = "INV")]
    pub inventory: Vec<PathBuf>,
    /// Restrict to hosts matching this Ansible pattern (`gpu_h100:!maint`, `~gpu0[1-4]`,
    /// `@retry.txt`).
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Hosts worked on at once (at least 1).
    #[arg(short = 'f', long, default_value_t = DEFAULT_FORKS, value_parser = parse_forks)]
    pub forks: usize,
    /// known_hosts file to verify host keys against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Record the keys of hosts not in known_hosts (a changed key is still refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Directory with portable agent builds (`migfleet-agent-<arch>-linux-gnu`, from
    /// scripts/build-agent.sh) [default: the agent beside this executable].
    #[arg(long, value_name = "DIR")]
    pub agent_dir: Option<PathBuf>,
    /// SSH connect timeout, seconds.
    #[arg(short = 'T', long, default_value_t = 10)]
    pub timeout: u64,
    /// SSH user for hosts whose inventory names none.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Private key to try for every host (after the inventory's own).
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
}

/// `-f N`: a positive number of hosts (0 would run nothing and wait forever).
fn parse_forks(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// The hosts to work on and their connection settings, in inventory order.
pub struct Targets {
    pub hosts: Vec<String>,
    pub connections: std::collections::HashMap<String, Connection>,
    /// Each host's merged inventory variables.
    pub vars: std::collections::HashMap<String, serde_json::Map<String, serde_json::Value>>,
}

impl FleetArgs {
    pub fn targets(&self, play_hosts: &str) -> Result<Targets, Failure> {
        let inv = Inventory::load(&self.inventory).map_err(|e| Failure::parse(e.to_string()))?;
        let mut hosts = inv
            .select(play_hosts)
            .map_err(|e| Failure::options(e.to_string()))?;
        if let Some(limit) = &self.limit {
            let allowed = inv
                .select(limit)
                .map_err(|e| Failure::options(e.to_string()))?;
            hosts.retain(|h| allowed.contains(h));
            if hosts.is_empty() {
                return Err(Failure::options(format!(
                    "no hosts left after --limit `{limit}`"
                )));
            }
        }
        let mut connections = std::collections::HashMap::new();
        let mut vars = std::collections::HashMap::new();
        for h in &hosts {
            let hv = inv.host_vars(h);
            let c = Connection::from_vars(h, &hv).map_err(|e| Failure::parse(e.to_string()))?;
            connections.insert(h.clone(), c);
            vars.insert(h.clone(), hv);
        }
        Ok(Targets {
            hosts,
            connections,
            vars,
        })
    }

    pub fn context(&self) -> Result<Context, Failure> {
        let mut ssh = SshOptions::default();
        if let Some(k) = &self.known_hosts {
            ssh.known_hosts = k.clone();
        }
        ssh.accept_new = self.accept_new_host_keys;
        ssh.connect_timeout = Duration::from_secs(self.timeout);
        if let Some(k) = &self.private_key {
            ssh.identity_files.insert(0, k.clone());
        }
        let known =
            KnownHosts::load(&ssh.known_hosts).map_err(|e| Failure::options(e.to_string()))?;
        let builds = AgentBuilds::discover(self.agent_dir.as_deref()).map_err(|e| {
            Failure::options(e.to_string())
                .hint("build the agent (`cargo build -p migfleet-agent`) or pass --agent-dir")
        })?;
        Ok(Context {
            ssh,
            known_hosts: Arc::new(known),
            builds: Arc::new(builds),
            default_user: self.user.clone(),
        })
    }
}

/// A multi-threaded runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::error(format!("cannot start the async runtime: {e}")))
}

/// Runs `work` with each host's agent session, showing progress, and returns the outcomes
/// in host order with the run's exit code. Sessions that cannot open become unreachable
/// or failed outcomes; the other hosts go on.
pub fn run_on_hosts<W, F>(
    args: &FleetArgs,
    output: crate::report::Output,
    work: W,
) -> Result<(Vec<(String, crate::fleet::Outcome)>, u8), Failure>
where
    W: Fn(
            crate::fleet::session::Session,
            tokio::sync::mpsc::UnboundedSender<crate::fleet::Event>,
        ) -> F
        + Send
        + Sync
        + 'static,
    F: std::future::Future<Output = crate::fleet::Outcome> + Send + 'static,
{
    let targets = args.targets("all")?;
    let opts = crate::fleet::FleetOptions {
        forks: args.forks,
        ..crate::fleet::FleetOptions::default()
    };
    let rt = runtime()?;
    let outcomes = run_targets(args, &rt, targets, opts, output, move |s, _, _, events| {
        work(s, events)
    })?;
    finish_run(outcomes, output)
}

/// Computes the recap's exit code and, for `--output json`, writes the summary line.
pub fn finish_run(
    outcomes: Vec<(String, crate::fleet::Outcome)>,
    output: crate::report::Output,
) -> Result<(Vec<(String, crate::fleet::Outcome)>, u8), Failure> {
    use crate::report::recap;
    let stats = recap::from_outcomes(&outcomes);
    let code = recap::exit_code(&stats);
    if output == crate::report::Output::Json {
        crate::report::print_json_line(
            &serde_json::json!({"event": "summary", "stats": stats, "exit_code": code}),
        )?;
    }
    Ok((outcomes, code))
}

/// The fan-out behind every fleet command: opens each host's session and hands it, with
/// the host's connection settings and variables, to `work`.
pub fn run_targets<W, F>(
    args: &FleetArgs,
    rt: &tokio::runtime::Runtime,
    targets: Targets,
    opts: crate::fleet::FleetOptions,
    output: crate::report::Output,
    work: W,
) -> Result<Vec<(String, crate::fleet::Outcome)>, Failure>
where
    W: Fn(
            crate::fleet::session::Session,
            Connection,
            serde_json::Map<String, serde_json::Value>,
            tokio::sync::mpsc::UnboundedSender<crate::fleet::Event>,
        ) -> F
        + Send
        + Sync
        + 'static,
    F: std::future::Future<Output = crate::fleet::Outcome> + Send + 'static,
{
    use crate::fleet::{Event, Outcome, session};
    use crate::report::monitor;

    let ctx = Arc::new(args.context()?);
    let connections = Arc::new(targets.connections);
    let vars = Arc::new(targets.vars);
    let work = Arc::new(work);
    let hosts = targets.hosts;
    Ok(rt.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let watcher = tokio::spawn(monitor::watch(monitor::Mode::choose(output), rx));
        let outcomes = crate::fleet::run(hosts, &opts, tx, move |host, events| {
            let (ctx, connections, vars, work) =
                (ctx.clone(), connections.clone(), vars.clone(), work.clone());
            async move {
                let Some(conn) = connections.get(&host) else {
                    return Outcome::failed("no connection settings");
                };
                let ev = events.clone();
                let h = host.clone();
                let progress = move |m: &str| {
                    let _ = ev.send(Event::HostProgress {
                        host: h.clone(),
                        message: m.to_string(),
                    });
                };
                match session::open(conn, &ctx, &progress).await {
                    Ok(s) => {
                        work(
                            s,
                            conn.clone(),
                            vars.get(&host).cloned().unwrap_or_default(),
                            events,
                        )
                        .await
                    }
                    Err(e) if e.unreachable => Outcome::unreachable(e.message),
                    Err(e) => Outcome::failed(e.message),
                }
            }
        })
        .await;
        let _ = watcher.await;
        outcomes
    }))
}
