//! `ansible.cfg` as Ansible finds and reads it, for the settings a fleet run shares with
//! Ansible: `[defaults] inventory`, `remote_user`, `private_key_file`, `forks`, `timeout`,
//! `vault_password_file`, `vault_identity_list`, `host_key_checking`, `remote_port`, and
//! `[ssh_connection] ssh_args`, `ssh_common_args`, `ssh_extra_args`,
//! each overridden by its environment variable (`ANSIBLE_INVENTORY`, ...) as in Ansible.
//! Command-line options override both.
//!
//! The file is the first of `$ANSIBLE_CONFIG`, `./ansible.cfg`, `~/.ansible.cfg`,
//! `/etc/ansible/ansible.cfg` that exists (Ansible skips `./ansible.cfg` in a
//! world-writable directory, and so does migfleet). Relative paths in it are relative to
//! the file's directory.

use std::path::{Path, PathBuf};

/// The settings found, and where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnsibleConfig {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    /// Inventory sources, in order.
    pub inventory: Vec<PathBuf>,
    /// Where `inventory` came from, for messages (`ANSIBLE_INVENTORY` or the file).
    pub inventory_from: Option<String>,
    pub remote_user: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub forks: Option<usize>,
    pub timeout: Option<u64>,
    /// `vault_password_file` / `ANSIBLE_VAULT_PASSWORD_FILE`.
    pub vault_password_file: Option<PathBuf>,
    /// `vault_identity_list` / `ANSIBLE_VAULT_IDENTITY_LIST`: `[LABEL@]FILE`s.
    pub vault_identity_list: Vec<String>,
    /// `host_key_checking` / `ANSIBLE_HOST_KEY_CHECKING`.
    pub host_key_checking: Option<bool>,
    /// `remote_port` / `ANSIBLE_REMOTE_PORT`: the port of hosts whose inventory names none.
    pub remote_port: Option<u16>,
    /// `[ssh_connection] ssh_args` / `ANSIBLE_SSH_ARGS`.
    pub ssh_args: Option<String>,
    /// `[ssh_connection] ssh_common_args` / `ANSIBLE_SSH_COMMON_ARGS`.
    pub ssh_common_args: Option<String>,
    /// `[ssh_connection] ssh_extra_args` / `ANSIBLE_SSH_EXTRA_ARGS`.
    pub ssh_extra_args: Option<String>,
}

/// Ansible's default inventory when nothing names one.
pub const DEFAULT_INVENTORY: &str = "/etc/ansible/hosts";

