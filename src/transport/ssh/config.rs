//! SSH settings as OpenSSH users configured them: `~/.ssh/config` (or `--ssh-config FILE`,
//! or `-F` in the inventory's SSH arguments), read with the maintained `ssh2-config`
//! parser, and Ansible's `ansible_ssh_common_args` / `ansible_ssh_extra_args` (`-o K=V`,
//! `-J`, `-i`, `-p`, `-l`, `-F`). Precedence as Ansible has it: inventory variables, then
//! the SSH arguments, then ssh_config, then migfleet's defaults. An option migfleet does
//! not act on is a warning naming it, never silently dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ssh2_config::{ParseRule, SshConfig};

/// One SSH hop: a jump host or the target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hop {
    /// The name to show and look up (`jump`, `bastion.example.com`).
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
}

/// What ssh_config and the SSH arguments say about one host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    pub hostname: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_files: Vec<PathBuf>,
    pub identities_only: bool,
    pub identity_agent: Option<super::IdentityAgent>,
    pub known_hosts_file: Option<PathBuf>,
    /// `StrictHostKeyChecking`: `Some(true)` refuse unknown keys, `Some(false)` record
    /// them (`accept-new`, and `no`, which migfleet treats as `accept-new`: a changed key
    /// is always refused).
    pub strict: Option<bool>,
    /// `StrictHostKeyChecking no` was the value that won: said in a warning, since
    /// OpenSSH would also connect to a host whose key changed and migfleet does not.
    pub strict_no: bool,
    pub connect_timeout: Option<Duration>,
    pub server_alive_interval: Option<Duration>,
    /// `ProxyJump` hops, in order (empty: direct; `none` clears it).
    pub proxy_jump: Option<Vec<String>>,
    /// Options given that migfleet does not act on: warned about by name.
    pub unsupported: Vec<String>,
}

/// The ssh_config options migfleet acts on; any other in a matching `Host` block is
/// named in a warning.
const HANDLED: &[&str] = &[
    "host",
    "hostname",
    "port",
    "user",
    "identityfile",
    "identitiesonly",
    "identityagent",
    "userknownhostsfile",
    "stricthostkeychecking",
    "connecttimeout",
    "serveraliveinterval",
    "proxyjump",
];

/// Options that change nothing migfleet does and need no warning.
const HARMLESS: &[&str] = &[
    "addkeystoagent",
    "compression",
    "forwardagent",
    "forwardx11",
    "loglevel",
    "serveralivecountmax",
    "tcpkeepalive",
    "controlmaster",
    "controlpath",
    "controlpersist",
    "hashknownhosts",
    "visualhostkey",
    "requesttty",
    "sendenv",
    "usekeychain",
    "ignoreunknown",
    "preferredauthentications",
    "passwordauthentication",
    "pubkeyauthentication",
    "kbdinteractiveauthentication",
    "gssapiauthentication",
    "checkhostip",
    "updatehostkeys",
];

/// A parsed ssh_config file, cached per path for the process.
pub fn load(path: &Path) -> Result<Arc<SshConfig>, String> {
    static CACHE: OnceLock<Mutex<BTreeMap<PathBuf, Arc<SshConfig>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(c) = cache.lock().ok().and_then(|c| c.get(path).cloned()) {
        return Ok(c);
    }
    let text = crate::input::read_text(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = SshConfig::default()
        .parse(
            &mut text.as_bytes(),
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let cfg = Arc::new(cfg);
    if let Ok(mut c) = cache.lock() {
        c.insert(path.to_path_buf(), cfg.clone());
    }
    Ok(cfg)
}

/// The user's ssh_config (`~/.ssh/config`) if it exists.
pub fn default_path() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("HOME")?)
        .join(".ssh")
        .join("config");
    p.is_file().then_some(p)
}

fn yes(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Some(true),
        "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

fn expand(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(h)) => PathBuf::from(h).join(rest),
        _ => PathBuf::from(p),
    }
}

/// `IdentityAgent`: `none`, `SSH_AUTH_SOCK`, `$VARIABLE` (a socket path in the
/// environment) or a socket path.
fn identity_agent(v: &str) -> super::IdentityAgent {
    use super::IdentityAgent;
    if v.eq_ignore_ascii_case("none") {
        return IdentityAgent::Off;
    }
    if v == "SSH_AUTH_SOCK" {
        return IdentityAgent::Env;
    }
    if let Some(var) = v.strip_prefix('$') {
        return std::env::var_os(var.trim_start_matches('{').trim_end_matches('}'))
            .map_or(IdentityAgent::Off, |p| {
                IdentityAgent::Socket(PathBuf::from(p))
            });
    }
    IdentityAgent::Socket(expand(v))
}

