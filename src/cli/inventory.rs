//! `migfleet inventory -i INV --list | --graph [GROUP] | --list-hosts [--limit P] | --host H`:
//! the inventory as Ansible reads it (same JSON and graph as `ansible-inventory`).

use crate::error::Failure;
use crate::inventory::Inventory;
use crate::report::print_json;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["list", "graph", "list_hosts", "host"])))]
pub struct Args {
    /// Inventory sources (see `migfleet ping --help`).
    #[arg(short = 'i', long = "inventory", required = true, value_name = "INV")]
    pub inventory: Vec<PathBuf>,
    /// Print all groups, hosts and `_meta.hostvars` as `ansible-inventory --list` does.
    #[arg(long)]
    pub list: bool,
    /// Print the group tree as `ansible-inventory --graph` does, optionally from GROUP.
    #[arg(long, value_name = "GROUP", num_args = 0..=1, default_missing_value = "all")]
    pub graph: Option<String>,
    /// Print the hosts matching --limit (default: all), one per line.
    #[arg(long)]
    pub list_hosts: bool,
    /// Print one host's merged variables.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Host pattern for --list-hosts.
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub limit: Option<String>,
}

pub fn exec(args: Args) -> Result<(), Failure> {
    let inv = Inventory::load(&args.inventory).map_err(|e| Failure::parse(e.to_string()))?;
    if args.list {
        return print_json(&inv.list_json());
    }
    if let Some(root) = &args.graph {
        let text = inv
            .graph(Some(root))
            .map_err(|e| Failure::options(e.to_string()))?;
        crate::out!("{text}")?;
        return Ok(());
    }
    if let Some(h) = &args.host {
        if !inv.hosts().contains(h) {
            return Err(Failure::options(format!("no host `{h}` in the inventory")));
        }
        return print_json(&inv.host_vars(h));
    }
    let hosts = inv
        .select(args.limit.as_deref().unwrap_or("all"))
        .map_err(|e| Failure::options(e.to_string()))?;
    for h in hosts {
        crate::outln!("{h}")?;
    }
    Ok(())
}
