//! The options every fleet command shares: inventory, limit, forks, host keys, agent
//! builds, verbosity. Defined once so `--help` reads the same everywhere; turned into a
//! [`Fleet`] (loaded once per run) here.

use crate::ansible_cfg::AnsibleConfig;
use crate::error::Failure;
use crate::fleet::Fleet;
use crate::fleet::executor::DEFAULT_FORKS;
use crate::fleet::session::Context;
use crate::inventory::{self, Inventory};
use crate::transport::push::AgentBuilds;
use crate::transport::ssh::{KnownHosts, SshOptions};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    /// Inventory: an Ansible YAML or INI file, an executable printing Ansible's JSON, or a
    /// directory of them. Repeat for several; later ones win. Without -i: $ANSIBLE_INVENTORY,
    /// else `inventory` in ansible.cfg, else /etc/ansible/hosts, as Ansible looks.
    #[arg(short = 'i', long = "inventory", value_name = "INV")]
    pub inventory: Vec<PathBuf>,
    /// Restrict to hosts matching this Ansible pattern (`gpu_h100:!maint`, `~gpu0[1-4]`,
    /// `@retry.txt`).
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Hosts worked on at once (1 to 100000) [default: `forks` in ansible.cfg or
    /// $ANSIBLE_FORKS, else 64].
    #[arg(short = 'f', long, value_parser = parse_forks)]
    pub forks: Option<usize>,
    /// known_hosts file to verify host keys against [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Record the keys of hosts not in known_hosts (a changed key is still refused).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// OpenSSH client configuration to read (`Host` patterns, HostName, User, Port,
    /// IdentityFile, ProxyJump, ...) [default: ~/.ssh/config]; inventory variables win
    /// over it, as in Ansible.
    #[arg(short = 'F', long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Directory with portable agent builds (`migfleet-agent-<arch>-linux-gnu`, from
    /// scripts/build-agent.sh) [default: the agent beside this executable].
    #[arg(long, value_name = "DIR")]
    pub agent_dir: Option<PathBuf>,
    /// SSH connect timeout, seconds (for the TCP connection and the handshake, and again
    /// for authentication) [default: `timeout` in ansible.cfg or $ANSIBLE_TIMEOUT, else 10].
    #[arg(short = 'T', long, value_parser = parse_day_seconds)]
    pub timeout: Option<u64>,
    /// SSH user for hosts whose inventory names none [default: `remote_user` in
    /// ansible.cfg or $ANSIBLE_REMOTE_USER].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Private key to try for every host (after the inventory's own) [default:
    /// `private_key_file` in ansible.cfg or $ANSIBLE_PRIVATE_KEY_FILE].
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// More detail: `-v` shows each NVML operation as it runs and what the agents write
    /// to stderr.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten, next_help_heading = "Inventory limits")]
    pub inventory_limits: InventoryLimits,
}

/// What an inventory may ask of the controller; shared by every command that reads one.
#[derive(Debug, Clone, clap::Args)]
pub struct InventoryLimits {
    /// The most hosts the inventory may define (1 to 100000000); a host range that
    /// would go past it is refused before it is expanded.
    #[arg(long, value_name = "N", default_value_t = inventory::DEFAULT_MAX_HOSTS, value_parser = parse_max_hosts)]
    pub max_hosts: usize,
    /// Seconds an executable inventory may run, all its calls together (1 to 86400);
    /// past it, it is stopped with whatever it started.
    #[arg(long, value_name = "SECONDS", default_value_t = inventory::DEFAULT_SCRIPT_TIMEOUT.as_secs(), value_parser = parse_day_seconds)]
    pub inventory_timeout: u64,
    /// File holding the Ansible Vault password, or an executable printing it, for
    /// vault-encrypted vars files and `!vault` values; repeat for several [also:
    /// `vault_password_file` in ansible.cfg, $ANSIBLE_VAULT_PASSWORD_FILE].
    #[arg(
        long = "vault-password-file",
        value_name = "FILE",
        help_heading = "Vault"
    )]
    pub vault_password_files: Vec<PathBuf>,
    /// A vault id, `[LABEL@]FILE`, as Ansible's `--vault-id`: values labelled LABEL try
    /// its password first; repeat for several [also: `vault_identity_list` in ansible.cfg,
    /// $ANSIBLE_VAULT_IDENTITY_LIST].
    #[arg(long = "vault-id", value_name = "[LABEL@]FILE", help_heading = "Vault")]
    pub vault_ids: Vec<String>,
}

