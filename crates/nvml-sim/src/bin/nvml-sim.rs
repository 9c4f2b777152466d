//! `nvml-sim`: create and poke the simulated NVML host (the state file the
//! `libnvidia_ml_sim.so` library serves): init, processes, reset, reboot, error injection,
//! inspection of the state and the call log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use nvidia_ml_sim::hardware::{MODELS, Model};
use nvidia_ml_sim::sim::new_state;
use nvidia_ml_sim::state::{Injection, STATE_ENV, State, Store};

/// Simulated NVIDIA host for migfleet tests and demos.
///
/// The state file is what `libnvidia_ml_sim.so` reads on every NVML call (set
/// NVML_SIM_STATE=FILE for the process that loads it). Every `--state FILE` defaults to
/// $NVML_SIM_STATE.
#[derive(Parser)]
#[command(name = "nvml-sim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct StateArg {
    /// State file (default: $NVML_SIM_STATE).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
}

impl StateArg {
    fn store(&self) -> Result<Store, String> {
        match (&self.state, std::env::var_os(STATE_ENV)) {
            (Some(p), _) => Ok(Store::new(p)),
            (None, Some(p)) => Ok(Store::new(p)),
            (None, None) => Err(format!(
                "no state file: pass --state FILE or set {STATE_ENV}"
            )),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a new host: `--model M --gpus N` pairs, in order (mixed models allowed).
    Init {
        #[command(flatten)]
        state: StateArg,
        /// GPU model key (repeatable; paired in order with --gpus). Known: A30-24GB,
        /// A100-40GB, A100-80GB, H100-80GB, H100-NVL-94GB, H100-96GB, H20-96GB,
        /// PG506-96GB, H200-141GB, GH200-144GB, B200-180GB, GB200-186GB, B300-288GB,
        /// GB300-288GB, RTX-PRO-6000-96GB, RTX-PRO-5000-48GB, RTX-PRO-4500-32GB, L4.
        #[arg(long = "model", required = true, value_name = "M")]
        models: Vec<String>,
        /// Number of GPUs of the matching --model (repeatable).
        #[arg(long = "gpus", required = true, value_name = "N")]
        gpus: Vec<u32>,
        /// Driver version the host reports (default 580.95.05-sim). Profiles a driver is
        /// too old for are not offered, as on real hosts (A100's double-memory 1g needs
        /// R525).
        #[arg(long, value_name = "VERSION")]
        driver: Option<String>,
        /// Overwrite an existing state file.
        #[arg(long)]
        force: bool,
    },
    /// Add or remove a simulated process holding a GPU context.
    Process {
        #[command(subcommand)]
        action: ProcessCmd,
    },
    /// GPU reset (stands in for `nvidia-smi --gpu-reset -i ...`): pending MIG mode becomes
    /// current, all instances vanish. Fails if a process runs on a selected GPU.
    Reset {
        #[command(flatten)]
        state: StateArg,
        /// GPU index (repeatable).
        #[arg(long = "gpu", value_name = "I")]
        gpus: Vec<u32>,
        /// PCI bus id as NVML formats it, e.g. 00000000:07:00.0 (repeatable).
        #[arg(long = "bus-id", value_name = "ID")]
        bus_ids: Vec<String>,
        /// nvidia-smi style: comma-separated bus ids or indices.
        #[arg(short = 'i', long = "id", value_delimiter = ',', value_name = "IDS")]
        ids: Vec<String>,
        /// Accepted and ignored, for `nvidia-smi --gpu-reset` compatibility.
        #[arg(short = 'r', long = "gpu-reset", hide = true)]
        gpu_reset: bool,
    },
    /// Host reboot: new boot id; processes and instances gone; Ampere keeps the pending MIG
    /// mode (it becomes current), Hopper/Blackwell lose MIG mode.
    Reboot {
        #[command(flatten)]
        state: StateArg,
        /// A fault: the pending MIG mode does not take effect at this boot (a platform
        /// that needs a cold boot or refuses the change); the GPU stays pending.
        #[arg(long)]
        pending_stays: bool,
    },
    /// Make the next K calls of an NVML function return an error code.
    Inject {
        #[command(flatten)]
        state: StateArg,
        /// Exported NVML function name, e.g. nvmlDeviceCreateGpuInstanceWithPlacement.
        #[arg(long, value_name = "NAME")]
        function: String,
        /// nvmlReturn_t to return (e.g. 23 = INSUFFICIENT_RESOURCES).
        #[arg(long, value_name = "N")]
        code: u32,
        /// How many calls fail.
        #[arg(long, default_value_t = 1, value_name = "K")]
        count: u32,
        /// Let this many calls succeed first (`--after 4`: the 5th call fails).
        #[arg(long, default_value_t = 0, value_name = "N")]
        after: u32,
    },
    /// Print the host: per GPU the model, MIG mode, instances and processes.
    Show {
        #[command(flatten)]
        state: StateArg,
        /// Print the raw state JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print the NVML call log (`<state>.calls`, one JSON object per line).
    Calls {
        #[command(flatten)]
        state: StateArg,
        /// Print only the number of (matching) calls.
        #[arg(long)]
        count_only: bool,
        /// Only calls of this function.
        #[arg(long, value_name = "NAME")]
        function: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProcessCmd {
    /// Start a process on a whole GPU or on a MIG device (--gi and --ci).
    Add {
        #[command(flatten)]
        state: StateArg,
        /// GPU index.
        #[arg(long, value_name = "I")]
        gpu: u32,
        /// GPU instance id.
        #[arg(long, requires = "ci", value_name = "G")]
        gi: Option<u32>,
        /// Compute instance id.
        #[arg(long, requires = "gi", value_name = "C")]
        ci: Option<u32>,
        /// Process id.
        #[arg(long, value_name = "P")]
        pid: u32,
        /// Used GPU memory, MiB.
        #[arg(long, default_value_t = 0, value_name = "MiB")]
        mem: u64,
        /// The pid is a real process: it leaves the GPU when that process ends.
        #[arg(long)]
        live: bool,
    },
    /// Stop a process.
    Remove {
        #[command(flatten)]
        state: StateArg,
        /// Process id.
        #[arg(long, value_name = "P")]
        pid: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvml-sim: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a mutation under the state lock; `f`'s error aborts without writing.
fn mutate(store: &Store, f: impl FnOnce(&mut State) -> Result<(), String>) -> Result<(), String> {
    store
        .update(|s| match f(s) {
            Ok(()) => (Ok(()), true),
            Err(e) => (Err(e), false),
        })
        .map_err(|e| e.to_string())?
}

fn run(cmd: Command) -> Result<(), String> {
    match cmd {
        Command::Init {
            state,
            models,
            gpus,
            driver,
            force,
        } => {
            if models.len() != gpus.len() {
                return Err(format!(
                    "--model and --gpus must come in pairs (got {} models, {} counts)",
                    models.len(),
                    gpus.len()
                ));
            }
            let mut spec = Vec::new();
            for (m, n) in models.iter().zip(gpus) {
                let model = Model::by_key(m).ok_or_else(|| {
                    let known: Vec<&str> = MODELS.iter().map(|m| m.key).collect();
                    format!("unknown model {m:?} (known: {})", known.join(", "))
                })?;
                spec.push((model, n));
            }
            let store = state.store()?;
            let mut st = new_state(&spec)?;
            st.driver_version = driver;
            store.create(&st, force).map_err(|e| e.to_string())?;
            println!(
                "created {} with {} GPU(s)",
                store.path().display(),
                st.gpus.len()
            );
            Ok(())
        }
        Command::Process { action } => match action {
            ProcessCmd::Add {
                state,
                gpu,
                gi,
                ci,
                pid,
                mem,
                live,
            } => {
                let place = gi.zip(ci);
                mutate(&state.store()?, |s| {
                    s.add_process(gpu, place, pid, mem)?;
                    if let Some(p) = s
                        .gpus
                        .iter_mut()
                        .flat_map(|g| g.processes.iter_mut())
                        .find(|p| p.pid == pid)
                    {
                        p.live = live;
                    }
                    Ok(())
                })
            }
            ProcessCmd::Remove { state, pid } => mutate(&state.store()?, |s| s.remove_process(pid)),
        },
        Command::Reset {
            state,
            gpus,
            bus_ids,
            ids,
            gpu_reset: _,
        } => {
            let store = state.store()?;
            mutate(&store, |s| {
                let mut selected: Vec<u32> = Vec::new();
                for i in gpus {
                    s.gpu(i).ok_or_else(|| format!("no GPU with index {i}"))?;
                    selected.push(i);
                }
                let by_bus = |s: &State, b: &str| {
                    s.gpu_by_bus_id(b)
                        .ok_or_else(|| format!("no GPU with PCI bus id {b}"))
                };
                for b in &bus_ids {
                    selected.push(by_bus(s, b)?);
                }
                for id in ids.iter().map(|x| x.trim()).filter(|x| !x.is_empty()) {
                    match id.parse::<u32>() {
                        Ok(i) => {
                            s.gpu(i).ok_or_else(|| format!("no GPU with index {i}"))?;
                            selected.push(i);
                        }
                        Err(_) => selected.push(by_bus(s, id)?),
                    }
                }
                if selected.is_empty() {
                    selected = s.gpus.iter().map(|g| g.index).collect();
                }
                selected.sort_unstable();
                selected.dedup();
                // Check every GPU first so a refused reset changes nothing.
                for i in &selected {
                    let g = s.gpu(*i).ok_or_else(|| format!("no GPU with index {i}"))?;
                    if !g.processes.is_empty() {
                        let pids: Vec<String> =
                            g.processes.iter().map(|p| p.pid.to_string()).collect();
                        return Err(format!(
                            "cannot reset GPU {i} ({}): in use by process(es) {}",
                            g.pci_bus_id,
                            pids.join(", ")
                        ));
                    }
                }
                for i in &selected {
                    if let Some(g) = s.gpu_mut(*i) {
                        g.reset().map_err(|pids| {
                            format!("cannot reset GPU {i}: in use by process(es) {pids:?}")
                        })?;
                    }
                }
                for i in &selected {
                    if let Some(g) = s.gpu(*i) {
                        println!("GPU {} ({}) was reset", g.index, g.pci_bus_id);
                    }
                }
                Ok(())
            })
        }
        Command::Reboot {
            state,
            pending_stays,
        } => mutate(&state.store()?, |s| {
            s.reboot(pending_stays);
            println!("rebooted; boot id {}", s.boot_id);
            Ok(())
        }),
        Command::Inject {
            state,
            function,
            code,
            count,
            after,
        } => {
            if !function.starts_with("nvml") {
                return Err(format!("{function:?} is not an NVML function name"));
            }
            mutate(&state.store()?, |s| {
                s.injections.push(Injection {
                    function,
                    code,
                    remaining: count,
                    skip: after,
                });
                Ok(())
            })
        }
        Command::Show { state, json } => {
            let st = state.store()?.load().map_err(|e| e.to_string())?;
            if json {
                let text = serde_json::to_string_pretty(&st).map_err(|e| e.to_string())?;
                println!("{text}");
            } else {
                print!("{}", summary(&st));
            }
            Ok(())
        }
        Command::Calls {
            state,
            count_only,
            function,
        } => {
            let calls = state.store()?.read_calls().map_err(|e| e.to_string())?;
            let matching: Vec<&serde_json::Value> = calls
                .iter()
                .filter(|c| {
                    function
                        .as_deref()
                        .is_none_or(|f| c.get("fn").and_then(|v| v.as_str()) == Some(f))
                })
                .collect();
            if count_only {
                println!("{}", matching.len());
            } else {
                for c in matching {
                    println!("{c}");
                }
            }
            Ok(())
        }
    }
}

fn mode(m: u32) -> &'static str {
    if m == 1 { "enabled" } else { "disabled" }
}

/// Human-readable host summary.
fn summary(s: &State) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "boot id {}", s.boot_id);
    for g in &s.gpus {
        let model = Model::by_key(&g.model);
        let name = model.map(|m| m.name).unwrap_or("unknown model");
        let _ = writeln!(
            out,
            "GPU {} {} [{}] {} {}",
            g.index, g.model, name, g.pci_bus_id, g.uuid
        );
        if model.is_some_and(|m| m.mig_capable()) {
            let _ = writeln!(
                out,
                "  MIG mode: current {}, pending {}",
                mode(g.mig_mode_current),
                mode(g.mig_mode_pending)
            );
        } else {
            let _ = writeln!(out, "  MIG: not supported");
        }
        let mut gis: Vec<_> = g.gpu_instances.iter().collect();
        gis.sort_by_key(|gi| gi.id);
        for gi in gis {
            let pname = model
                .and_then(|m| m.profile_by_id(gi.profile_id))
                .map(|p| p.name)
                .unwrap_or("?");
            let _ = writeln!(
                out,
                "  GI {} {} (profile id {}) placement {}:{}",
                gi.id, pname, gi.profile_id, gi.start, gi.size
            );
            for ci in &gi.compute_instances {
                let _ = writeln!(
                    out,
                    "    CI {} (profile id {}) placement {}:{} {}",
                    ci.id, ci.profile_id, ci.start, ci.size, ci.uuid
                );
            }
        }
        for p in &g.processes {
            let place = match (p.gpu_instance_id, p.compute_instance_id) {
                (Some(gi), Some(ci)) => format!("GI {gi} CI {ci}"),
                _ => "whole GPU".to_string(),
            };
            let _ = writeln!(
                out,
                "  process {} {} MiB on {place}",
                p.pid, p.used_memory_mib
            );
        }
    }
    for i in &s.injections {
        let _ = writeln!(
            out,
            "injection: {} -> {} ({} left)",
            i.function, i.code, i.remaining
        );
    }
    out
}