impl AnsibleConfig {
    /// Finds and reads the configuration from the real environment.
    pub fn load() -> Result<AnsibleConfig, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let home = env("HOME").map(PathBuf::from);
        let cwd = std::env::current_dir().ok();
        AnsibleConfig::load_from(&env, home.as_deref(), cwd.as_deref())
    }

    /// Finds and reads the configuration given an environment, a home and a working
    /// directory (the testable core of [`AnsibleConfig::load`]).
    pub fn load_from(
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
        cwd: Option<&Path>,
    ) -> Result<AnsibleConfig, String> {
        let mut cfg = AnsibleConfig::default();
        if let Some(file) = find_file(env, home, cwd) {
            let text =
                crate::input::read_text(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let display = file.display().to_string();
            for (line_no, key, value) in section(&text, "ssh_connection") {
                match key.as_str() {
                    "ssh_args" => cfg.ssh_args = Some(value),
                    "ssh_common_args" => cfg.ssh_common_args = Some(value),
                    "ssh_extra_args" => cfg.ssh_extra_args = Some(value),
                    "host_key_checking" => {
                        cfg.host_key_checking =
                            Some(boolean(&value, &format!("{display}:{line_no}"), &key)?);
                    }
                    _ => {}
                }
            }
            for (line_no, key, value) in section(&text, "defaults") {
                let at = || format!("{display}:{line_no}");
                match key.as_str() {
                    "inventory" | "hostfile" => {
                        cfg.inventory = path_list(&value, Some(&base), home);
                        cfg.inventory_from = Some(at());
                    }
                    "remote_user" => cfg.remote_user = Some(value),
                    "private_key_file" => {
                        cfg.private_key_file = Some(one_path(&value, Some(&base), home));
                    }
                    "forks" => cfg.forks = Some(number(&value, &at(), "forks")?),
                    "timeout" => cfg.timeout = Some(number(&value, &at(), "timeout")?),
                    "vault_password_file" => {
                        cfg.vault_password_file = Some(one_path(&value, Some(&base), home));
                    }
                    "vault_identity_list" => cfg.vault_identity_list = id_list(&value),
                    "host_key_checking" => {
                        cfg.host_key_checking = Some(boolean(&value, &at(), &key)?);
                    }
                    "remote_port" => {
                        cfg.remote_port = Some(number(&value, &at(), "remote_port")?);
                    }
                    _ => {}
                }
            }
            cfg.file = Some(file);
        }
        if let Some(v) = env("ANSIBLE_INVENTORY") {
            cfg.inventory = path_list(&v, cwd, home);
            cfg.inventory_from = Some("ANSIBLE_INVENTORY".into());
        }
        if let Some(v) = env("ANSIBLE_REMOTE_USER") {
            cfg.remote_user = Some(v);
        }
        if let Some(v) = env("ANSIBLE_PRIVATE_KEY_FILE") {
            cfg.private_key_file = Some(one_path(&v, cwd, home));
        }
        if let Some(v) = env("ANSIBLE_FORKS") {
            cfg.forks = Some(number(&v, "ANSIBLE_FORKS", "forks")?);
        }
        if let Some(v) = env("ANSIBLE_TIMEOUT") {
            cfg.timeout = Some(number(&v, "ANSIBLE_TIMEOUT", "timeout")?);
        }
        if let Some(v) = env("ANSIBLE_VAULT_PASSWORD_FILE") {
            cfg.vault_password_file = Some(one_path(&v, cwd, home));
        }
        if let Some(v) = env("ANSIBLE_VAULT_IDENTITY_LIST") {
            cfg.vault_identity_list = id_list(&v);
        }
        if let Some(v) = env("ANSIBLE_HOST_KEY_CHECKING") {
            cfg.host_key_checking = Some(boolean(
                &v,
                "ANSIBLE_HOST_KEY_CHECKING",
                "host_key_checking",
            )?);
        }
        if let Some(v) = env("ANSIBLE_REMOTE_PORT") {
            cfg.remote_port = Some(number(&v, "ANSIBLE_REMOTE_PORT", "remote_port")?);
        }
        if let Some(v) = env("ANSIBLE_SSH_ARGS") {
            cfg.ssh_args = Some(v);
        }
        if let Some(v) = env("ANSIBLE_SSH_COMMON_ARGS") {
            cfg.ssh_common_args = Some(v);
        }
        if let Some(v) = env("ANSIBLE_SSH_EXTRA_ARGS") {
            cfg.ssh_extra_args = Some(v);
        }
        Ok(cfg)
    }
}

fn find_file(
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
    cwd: Option<&Path>,
) -> Option<PathBuf> {
    if let Some(p) = env("ANSIBLE_CONFIG") {
        let p = expand_home(&p, home);
        // A directory names the ansible.cfg inside it, as in Ansible.
        let p = if p.is_dir() { p.join("ansible.cfg") } else { p };
        if p.is_file() {
            return Some(p);
        }
    }
    if let Some(dir) = cwd
        && !world_writable(dir)
    {
        let p = dir.join("ansible.cfg");
        if p.is_file() {
            return Some(p);
        }
    }
    if let Some(h) = home {
        let p = h.join(".ansible.cfg");
        if p.is_file() {
            return Some(p);
        }
    }
    let p = PathBuf::from("/etc/ansible/ansible.cfg");
    p.is_file().then_some(p)
}

fn world_writable(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o002 != 0)
}

/// `(line, key, value)` of one section (`[defaults]`), as Python's configparser reads it:
/// `key = value` or `key: value`, `#`/`;` comment lines, ` ;` inline comments, keys
/// case-insensitive, continuation lines (indented) joined.
fn section(text: &str, name: &str) -> Vec<(usize, String, String)> {
    let mut out: Vec<(usize, String, String)> = Vec::new();
    let mut in_defaults = false;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(section) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            in_defaults = section.trim() == name;
            continue;
        }
        if !in_defaults {
            continue;
        }
        let value_of = |v: &str| -> String {
            let v = match v.find(" ;") {
                Some(i) => &v[..i],
                None => v,
            };
            v.trim().to_string()
        };
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.2.push('\n');
                last.2.push_str(&value_of(trimmed));
            }
            continue;
        }
        let Some(sep) = trimmed.find(['=', ':']) else {
            continue;
        };
        let key = trimmed[..sep].trim().to_ascii_lowercase();
        out.push((i + 1, key, value_of(&trimmed[sep + 1..])));
    }
    out
}

fn expand_home(p: &str, home: Option<&Path>) -> PathBuf {
    match (p.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ if p == "~" => home.map_or_else(|| PathBuf::from(p), Path::to_path_buf),
        _ => PathBuf::from(p),
    }
}

fn one_path(p: &str, base: Option<&Path>, home: Option<&Path>) -> PathBuf {
    let path = expand_home(p.trim(), home);
    match base {
        Some(b) if path.is_relative() => b.join(path),
        _ => path,
    }
}

