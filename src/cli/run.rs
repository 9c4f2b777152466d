//! `migfleet run PLAYBOOK -i INV`: run a Lua playbook's plays over the hosts they name.

use super::fleet_args::{FleetArgs, finish_run, run_targets, runtime};
use super::ping::finish;
use crate::error::Failure;
use crate::fleet::{FleetOptions, Outcome};
use crate::playbook::runner::{RunOptions, run_play_on_host};
use crate::playbook::{Limits, Serial, default_policy_dir, load_playbook, new_lua};
use crate::report::Output;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "A playbook is a Lua file returning a play or a list of plays; see playbooks/ \
for examples and lua/types/migfleet.lua for the API (LuaLS annotations)."
)]
pub struct Args {
    /// The playbook (a Lua file).
    pub playbook: PathBuf,
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// Change nothing: run policies and the agents' dry runs, print the NVML operations
    /// that would run, per host and GPU.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Print each GPU's layout before and after.
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
    /// Directory of named policies [default: lua/policies beside the playbook's folder,
    /// then ./lua/policies].
    #[arg(long, value_name = "DIR")]
    pub policy_dir: Option<PathBuf>,
    /// Print the hosts each play would run on, and stop.
    #[arg(long)]
    pub list_hosts: bool,
    /// Print each play's tasks, and stop.
    #[arg(long)]
    pub list_tasks: bool,
    /// Check the playbook loads (syntax, structure), and stop.
    #[arg(long)]
    pub syntax_check: bool,
}

fn extra_vars(items: &[String]) -> Result<Map<String, Value>, Failure> {
    let mut out = Map::new();
    for item in items {
        if let Some(file) = item.strip_prefix('@') {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Failure::options(format!("-e @{file}: {e}")))?;
            let v: Value = serde_norway::from_str(&text)
                .map_err(|e| Failure::parse(format!("-e @{file}: {e}")))?;
            let Value::Object(m) = v else {
                return Err(Failure::options(format!(
                    "-e @{file}: expected a mapping of variables"
                )));
            };
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

fn policy_dir(args: &Args) -> PathBuf {
    if let Some(d) = &args.policy_dir {
        return d.clone();
    }
    // playbooks/x.lua -> playbooks/../lua/policies, the repository layout.
    let beside = args
        .playbook
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("lua/policies"));
    match beside {
        Some(p) if p.is_dir() => p,
        _ => {
            let own = default_policy_dir(&args.playbook);
            if own.is_dir() {
                own
            } else {
                PathBuf::from("lua/policies")
            }
        }
    }
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let vars = extra_vars(&args.extra_vars)?;
    let policies = policy_dir(&args);
    let limits = Limits::default();
    let lua = new_lua(&limits).map_err(|e| Failure::error(format!("cannot start Lua: {e}")))?;
    let plays = load_playbook(&lua, &args.playbook, &vars, &policies)
        .map_err(|e| Failure::parse(e.to_string()))?;
    if args.syntax_check {
        println!(
            "playbook: {} ({} play(s)) is fine",
            args.playbook.display(),
            plays.len()
        );
        return Ok(());
    }
    if args.list_tasks {
        for p in &plays {
            println!("play #{} ({}): {}", 1, p.hosts, p.name);
            for t in &p.tasks {
                let tags = if t.tags.is_empty() {
                    String::new()
                } else {
                    format!("  TAGS: [{}]", t.tags.join(", "))
                };
                println!("    {}{tags}", t.name);
            }
        }
        return Ok(());
    }
    if args.list_hosts {
        for p in &plays {
            let t = args.fleet.targets(&p.hosts)?;
            println!("play ({}): {} host(s)", p.hosts, t.hosts.len());
            for h in t.hosts {
                println!("    {h}");
            }
        }
        return Ok(());
    }
    let opts = Arc::new(RunOptions {
        playbook: args.playbook.clone(),
        policy_dir: policies,
        extra_vars: vars,
        check: args.check,
        diff: args.diff,
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
        limits,
    });
    let rt = runtime()?;
    let mut all: Vec<(String, Outcome)> = Vec::new();
    for (index, play) in plays.iter().enumerate() {
        let targets = args.fleet.targets(&play.hosts)?;
        if output == Output::Text {
            eprintln!(
                "PLAY [{}] on {} host(s){}",
                play.name,
                targets.hosts.len(),
                if args.check { " [CHECK MODE]" } else { "" }
            );
        }
        let fleet_opts = FleetOptions {
            forks: args.fleet.forks,
            serial: play
                .serial
                .iter()
                .map(|s| match s {
                    Serial::Count(n) => crate::fleet::Serial::Count(*n),
                    Serial::Percent(p) => crate::fleet::Serial::Percent(*p),
                })
                .collect(),
            max_fail_percentage: play.max_fail_percentage,
        };
        let opts = opts.clone();
        let outcomes = run_targets(
            &args.fleet,
            &rt,
            targets,
            fleet_opts,
            output,
            move |s, conn, hv, events| run_play_on_host(index, s, conn, hv, opts.clone(), events),
        )?;
        all.extend(outcomes);
    }
    if output == Output::Text {
        let lines: Vec<&str> = all
            .iter()
            .filter_map(|(_, o)| o.data.as_ref()?.get("report")?.as_array())
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !lines.is_empty() {
            println!(
                "{}",
                if args.check {
                    "PLAN (nothing was changed)"
                } else {
                    "CHANGES"
                }
            );
            for l in lines {
                println!("  {l}");
            }
        }
        for (host, o) in &all {
            if o.status == crate::fleet::Status::Failed
                || o.status == crate::fleet::Status::Unreachable
            {
                println!("{host}: {}", o.message);
            }
        }
    }
    let (all, code) = finish_run(all, output)?;
    finish(&all, code, output)
}
