//! Per-host connection settings (`ansible_host`, `ansible_port`, ..., `migfleet_*`) typed and validated from merged host variables.

use super::InventoryError;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// How the controller reaches a host.
/// The `ansible_*` variables a connection is made from (with every `migfleet_*` one).
pub const ANSIBLE_VARS_READ: &[&str] = &[
    "ansible_host",
    "ansible_port",
    "ansible_user",
    "ansible_connection",
    "ansible_become",
    "ansible_ssh_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionKind {
    Ssh,
    Local,
}

/// Everything needed to reach and drive one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Inventory name.
    pub host: String,
    /// `ansible_host`, else the name.
    pub address: String,
    /// `ansible_port`, default 22.
    pub port: u16,
    /// Whether `ansible_port` was given (else ssh_config's `Port` may apply).
    pub port_set: bool,
    /// `ansible_ssh_common_args`, as OpenSSH options.
    pub ssh_common_args: Option<String>,
    /// `ansible_ssh_extra_args`, as OpenSSH options.
    pub ssh_extra_args: Option<String>,
    /// `ansible_user`.
    pub user: Option<String>,
    /// `ansible_ssh_private_key_file` (`~` expanded).
    pub key_file: Option<PathBuf>,
    /// `ansible_connection`: ssh (default) | local.
    pub kind: ConnectionKind,
    /// `ansible_become`.
    pub become_: bool,
    /// `migfleet_remote_dir`, default `~/.cache/migfleet`.
    pub remote_dir: String,
    /// `migfleet_nvml_lib`.
    pub nvml_lib: Option<String>,
    /// `migfleet_agent_env`: name -> value.
    pub agent_env: Vec<(String, String)>,
    /// `migfleet_reboot_command` (argv).
    pub reboot_command: Option<Vec<String>>,
    /// `migfleet_gpu_reset_command` (argv).
    pub gpu_reset_command: Option<Vec<String>>,
    /// `k8s_node`.
    pub k8s_node: Option<String>,
    /// `migfleet_agent_timeouts`: agent operation name -> seconds it may take on this
    /// host (over the defaults, e.g. `{apply: 1800}` for slow GPUs).
    pub agent_timeouts: std::collections::BTreeMap<String, u64>,
    /// `migfleet_lock_wait`: how long a run waits for another session that holds the
    /// host's lock, in seconds (default [`DEFAULT_LOCK_WAIT_S`]).
    pub lock_wait_s: u64,
}

/// How long a run waits for the host's lock by default.
pub const DEFAULT_LOCK_WAIT_S: u64 = 60;

pub const DEFAULT_REMOTE_DIR: &str = "~/.cache/migfleet";

/// The longest an agent operation may be given (`migfleet_agent_timeouts`): a week.
pub const MAX_AGENT_TIMEOUT_S: u64 = 7 * 24 * 3600;

fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    };
    let mut shown = v.to_string();
    if shown.len() > 60 {
        shown.truncate(57);
        shown.push_str("...");
    }
    format!("{kind} ({shown})")
}

/// Ansible's `boolean()` (strict): y/yes/on/1/true/t and n/no/off/0/false/f, case-insensitive; 1/0 numbers; booleans.
pub fn ansible_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let f = n.as_f64()?;
            if f == 1.0 {
                Some(true)
            } else if f == 0.0 {
                Some(false)
            } else {
                None
            }
        }
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn expand_tilde(p: &str) -> PathBuf {
    if (p == "~" || p.starts_with("~/"))
        && let Some(home) = std::env::var_os("HOME")
    {
        let mut h = PathBuf::from(home);
        if p.len() > 2 {
            h.push(&p[2..]);
        }
        return h;
    }
    PathBuf::from(p)
}