impl InventoryLimits {
    pub fn limits(&self) -> inventory::Limits {
        inventory::Limits {
            max_hosts: self.max_hosts,
            script_timeout: Duration::from_secs(self.inventory_timeout),
        }
    }

    /// Loads the sources within these limits, with the vault passwords.
    pub fn load(&self, sources: &[PathBuf]) -> Result<Inventory, Failure> {
        Inventory::load_vaulted(sources, self.limits(), self.vault()?)
            .map_err(|e| Failure::parse(e.to_string()))
    }

    /// The vault passwords: `--vault-id`s and `--vault-password-file`s, then ansible.cfg's
    /// and the environment's. Read once per process (a password script runs once).
    pub fn vault(&self) -> Result<inventory::vault::Secrets, Failure> {
        static SECRETS: std::sync::OnceLock<Result<inventory::vault::Secrets, String>> =
            std::sync::OnceLock::new();
        let cfg = ansible_config()?;
        SECRETS
            .get_or_init(|| {
                let mut ids = self.vault_ids.clone();
                ids.extend(cfg.vault_identity_list.iter().cloned());
                let mut files = self.vault_password_files.clone();
                if let Some(f) = &cfg.vault_password_file
                    && !files.contains(f)
                {
                    files.push(f.clone());
                }
                inventory::vault::load_secrets(&ids, &files)
            })
            .clone()
            .map_err(Failure::options)
    }
}

/// ansible.cfg and the ANSIBLE_* variables, read once per process.
pub fn ansible_config() -> Result<&'static AnsibleConfig, Failure> {
    static CFG: std::sync::OnceLock<Result<AnsibleConfig, String>> = std::sync::OnceLock::new();
    CFG.get_or_init(AnsibleConfig::load)
        .as_ref()
        .map_err(|e| Failure::options(e.clone()))
}

/// The inventory sources: `-i` as given, else where Ansible would look
/// ($ANSIBLE_INVENTORY, ansible.cfg, /etc/ansible/hosts); none is an error that says how
/// to give one.
pub fn inventory_sources(given: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    if !given.is_empty() {
        return Ok(given.to_vec());
    }
    let cfg = ansible_config()?;
    if !cfg.inventory.is_empty() {
        return Ok(cfg.inventory.clone());
    }
    let default = PathBuf::from(crate::ansible_cfg::DEFAULT_INVENTORY);
    if default.exists() {
        return Ok(vec![default]);
    }
    let looked = match &cfg.file {
        Some(f) => format!("{} names no inventory", f.display()),
        None => "no ansible.cfg found ($ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg)".into(),
    };
    Err(Failure::options(format!(
        "no inventory: pass -i INV (a file, a directory or an executable), set ANSIBLE_INVENTORY, or put `inventory = PATH` under [defaults] in ansible.cfg ({looked}; /etc/ansible/hosts does not exist)"
    ))
    .hint("inventory/demo.yml runs on this machine against simulated GPUs"))
}

/// SSH connect timeout when neither -T nor ansible.cfg gives one (Ansible's is 10 too).
pub const DEFAULT_TIMEOUT_SECS: u64 = 10;

/// A hundred times the default: a controller's memory, not a policy, is the limit there.
const MAX_MAX_HOSTS: usize = 100_000_000;

fn parse_max_hosts(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_MAX_HOSTS).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be between 1 and {MAX_MAX_HOSTS}")),
        Err(e) => Err(e.to_string()),
    }
}

/// The most hosts worked on at once: far above any controller's file descriptors, and
/// far below the point where the concurrency limit itself would overflow.
pub const MAX_FORKS: usize = 100_000;