fn jumps(v: &str) -> Vec<String> {
    if v.trim().eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Applies one `Key value` option (from ssh_config or `-o`), first value winning as in
/// OpenSSH. Returns false when migfleet does not act on the option.
fn apply(s: &mut Settings, key: &str, value: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let v = value.trim().trim_matches('"');
    match key.as_str() {
        "hostname" => {
            s.hostname.get_or_insert_with(|| v.to_string());
        }
        "port" => {
            if s.port.is_none() {
                s.port = v.parse().ok();
            }
        }
        "user" => {
            s.user.get_or_insert_with(|| v.to_string());
        }
        "identityfile" => s.identity_files.push(expand(v)),
        "identitiesonly" => s.identities_only |= yes(v).unwrap_or(false),
        "identityagent" => {
            s.identity_agent.get_or_insert_with(|| identity_agent(v));
        }
        "userknownhostsfile" => {
            // OpenSSH takes the first of a space-separated list.
            if let Some(first) = v.split_whitespace().next() {
                s.known_hosts_file.get_or_insert_with(|| expand(first));
            }
        }
        "stricthostkeychecking" => {
            if s.strict.is_none() {
                let v = v.to_ascii_lowercase();
                s.strict_no = matches!(v.as_str(), "no" | "off" | "false");
                s.strict = Some(!(s.strict_no || v == "accept-new"));
            }
        }
        "connecttimeout" => {
            if s.connect_timeout.is_none() {
                s.connect_timeout = v.parse().ok().map(Duration::from_secs);
            }
        }
        "serveraliveinterval" => {
            if s.server_alive_interval.is_none() {
                s.server_alive_interval =
                    v.parse().ok().filter(|n| *n > 0).map(Duration::from_secs);
            }
        }
        "proxyjump" => {
            s.proxy_jump.get_or_insert_with(|| jumps(v));
        }
        k if HARMLESS.contains(&k) => {}
        _ => return false,
    }
    true
}

/// The settings ssh_config gives `alias` (first match wins, as in OpenSSH).
pub fn from_config(cfg: &SshConfig, alias: &str, into: &mut Settings) {
    let p = cfg.query(alias);
    if let Some(h) = &p.host_name {
        apply(into, "hostname", h);
    }
    if let Some(port) = p.port {
        apply(into, "port", &port.to_string());
    }
    if let Some(u) = &p.user {
        apply(into, "user", u);
    }
    for f in p.identity_file.iter().flatten() {
        into.identity_files.push(f.clone());
    }
    if let Some(t) = p.connect_timeout {
        into.connect_timeout.get_or_insert(t);
    }
    if let Some(t) = p.server_alive_interval
        && !t.is_zero()
    {
        into.server_alive_interval.get_or_insert(t);
    }
    if let Some(j) = &p.proxy_jump {
        into.proxy_jump.get_or_insert_with(|| jumps(&j.join(",")));
    }
    // What the parser keeps aside (its "unsupported" and unknown options), first match
    // winning: some migfleet handles itself, the rest are named.
    for host in cfg.intersecting_hosts(alias) {
        let fields = host
            .params
            .unsupported_fields
            .iter()
            .chain(host.params.ignored_fields.iter());
        for (k, args) in fields {
            let key = k.to_ascii_lowercase();
            if HANDLED.contains(&key.as_str()) || HARMLESS.contains(&key.as_str()) {
                apply(into, &key, &args.join(" "));
            } else if !into.unsupported.contains(&key) {
                into.unsupported.push(key);
            }
        }
    }
}

/// Parses `ansible_ssh_common_args` + `ansible_ssh_extra_args` (as the shell would split
/// them) into settings; returns an ssh_config file named with `-F`, if any.
pub fn from_args(args: &str, into: &mut Settings) -> Result<Option<PathBuf>, String> {
    let words =
        shlex::split(args).ok_or_else(|| format!("cannot split `{args}` as a shell would"))?;
    let mut file = None;
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        let (flag, inline) = if w.len() > 2 && w.starts_with('-') && !w.starts_with("--") {
            (w[..2].to_string(), Some(w[2..].to_string()))
        } else {
            (w.clone(), None)
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("`{name}` needs a value")),
            }
        };
        match flag.as_str() {
            "-o" => {
                let o = value("-o")?;
                let (k, v) = o
                    .split_once('=')
                    .or_else(|| o.split_once(' '))
                    .ok_or_else(|| format!("`-o {o}`: expected Key=Value"))?;
                if !apply(into, k.trim(), v) {
                    into.unsupported.push(format!("-o {}", k.trim()));
                }
            }
            "-J" => {
                let v = value("-J")?;
                into.proxy_jump.get_or_insert_with(|| jumps(&v));
            }
            "-i" => into.identity_files.push(expand(&value("-i")?)),
            "-p" => {
                let v = value("-p")?;
                apply(into, "port", &v);
            }
            "-l" => {
                let v = value("-l")?;
                apply(into, "user", &v);
            }
            "-F" => file = Some(expand(&value("-F")?)),
            // Flags that change nothing for migfleet's connections.
            "-4" | "-6" | "-A" | "-a" | "-C" | "-q" | "-T" | "-t" | "-v" | "-vv" | "-vvv"
            | "-x" => {}
            // ssh's other flags that take a value: named, with the value skipped.
            f @ ("-b" | "-B" | "-c" | "-D" | "-E" | "-e" | "-I" | "-L" | "-m" | "-O" | "-Q"
            | "-R" | "-S" | "-W" | "-w") => {
                value(f)?;
                into.unsupported.push(f.to_string());
            }
            other => into.unsupported.push(other.to_string()),
        }
    }
    Ok(file)
}