impl Connection {
    /// Builds a connection from a host's merged variables; wrong types are errors naming host, variable, value and expectation.
    pub fn from_vars(host: &str, vars: &Map<String, Value>) -> Result<Connection, InventoryError> {
        let bad = |var: &str, v: &Value, expected: &str| InventoryError::ConnectionVar {
            host: host.to_string(),
            var: var.to_string(),
            message: format!("found {}, expected {expected}", describe(v)),
        };
        let get = |k: &str| vars.get(k).filter(|v| !v.is_null());
        let string = |k: &str| -> Result<Option<String>, InventoryError> {
            match get(k) {
                None => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(v @ Value::Number(_)) => Ok(Some(v.to_string())),
                Some(v) => Err(bad(k, v, "a string")),
            }
        };
        let argv = |k: &str| -> Result<Option<Vec<String>>, InventoryError> {
            let expected = "a list of strings (argv) or a command string";
            match get(k) {
                None => Ok(None),
                Some(Value::String(s)) => {
                    let parts: Vec<String> = s.split_whitespace().map(str::to_string).collect();
                    if parts.is_empty() {
                        return Err(bad(k, &Value::String(s.clone()), expected));
                    }
                    Ok(Some(parts))
                }
                Some(v @ Value::Array(items)) => {
                    let mut out = Vec::new();
                    for i in items {
                        match i {
                            Value::String(s) => out.push(s.clone()),
                            Value::Number(_) => out.push(i.to_string()),
                            _ => return Err(bad(k, v, expected)),
                        }
                    }
                    if out.is_empty() {
                        return Err(bad(k, v, expected));
                    }
                    Ok(Some(out))
                }
                Some(v) => Err(bad(k, v, expected)),
            }
        };

        let address = string("ansible_host")?.unwrap_or_else(|| host.to_string());
        let port = match get("ansible_port") {
            None => 22,
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                match n.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0) {
                    Some(p) => p,
                    None => return Err(bad("ansible_port", v, "a port number 1-65535")),
                }
            }
        };
        let lock_wait_s = match get("migfleet_lock_wait") {
            None => DEFAULT_LOCK_WAIT_S,
            Some(v) => match v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.trim().parse::<u64>().ok(),
                _ => None,
            }
            .filter(|s| *s <= MAX_AGENT_TIMEOUT_S)
            .ok_or_else(|| {
                bad(
                    "migfleet_lock_wait",
                    v,
                    "a number of seconds from 0 to 604800 (a week)",
                )
            })?,
        };
        let kind = match get("ansible_connection") {
            None => ConnectionKind::Ssh,
            Some(Value::String(s)) => match s.as_str() {
                "ssh" | "ansible.builtin.ssh" | "paramiko" | "smart" => ConnectionKind::Ssh,
                "local" | "ansible.builtin.local" => ConnectionKind::Local,
                _ => {
                    return Err(bad(
                        "ansible_connection",
                        &Value::String(s.clone()),
                        "'ssh' or 'local'",
                    ));
                }
            },
            Some(v) => return Err(bad("ansible_connection", v, "'ssh' or 'local'")),
        };
        let become_ = match get("ansible_become") {
            None => false,
            Some(v) => ansible_bool(v)
                .ok_or_else(|| bad("ansible_become", v, "a boolean (true/false, yes/no, 1/0)"))?,
        };
        let key_file = string("ansible_ssh_private_key_file")?.map(|p| expand_tilde(&p));
        let remote_dir =
            string("migfleet_remote_dir")?.unwrap_or_else(|| DEFAULT_REMOTE_DIR.to_string());
        let agent_env = match get("migfleet_agent_env") {
            None => Vec::new(),
            Some(Value::Object(m)) => {
                let mut out = Vec::new();
                for (k, v) in m {
                    let valid = k
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        return Err(InventoryError::ConnectionVar {
                            host: host.to_string(),
                            var: "migfleet_agent_env".into(),
                            message: format!(
                                "environment variable name '{k}' is invalid, expected [A-Za-z_][A-Za-z0-9_]*"
                            ),
                        });
                    }
                    let val = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(_) | Value::Bool(_) => v.to_string(),
                        other => {
                            return Err(InventoryError::ConnectionVar {
                                host: host.to_string(),
                                var: format!("migfleet_agent_env.{k}"),
                                message: format!(
                                    "found {}, expected a string, number or boolean",
                                    describe(other)
                                ),
                            });
                        }
                    };
                    out.push((k.clone(), val));
                }
                out
            }
            Some(v) => return Err(bad("migfleet_agent_env", v, "a mapping of NAME: value")),
        };
        let agent_timeouts = match get("migfleet_agent_timeouts") {
            None => Default::default(),
            Some(Value::Object(m)) => {
                let mut out = std::collections::BTreeMap::new();
                for (op, v) in m {
                    if !migfleet_proto::Op::NAMES.contains(&op.as_str())
                        && op != crate::transport::agent::START
                    {
                        return Err(InventoryError::ConnectionVar {
                            host: host.to_string(),
                            var: "migfleet_agent_timeouts".into(),
                            message: format!(
                                "'{op}' is not an agent operation (operations: {}, and start)",
                                migfleet_proto::Op::NAMES.join(", ")
                            ),
                        });
                    }
                    let secs = match v {
                        Value::Number(n) => n.as_u64(),
                        Value::String(s) => s.trim().parse().ok(),
                        _ => None,
                    }
                    .filter(|s| (1..=MAX_AGENT_TIMEOUT_S).contains(s))
                    .ok_or_else(|| {
                        bad(
                            &format!("migfleet_agent_timeouts.{op}"),
                            v,
                            "a number of seconds from 1 to 604800 (a week)",
                        )
                    })?;
                    out.insert(op.clone(), secs);
                }
                out
            }
            Some(v) => {
                return Err(bad(
                    "migfleet_agent_timeouts",
                    v,
                    "a mapping of operation: seconds",
                ));
            }
        };
        Ok(Connection {
            host: host.to_string(),
            address,
            port,
            port_set: get("ansible_port").is_some(),
            ssh_common_args: string("ansible_ssh_common_args")?,
            ssh_extra_args: string("ansible_ssh_extra_args")?,
            user: string("ansible_user")?,
            key_file,
            kind,
            become_,
            remote_dir,
            nvml_lib: string("migfleet_nvml_lib")?,
            agent_env,
            reboot_command: argv("migfleet_reboot_command")?,
            gpu_reset_command: argv("migfleet_gpu_reset_command")?,
            k8s_node: string("k8s_node")?,
            agent_timeouts,
            lock_wait_s,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conn(v: Value) -> Result<Connection, InventoryError> {
        let Value::Object(m) = v else { unreachable!() };
        Connection::from_vars("gpu01", &m)
    }

    #[test]
    fn defaults() {
        let c = conn(json!({})).unwrap();
        assert_eq!(c.address, "gpu01");
        assert_eq!(c.port, 22);
        assert_eq!(c.kind, ConnectionKind::Ssh);
        assert!(!c.become_);
        assert_eq!(c.remote_dir, DEFAULT_REMOTE_DIR);
        assert!(c.agent_env.is_empty() && c.reboot_command.is_none());
        assert!(c.agent_timeouts.is_empty());
    }

    #[test]
    fn agent_timeouts_name_operations() {
        let c = conn(json!({"migfleet_agent_timeouts": {"apply": 1800, "facts": "60"}})).unwrap();
        assert_eq!(c.agent_timeouts.get("apply"), Some(&1800));
        assert_eq!(c.agent_timeouts.get("facts"), Some(&60));
        let e = conn(json!({"migfleet_agent_timeouts": {"aply": 5}})).unwrap_err();
        assert!(
            e.to_string().contains("'aply' is not an agent operation"),
            "{e}"
        );
        for bad in [json!(0), json!(u64::MAX)] {
            let e = conn(json!({"migfleet_agent_timeouts": {"apply": bad}})).unwrap_err();
            assert!(e.to_string().contains("a number of seconds from 1"), "{e}");
        }
    }

    #[test]
    fn typed_values() {
        let c = conn(json!({
            "ansible_host": "10.0.0.5", "ansible_port": "2222", "ansible_user": "ops",
            "ansible_ssh_private_key_file": "~/.ssh/id_ed25519", "ansible_connection": "local",
            "ansible_become": "Yes", "migfleet_remote_dir": "/opt/mf", "migfleet_nvml_lib": "/usr/lib/libnvidia-ml.so.1",
            "migfleet_agent_env": {"CUDA_VISIBLE_DEVICES": 0, "DEBUG": true, "X": "y"},
            "migfleet_reboot_command": "sudo systemctl reboot",
            "migfleet_gpu_reset_command": ["nvidia-smi", "-r", "-i", 0],
            "k8s_node": "node-a"
        }))
        .unwrap();
        assert_eq!(c.address, "10.0.0.5");
        assert_eq!(c.port, 2222);
        assert_eq!(c.user.as_deref(), Some("ops"));
        assert!(c.key_file.unwrap().ends_with(".ssh/id_ed25519"));
        assert_eq!(c.kind, ConnectionKind::Local);
        assert!(c.become_);
        assert_eq!(
            c.agent_env,
            vec![
                ("CUDA_VISIBLE_DEVICES".to_string(), "0".to_string()),
                ("DEBUG".to_string(), "true".to_string()),
                ("X".to_string(), "y".to_string())
            ]
        );
        assert_eq!(c.reboot_command.unwrap(), ["sudo", "systemctl", "reboot"]);
        assert_eq!(
            c.gpu_reset_command.unwrap(),
            ["nvidia-smi", "-r", "-i", "0"]
        );
        assert_eq!(c.k8s_node.as_deref(), Some("node-a"));
        for (v, b) in [
            (json!(1), true),
            (json!("off"), false),
            (json!("t"), true),
            (json!(false), false),
        ] {
            assert_eq!(conn(json!({ "ansible_become": v })).unwrap().become_, b);
        }
    }

    #[test]
    fn type_errors_name_host_var_value() {
        let cases = [
            (json!({"ansible_port": "abc"}), "ansible_port", "\"abc\""),
            (json!({"ansible_port": 70000}), "ansible_port", "70000"),
            (
                json!({"ansible_connection": "winrm"}),
                "ansible_connection",
                "winrm",
            ),
            (
                json!({"ansible_become": "maybe"}),
                "ansible_become",
                "maybe",
            ),
            (
                json!({"migfleet_agent_env": [1, 2]}),
                "migfleet_agent_env",
                "a list",
            ),
            (
                json!({"migfleet_agent_env": {"1BAD": "x"}}),
                "migfleet_agent_env",
                "1BAD",
            ),
            (
                json!({"migfleet_agent_env": {"OK": [1]}}),
                "migfleet_agent_env.OK",
                "a list",
            ),
            (
                json!({"migfleet_reboot_command": {"a": 1}}),
                "migfleet_reboot_command",
                "a mapping",
            ),
            (
                json!({"migfleet_gpu_reset_command": ["a", {"b": 1}]}),
                "migfleet_gpu_reset_command",
                "list",
            ),
            (
                json!({"ansible_user": ["root"]}),
                "ansible_user",
                "expected a string",
            ),
        ];
        for (vars, var, needle) in cases {
            let e = conn(vars).unwrap_err().to_string();
            assert!(e.contains("gpu01"), "{e}");
            assert!(e.contains(&format!("'{var}'")), "{e}");
            assert!(e.contains(needle), "{e}");
            assert!(e.contains("expected"), "{e}");
        }
    }
}