/// A comma-separated list of paths (Ansible's `pathlist`).
fn path_list(v: &str, base: Option<&Path>, home: Option<&Path>) -> Vec<PathBuf> {
    v.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| one_path(s, base, home))
        .collect()
}

fn id_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A boolean as Ansible's config reads one (`yes`/`no`, `true`/`false`, `on`/`off`, `1`/`0`).
fn boolean(v: &str, at: &str, what: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "t" | "on" | "1" => Ok(true),
        "no" | "n" | "false" | "f" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "{at}: `{what}` must be a boolean (yes/no, true/false), found `{v}`"
        )),
    }
}

fn number<T: std::str::FromStr>(v: &str, at: &str, what: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{at}: `{what}` must be a whole number, found `{v}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("migfleet-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reads_defaults_relative_to_the_file_and_lets_the_environment_win() {
        let home = tmp("home");
        let work = tmp("work");
        std::fs::write(
            work.join("ansible.cfg"),
            "# fleet\n[defaults]\ninventory = inventories/prod.yml, /etc/extra.ini\nremote_user: ops ; the admin\nforks=25\nprivate_key_file = ~/.ssh/fleet\nvault_password_file = .vault_pass\nvault_identity_list = dev@dev.txt, prod@prod.sh\nremote_port = 2222\n[ssh_connection]\ntimeout = 99\nssh_common_args = -o ProxyJump=login\nhost_key_checking = False\n",
        )
        .unwrap();
        let none = |_: &str| None;
        let cfg = AnsibleConfig::load_from(&none, Some(&home), Some(&work)).unwrap();
        assert_eq!(cfg.file, Some(work.join("ansible.cfg")));
        assert_eq!(
            cfg.inventory,
            [
                work.join("inventories/prod.yml"),
                PathBuf::from("/etc/extra.ini")
            ]
        );
        assert_eq!(cfg.remote_user.as_deref(), Some("ops"));
        assert_eq!(cfg.forks, Some(25));
        assert_eq!(cfg.timeout, None, "only [defaults] counts");
        assert_eq!(cfg.private_key_file, Some(home.join(".ssh/fleet")));
        assert_eq!(cfg.vault_password_file, Some(work.join(".vault_pass")));
        assert_eq!(cfg.vault_identity_list, ["dev@dev.txt", "prod@prod.sh"]);
        assert_eq!(cfg.remote_port, Some(2222));
        assert_eq!(cfg.ssh_common_args.as_deref(), Some("-o ProxyJump=login"));
        assert_eq!(cfg.host_key_checking, Some(false));
        let env = |k: &str| match k {
            "ANSIBLE_INVENTORY" => Some("a.yml,b.yml".to_string()),
            "ANSIBLE_FORKS" => Some("7".to_string()),
            "ANSIBLE_HOST_KEY_CHECKING" => Some("yes".to_string()),
            _ => None,
        };
        let cfg = AnsibleConfig::load_from(&env, Some(&home), Some(&work)).unwrap();
        assert_eq!(cfg.inventory, [work.join("a.yml"), work.join("b.yml")]);
        assert_eq!(cfg.inventory_from.as_deref(), Some("ANSIBLE_INVENTORY"));
        assert_eq!(cfg.forks, Some(7));
        assert_eq!(cfg.host_key_checking, Some(true), "the environment wins");
        std::fs::write(work.join("ansible.cfg"), "[defaults]\nforks = many\n").unwrap();
        let e = AnsibleConfig::load_from(&none, Some(&home), Some(&work)).unwrap_err();
        assert!(
            e.ends_with("ansible.cfg:2: `forks` must be a whole number, found `many`"),
            "{e}"
        );
    }

    #[test]
    fn the_first_file_found_is_read() {
        let home = tmp("home2");
        let work = tmp("work2");
        std::fs::write(
            home.join(".ansible.cfg"),
            "[defaults]\nremote_user = home\n",
        )
        .unwrap();
        let none = |_: &str| None;
        let cfg = AnsibleConfig::load_from(&none, Some(&home), Some(&work)).unwrap();
        assert_eq!(cfg.remote_user.as_deref(), Some("home"));
        let explicit = work.join("my.cfg");
        std::fs::write(&explicit, "[defaults]\nremote_user = explicit\n").unwrap();
        let p = explicit.display().to_string();
        let env = move |k: &str| (k == "ANSIBLE_CONFIG").then(|| p.clone());
        let cfg = AnsibleConfig::load_from(&env, Some(&home), Some(&work)).unwrap();
        assert_eq!(cfg.remote_user.as_deref(), Some("explicit"));
    }
}