/// The SSH target for an inventory host: its inventory variables first, then its SSH
/// arguments, then ssh_config (the file `-F` names, else `opts.config_file`), then the
/// defaults; jump hosts resolved through ssh_config too. Options migfleet does not act on
/// are warned about, once each.
pub fn target_for(
    conn: &crate::inventory::Connection,
    user: String,
    opts: &super::SshOptions,
) -> Result<super::Target, String> {
    let mut s = Settings::default();
    // In the order Ansible puts them on ssh's command line (a first value wins there, as
    // here): ansible.cfg's ssh_args, then the common and extra arguments, the inventory's
    // replacing ansible.cfg's.
    let cfg = &opts.cfg_args;
    let parts = [
        ("ssh_args (ansible.cfg)", cfg.ssh_args.as_ref()),
        match &conn.ssh_common_args {
            Some(a) => ("ansible_ssh_common_args", Some(a)),
            None => ("ssh_common_args (ansible.cfg)", cfg.common.as_ref()),
        },
        match &conn.ssh_extra_args {
            Some(a) => ("ansible_ssh_extra_args", Some(a)),
            None => ("ssh_extra_args (ansible.cfg)", cfg.extra.as_ref()),
        },
    ];
    let mut file = None;
    for (what, args) in parts {
        if let Some(args) = args {
            let f = from_args(args, &mut s).map_err(|e| format!("{what}: {e}"))?;
            file = file.or(f);
        }
    }
    let file = file.or_else(|| opts.config_file.clone());
    let config = match &file {
        Some(f) => Some(load(f)?),
        None => None,
    };
    if let Some(c) = &config {
        from_config(c, &conn.address, &mut s);
    }
    for u in &s.unsupported {
        crate::report::warn_once(&format!(
            "ssh option `{u}` (for {}) is not supported by migfleet; ignored",
            conn.host
        ));
    }
    if s.strict_no {
        crate::report::warn_once(&format!(
            "`StrictHostKeyChecking no` (for {}) is taken as `accept-new`: unknown host keys \
             are recorded, a changed one is still refused",
            conn.host
        ));
    }
    let jumps = s
        .proxy_jump
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|spec| {
            let (juser, host, port) = parse_jump(spec);
            let mut js = Settings::default();
            if let Some(c) = &config {
                from_config(c, &host, &mut js);
            }
            Hop {
                name: host.clone(),
                address: js.hostname.clone().unwrap_or(host),
                port: port.or(js.port).unwrap_or(22),
                user: juser.or(js.user),
                identity_files: js.identity_files,
            }
        })
        .collect();
    Ok(super::Target {
        host: conn.host.clone(),
        address: s.hostname.clone().unwrap_or_else(|| conn.address.clone()),
        port: if conn.port_set {
            conn.port
        } else {
            opts.default_port.or(s.port).unwrap_or(conn.port)
        },
        user: conn.user.clone().or(s.user.clone()).unwrap_or(user),
        key_file: conn.key_file.clone(),
        identity_files: s.identity_files,
        identities_only: s.identities_only,
        identity_agent: s.identity_agent.unwrap_or_default(),
        known_hosts: s.known_hosts_file,
        strict: s.strict,
        connect_timeout: s.connect_timeout,
        keepalive: s.server_alive_interval,
        jumps,
    })
}