/// `-f N`: a positive number of hosts (0 would run nothing and wait forever).
fn parse_forks(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) if n > MAX_FORKS => Err(format!("must be at most {MAX_FORKS}")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `-T SECONDS`, `--inventory-timeout SECONDS`: 1 second to a day.
fn parse_day_seconds(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if (1..=86_400).contains(&n) => Ok(n),
        Ok(_) => Err("must be between 1 and 86400 seconds".into()),
        Err(e) => Err(e.to_string()),
    }
}

impl FleetArgs {
    /// Loads the inventory (running dynamic inventories once), known_hosts and the agent
    /// builds: everything a run that reaches hosts shares.
    pub fn fleet(&self) -> Result<Fleet, Failure> {
        Ok(self.hosts()?.with_context(self.context()?))
    }

    /// The inventory and `--limit` only, for commands that list hosts without reaching
    /// them (no agent build or known_hosts needed).
    pub fn hosts(&self) -> Result<Fleet, Failure> {
        let sources = inventory_sources(&self.inventory)?;
        let inv = self.inventory_limits.load(&sources)?;
        let cfg = ansible_config()?;
        let forks = match self.forks {
            Some(f) => f,
            None => match cfg.forks {
                Some(f) => parse_forks(&f.to_string()).map_err(|e| {
                    Failure::options(format!("forks from ansible.cfg or ANSIBLE_FORKS {e}"))
                })?,
                None => DEFAULT_FORKS,
            },
        };
        Fleet::new(inv, self.limit.as_deref(), forks, self.verbose)
    }

    /// known_hosts and the agent builds (each build hashed once).
    pub fn context(&self) -> Result<Context, Failure> {
        let mut ssh = SshOptions::default();
        if let Some(k) = &self.known_hosts {
            ssh.known_hosts = k.clone();
        }
        ssh.accept_new = self.accept_new_host_keys;
        if let Some(f) = &self.ssh_config {
            if !f.is_file() {
                return Err(Failure::options(format!(
                    "--ssh-config {}: no such file",
                    f.display()
                )));
            }
            ssh.config_file = Some(f.clone());
        }
        let cfg = ansible_config()?;
        let timeout = match self.timeout.or(cfg.timeout) {
            Some(t) => parse_day_seconds(&t.to_string()).map_err(|e| {
                Failure::options(format!("timeout from ansible.cfg or ANSIBLE_TIMEOUT {e}"))
            })?,
            None => DEFAULT_TIMEOUT_SECS,
        };
        ssh.connect_timeout = Duration::from_secs(timeout);
        if let Some(k) = self.private_key.as_ref().or(cfg.private_key_file.as_ref()) {
            ssh.identity_files.insert(0, k.clone());
        }
        ssh.cfg_args = crate::transport::ssh::connect::CfgArgs {
            ssh_args: cfg.ssh_args.clone(),
            common: cfg.ssh_common_args.clone(),
            extra: cfg.ssh_extra_args.clone(),
        };
        ssh.default_port = cfg.remote_port;
        if cfg.host_key_checking == Some(false) && !ssh.accept_new {
            // Ansible would then connect to a host whose key changed; migfleet never does.
            crate::report::warn_once(
                "host_key_checking = False (ansible.cfg or ANSIBLE_HOST_KEY_CHECKING) is taken as \
                 --accept-new-host-keys: unknown host keys are recorded, a changed one is still refused",
            );
            ssh.accept_new = true;
        }
        let known =
            KnownHosts::load(&ssh.known_hosts).map_err(|e| Failure::options(e.to_string()))?;
        let builds = AgentBuilds::discover(self.agent_dir.as_deref()).map_err(|e| {
            Failure::options(e.to_string())
                .hint("build the agent (`cargo build -p migfleet-agent`) or pass --agent-dir")
        })?;
        Ok(Context {
            ssh,
            known_hosts: std::sync::Arc::new(known),
            builds: std::sync::Arc::new(builds),
            default_user: self.user.clone().or_else(|| cfg.remote_user.clone()),
        })
    }
}
