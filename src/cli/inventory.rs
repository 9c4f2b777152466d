//! `migfleet inventory -i INV --list | --graph [GROUP] | --list-hosts [--limit P] | --host H`:
//! the inventory as Ansible reads it (same JSON and graph as `ansible-inventory`).

use super::fleet_args::InventoryLimits;
use crate::error::Failure;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["list", "graph", "list_hosts", "host"])))]
pub struct Args {
    /// Inventory sources (see `migfleet ping --help`); without -i, where Ansible looks
    /// ($ANSIBLE_INVENTORY, ansible.cfg, /etc/ansible/hosts).
    #[arg(short = 'i', long = "inventory", value_name = "INV")]
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
    #[command(flatten, next_help_heading = "Inventory limits")]
    pub inventory_limits: InventoryLimits,
}

pub fn exec(args: Args) -> Result<(), Failure> {
    let sources = super::fleet_args::inventory_sources(&args.inventory)?;
    let inv = args.inventory_limits.load(&sources)?;
    // Byte for byte what `ansible-inventory` prints (sorted keys, 4 spaces, text as is).
    if args.list {
        return crate::report::write_stdout(&format!(
            "{}\n",
            crate::inventory::python_json(&inv.list_json())
        ));
    }
    if let Some(root) = &args.graph {
        // Written in pieces: a deep graph's text grows with the square of its depth.
        let mut buf = String::new();
        let mut written = Ok(());
        inv.graph_lines(Some(root), |line| {
            buf.push_str(line);
            if buf.len() >= 1 << 16 {
                written = crate::report::write_stdout(&buf);
                buf.clear();
            }
            written.is_ok()
        })
        .map_err(|e| Failure::options(e.to_string()))?;
        written?;
        return crate::report::write_stdout(&buf);
    }
    if let Some(h) = &args.host {
        if !inv.hosts().contains(h) {
            return Err(Failure::options(format!("no host `{h}` in the inventory")));
        }
        return crate::report::write_stdout(&format!(
            "{}\n",
            crate::inventory::python_json(&serde_json::Value::Object(inv.host_vars(h)))
        ));
    }
    let hosts = inv
        .select(args.limit.as_deref().unwrap_or("all"))
        .map_err(|e| Failure::options(e.to_string()))?;
    for h in hosts {
        crate::outln!("{h}")?;
    }
    Ok(())
}