/// Splits a `ProxyJump` entry, `[user@]host[:port]`.
pub fn parse_jump(spec: &str) -> (Option<String>, String, Option<u16>) {
    let (user, rest) = match spec.rsplit_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, spec),
    };
    // `[v6]:port` or `host:port`.
    if let Some(v6) = rest.strip_prefix('[')
        && let Some((addr, tail)) = v6.split_once(']')
    {
        let port = tail.strip_prefix(':').and_then(|p| p.parse().ok());
        return (user, addr.to_string(), port);
    }
    match rest.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (user, h.to_string(), p.parse().ok()),
        _ => (user, rest.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansible_cfg_arguments_and_port_yield_to_the_inventory() {
        let vars = |extra: &str| {
            let v: serde_json::Value =
                serde_json::from_str(&format!(r#"{{"ansible_host": "10.0.0.9"{extra}}}"#)).unwrap();
            crate::inventory::Connection::from_vars("gpu1", v.as_object().unwrap()).unwrap()
        };
        let mut opts = super::super::SshOptions {
            config_file: None,
            default_port: Some(2200),
            ..Default::default()
        };
        opts.cfg_args.ssh_args = Some("-o ConnectTimeout=7".into());
        opts.cfg_args.common = Some("-o ProxyJump=ops@login:2022 -o User=cfg".into());
        let t = target_for(&vars(""), "me".into(), &opts).unwrap();
        assert_eq!(t.port, 2200, "remote_port for a host without ansible_port");
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(t.jumps.len(), 1);
        assert_eq!(t.jumps[0].port, 2022);
        assert_eq!(t.user, "cfg");
        // The inventory's arguments replace ansible.cfg's common ones; ansible_port wins.
        let t = target_for(
            &vars(r#", "ansible_port": 22, "ansible_ssh_common_args": "-o User=inv""#),
            "me".into(),
            &opts,
        )
        .unwrap();
        assert_eq!(t.port, 22);
        assert!(t.jumps.is_empty());
        assert_eq!(t.user, "inv");
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(7)));
    }

    fn cfg(text: &str) -> SshConfig {
        SshConfig::default()
            .parse(
                &mut text.as_bytes(),
                ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
            )
            .unwrap()
    }

    #[test]
    fn ssh_config_first_match_wins_and_unknown_options_are_named() {
        let c = cfg(
            "Host gpu-*\n  ProxyJump ops@bastion:2222\n  User fleet\n  IdentitiesOnly yes\n  UserKnownHostsFile /etc/fleet_known_hosts\n  ForwardX11 no\n  LocalForward 8080 localhost:80\n\nHost *\n  User nobody\n  Port 2200\n  StrictHostKeyChecking accept-new\n  ServerAliveInterval 30\n",
        );
        let mut s = Settings::default();
        from_config(&c, "gpu-01", &mut s);
        assert_eq!(s.user.as_deref(), Some("fleet"));
        assert_eq!(s.port, Some(2200));
        assert_eq!(s.proxy_jump, Some(vec!["ops@bastion:2222".to_string()]));
        assert!(s.identities_only);
        assert_eq!(
            s.known_hosts_file,
            Some(PathBuf::from("/etc/fleet_known_hosts"))
        );
        assert_eq!(s.strict, Some(false));
        assert!(!s.strict_no, "accept-new needs no warning");
        assert_eq!(s.identity_agent, None);
        for (v, want) in [
            ("none", super::super::IdentityAgent::Off),
            ("SSH_AUTH_SOCK", super::super::IdentityAgent::Env),
            (
                "/run/agent.sock",
                super::super::IdentityAgent::Socket("/run/agent.sock".into()),
            ),
        ] {
            assert_eq!(identity_agent(v), want, "{v}");
        }
        assert_eq!(s.server_alive_interval, Some(Duration::from_secs(30)));
        assert_eq!(s.unsupported, ["localforward"]);
    }

    #[test]
    fn ansible_ssh_args_are_read_as_ssh_reads_them() {
        let mut s = Settings::default();
        let f = from_args(
            "-o ProxyJump=root@10.0.0.1:22 -oUserKnownHostsFile=/tmp/kh -o 'StrictHostKeyChecking no' -i ~/.ssh/fleet -p 2022 -F /tmp/cfg -o ControlMaster=auto -R 9000:localhost:9000",
            &mut s,
        )
        .unwrap();
        assert_eq!(f, Some(PathBuf::from("/tmp/cfg")));
        assert_eq!(s.proxy_jump, Some(vec!["root@10.0.0.1:22".to_string()]));
        assert_eq!(s.known_hosts_file, Some(PathBuf::from("/tmp/kh")));
        assert_eq!(s.strict, Some(false));
        assert!(s.strict_no, "`no` is said in a warning");
        assert_eq!(s.port, Some(2022));
        assert_eq!(s.identity_files.len(), 1);
        assert_eq!(s.unsupported, ["-R"]);
        let mut s = Settings::default();
        from_args("-J a,b@c:2", &mut s).unwrap();
        assert_eq!(
            s.proxy_jump,
            Some(vec!["a".to_string(), "b@c:2".to_string()])
        );
        assert_eq!(parse_jump("b@c:2"), (Some("b".into()), "c".into(), Some(2)));
        assert_eq!(parse_jump("[::1]:2"), (None, "::1".into(), Some(2)));
        assert_eq!(parse_jump("host"), (None, "host".into(), None));
    }
}
