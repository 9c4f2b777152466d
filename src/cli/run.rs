//! `migfleet run PLAYBOOK -i INV`: run a Lua playbook's plays over the hosts they name.
//! Everything a run shares is loaded once here: the playbook's text (checked whole,
//! module arguments, named policies and mig-parted files included, before anything
//! connects), the inventory, known_hosts and the agent builds.

use super::fleet_args::FleetArgs;
use crate::error::Failure;
use crate::fleet::fanout::runtime;
use crate::fleet::{Event, Events};
use crate::playbook::host::RunWorld;
use crate::playbook::policy::Policies;
use crate::playbook::{Limits, Play, PlaybookSource, Shared, load_plays, new_state, offload, run};
use crate::report::monitor::{self, Show};
use crate::report::{Output, exit_code, recap};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, clap::Args)]
#[command(after_help = "\
A playbook is a Lua file returning a play or a list of plays; see playbooks/ for examples \
and lua/types/migfleet.lua for the API (LuaLS annotations).

Plays run in order; a play's hosts run in `serial` batches, and within a batch every host \
finishes a task before the next task starts (Ansible's linear strategy). Each host keeps \
one SSH connection and one agent for the whole run. Exit codes as ansible-playbook: 0 ok, \
2 a host failed, 4 a host was unreachable or the playbook did not load, 5 bad options.")]
pub struct Args {
    /// The playbook (a Lua file).
    pub playbook: PathBuf,
    /// Change nothing: plan every task as if the ones before it had run (policies, the
    /// agents' dry runs), and print per host and GPU what would change, the NVML
    /// operations it would take, and what would fail.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show every GPU's layout, changed or not.
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Only tasks with these tags (comma-separated; `always`, `never`, `tagged`,
    /// `untagged`, `all` as Ansible's).
    #[arg(short = 't', long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with these tags.
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Extra variables `key=value` (strings), or `@file` (JSON or YAML); visible as `vars`
    /// in the playbook and they win over every other variable.
    #[arg(short = 'e', long = "extra-vars", value_name = "VARS")]
    pub extra_vars: Vec<String>,
    /// A directory of named policies (`<name>.lua`), searched before `lua/policies/`
    /// beside the playbook and in the working directory, and before the built-in ones.
    /// Repeat for several; the first that has the name wins.
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Vec<PathBuf>,
    /// Print the hosts each play would run on, and stop.
    #[arg(long)]
    pub list_hosts: bool,
    /// Print each play's tasks, and stop.
    #[arg(long)]
    pub list_tasks: bool,
    /// Check the playbook loads: its Lua, every task's module arguments, every named
    /// policy it uses (found and compiled) and every mig-parted config; then stop.
    #[arg(long)]
    pub syntax_check: bool,
    /// Where to write the hosts that failed, were unreachable or were interrupted, one per
    /// line, for `--limit @FILE` (default: the playbook's name with `.retry`, beside it).
    #[arg(long, value_name = "FILE", conflicts_with = "no_retry_file")]
    pub retry_file: Option<PathBuf>,
    /// Write no retry file.
    #[arg(long)]
    pub no_retry_file: bool,
    /// The kubeconfig for `k8s.*` tasks (default: $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account).
    #[arg(long, value_name = "FILE", help_heading = "Kubernetes")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME", help_heading = "Kubernetes")]
    pub context: Option<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

/// `site.lua` -> `site.retry`, beside it.
fn default_retry_file(playbook: &std::path::Path) -> PathBuf {
    playbook.with_extension("retry")
}

/// Writes the hosts to run again (atomically: a temp file renamed over it). The file is
/// left as it was when there are none.
fn write_retry_file(path: &std::path::Path, hosts: &[String]) -> std::io::Result<()> {
    let mut text = hosts.join("\n");
    text.push('\n');
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// `-e` as Ansible reads it: `key=value`, or `@FILE` (YAML 1.1, vault-encrypted or not);
/// `vault` gives the vault passwords, asked for only when a file needs them.
fn extra_vars(
    items: &[String],
    vault: impl Fn() -> Result<crate::inventory::vault::Secrets, Failure>,
) -> Result<Map<String, Value>, Failure> {
    let mut out = Map::new();
    for item in items {
        if let Some(file) = item.strip_prefix('@') {
            let mut text = crate::input::read_text(file)
                .map_err(|e| Failure::options(format!("-e @{file}: {e}")))?;
            if crate::inventory::vault::is_vault(&text) {
                text = vault()?
                    .decrypt(&text)
                    .map_err(|e| Failure::options(format!("-e @{file}: {e}")))?;
            }
            // As Ansible reads it: YAML 1.1 (`yes` is true, merge keys, `!unsafe`).
            let v: Value = crate::inventory::yaml11::parse_json(&text)
                .map_err(|e| {
                    Failure::parse(format!(
                        "-e @{file}:{}:{}: {}",
                        e.pos.line, e.pos.col, e.message
                    ))
                })?
                .map_or(Value::Null, |(v, _)| v);
            let Value::Object(mut m) = v else {
                return Err(Failure::options(format!(
                    "-e @{file}: expected a mapping of variables"
                )));
            };
            // `!unsafe` and `!vault` values are plain text to playbooks, as in the inventory.
            let needs_vault = m.values().any(crate::inventory::template::has_vault);
            let secrets = if needs_vault {
                vault()?
            } else {
                Default::default()
            };
            for (k, v) in m.iter_mut() {
                crate::inventory::template::plain_value(v, &secrets)
                    .map_err(|e| Failure::options(format!("-e @{file}: `{k}`: {e}")))?;
            }
            out.extend(m);
        } else if let Some((k, v)) = item.split_once('=') {
            out.insert(k.trim().to_string(), Value::String(v.to_string()));
        } else {
            return Err(Failure::options(format!(
                "-e `{item}`: expected key=value or @file"
            )));
        }
    }
    Ok(out)
}

/// Loads the playbook once here, to check it before anything connects — on a thread of
/// its own, so Lua stuck where its budget cannot reach ends the command instead of
/// hanging it.
fn load_bounded(
    source: &PlaybookSource,
    shared: Shared,
    limits: &Limits,
) -> Result<(mlua::Lua, Vec<Play>, Shared), Failure> {
    let (tx, rx) = std::sync::mpsc::channel();
    let (src, lim) = (source.clone(), limits.clone());
    std::thread::spawn(move || {
        let r = new_state(&lim).and_then(|lua| {
            let plays = load_plays(&lua, &src, &shared)?;
            Ok((lua, plays))
        });
        let _ = tx.send(r.map(|(lua, plays)| (lua, plays, shared)));
    });
    let limit = offload::deadline(limits, 10);
    match rx.recv_timeout(limit) {
        Ok(Ok(loaded)) => Ok(loaded),
        Ok(Err(e)) => Err(Failure::parse(e.to_string())),
        Err(_) => Err(Failure::parse(format!(
            "{}: the playbook did not finish loading within {} s",
            source.name,
            limit.as_secs()
        ))),
    }
}

/// The tasks of `play` that `--tags` / `--skip-tags` select.
fn selected(play: &Play, args: &Args) -> Vec<usize> {
    play.tasks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.selected(&args.tags, &args.skip_tags))
        .map(|(i, _)| i)
        .collect()
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let source = PlaybookSource::read(&args.playbook).map_err(|e| Failure::parse(e.to_string()))?;
    let shared = Shared {
        policies: Arc::new(Policies::new(Policies::search_path(
            &args.policy_dir,
            &args.playbook,
        ))),
        configs: Default::default(),
        extra_vars: extra_vars(&args.extra_vars, || args.fleet.inventory_limits.vault())?,
    };
    let limits = Limits::default();
    // The state stays alive as long as the plays whose functions live in it.
    let (_lua, plays, shared) = load_bounded(&source, shared, &limits)?;
    let tasks: Vec<Vec<usize>> = plays.iter().map(|p| selected(p, &args)).collect();

    if args.syntax_check {
        crate::outln!("playbook: {}", args.playbook.display())?;
        let n: usize = plays.iter().map(|p| p.tasks.len()).sum();
        crate::outln!(
            "{} play(s), {n} task(s): Lua, module arguments, named policies and mig-parted configs check out",
            plays.len()
        )?;
        return Ok(());
    }
    if args.list_tasks {
        crate::outln!("\nplaybook: {}", args.playbook.display())?;
        for (i, p) in plays.iter().enumerate() {
            crate::outln!("\n  play #{} ({}): {}", i + 1, p.hosts, p.name)?;
            crate::outln!("    tasks:")?;
            for &ti in &tasks[i] {
                let t = &p.tasks[ti];
                crate::outln!("      {}\tTAGS: [{}]", t.name, t.tags.join(", "))?;
            }
        }
        return Ok(());
    }

    let fleet = args.fleet.hosts()?;
    let hosts: Vec<Vec<String>> = plays
        .iter()
        .map(|p| fleet.select(&p.hosts))
        .collect::<Result<_, _>>()?;
    if args.list_hosts {
        crate::outln!("\nplaybook: {}", args.playbook.display())?;
        for (i, (p, h)) in plays.iter().zip(&hosts).enumerate() {
            crate::outln!("\n  play #{} ({}): {}", i + 1, p.hosts, p.name)?;
            crate::outln!("    pattern: {}", p.hosts)?;
            crate::outln!("    hosts ({}):", h.len())?;
            for name in h {
                crate::outln!("      {name}")?;
            }
        }
        return Ok(());
    }
    if let Some(limit) = &args.fleet.limit
        && hosts.iter().all(Vec::is_empty)
    {
        return Err(Failure::options(format!(
            "no play has a host left after --limit `{limit}`"
        )));
    }
    let mut fleet = fleet.with_context(args.fleet.context()?);
    let mut everyone: Vec<String> = hosts.iter().flatten().cloned().collect();
    everyone.sort();
    everyone.dedup();
    // Every host's connection settings are checked before anything connects.
    fleet.prepare(&everyone)?;

    let show = Show {
        verbosity: args.fleet.verbose,
        diff: args.diff,
    };
    let context = fleet.context()?;
    let rt = runtime()?;
    let outcome = rt.block_on(async {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = tokio::spawn(monitor::watch_with(monitor::Mode::choose(output), show, rx));
        let interrupted = Arc::new(AtomicBool::new(false));
        let events = Events::new(tx);
        let world = Arc::new(RunWorld {
            source,
            shared,
            limits,
            check: args.check,
            context,
            events: events.clone(),
            interrupted: interrupted.clone(),
            k8s: crate::k8s::K8s::new(crate::k8s::K8sOptions {
                kubeconfig: args.kubeconfig.clone(),
                context: args.context.clone(),
            }),
        });
        let plan = run::Plan {
            plays: &plays,
            hosts,
            tasks,
        };
        let mut running = Box::pin(run::run(&fleet, plan, world));
        let mut presses = 0;
        let outcome = loop {
            tokio::select! {
                finished = &mut running => break Some(finished),
                _ = tokio::signal::ctrl_c() => {
                    presses += 1;
                    if presses > 1 {
                        break None;
                    }
                    interrupted.store(true, Ordering::SeqCst);
                    events.send(Event::Interrupted);
                }
            }
        };
        drop(running);
        drop(events);
        match outcome {
            // Every sender is gone with the hosts' sessions and the world: the monitor ends.
            Some(_) => {
                let _ = watcher.await;
            }
            // Hosts may still be in the middle of an operation: nothing more is shown.
            None => watcher.abort(),
        }
        outcome
    });
    // A host's Lua given up on may still hold a blocking thread: do not wait for it.
    rt.shutdown_background();
    let Some(finished) = outcome else {
        return Err(Failure {
            message: "aborted by a second Ctrl-C; each host's agent finishes the operation it was doing on its own".into(),
            hints: Vec::new(),
            code: exit_code::INTERRUPTED,
        });
    };
    let stats: recap::Stats = finished.hosts.into_iter().collect();
    let code = recap::exit_code(&stats);
    let mut again: Vec<String> = stats
        .iter()
        .filter(|(_, s)| s.failed > 0 || s.unreachable > 0)
        .map(|(h, _)| h.clone())
        .chain(finished.interrupted.iter().map(|(h, _)| h.clone()))
        .collect();
    again.sort();
    again.dedup();
    let retry = match (
        &args.retry_file,
        args.no_retry_file || args.check || again.is_empty(),
    ) {
        (_, true) => None,
        (Some(p), false) => Some(p.clone()),
        (None, false) => Some(default_retry_file(&args.playbook)),
    };
    let retry = retry.and_then(|p| match write_retry_file(&p, &again) {
        Ok(()) => Some(p),
        Err(e) => {
            eprintln!("warning: cannot write the retry file {}: {e}", p.display());
            None
        }
    });
    match output {
        Output::Text => {
            crate::outln!("")?;
            crate::out!("{}", recap::render(&stats))?;
            for (host, task) in &finished.interrupted {
                crate::outln!("interrupted: {host} (before {task})")?;
            }
            if let Some(p) = &retry {
                crate::outln!(
                    "to retry the {} host(s) that did not finish: --limit @{}",
                    again.len(),
                    p.display()
                )?;
            }
        }
        Output::Json => crate::report::print_json_line(&serde_json::json!({
            "event": "summary",
            "stats": stats,
            "exit_code": if finished.interrupted.is_empty() { code } else { exit_code::INTERRUPTED },
            "interrupted": finished.interrupted.iter()
                .map(|(host, task)| serde_json::json!({"host": host, "before": task}))
                .collect::<Vec<_>>(),
            "retry_file": retry.as_ref().map(|p| p.display().to_string()),
        }))?,
    }
    if !finished.interrupted.is_empty() {
        return Err(Failure {
            message: format!(
                "interrupted by Ctrl-C: {} host(s) stopped before their next task",
                finished.interrupted.len()
            ),
            hints: Vec::new(),
            code: exit_code::INTERRUPTED,
        });
    }
    recap::result(&stats, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_vars_files_are_read_as_ansible_reads_them() {
        let dir = std::env::temp_dir().join(format!("migfleet-ev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("vars.yml");
        std::fs::write(
            &f,
            "base: &b {retries: 3}\ntuned:\n  <<: *b\ndrain: yes\nraw: !unsafe '{{ kept }}'\ntop: .inf\n",
        )
        .unwrap();
        let v = extra_vars(&[format!("@{}", f.display()), "drain=later".into()], || {
            Ok(Default::default())
        })
        .unwrap();
        assert_eq!(v["tuned"], json!({"retries": 3}));
        assert_eq!(
            v["raw"],
            json!("{{ kept }}"),
            "!unsafe is plain text to playbooks"
        );
        assert_eq!(v["top"], json!("inf"));
        assert_eq!(v["drain"], json!("later"), "later -e wins");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
