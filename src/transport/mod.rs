//! Transport layer: the `Transport` trait (exec / spawn on a host), command rendering and quoting, and transport errors.

pub mod agent;
pub mod local;
pub mod push;
pub mod ssh;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

/// A command to run on a host, as argv. Rendered for SSH by single-quoting every argument (the one place that
/// builds a remote command line; no unquoted input ever reaches a shell), executed directly for local hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub sudo: bool,
}

impl RemoteCommand {
    /// A command from argv, no env, no sudo.
    pub fn new<I, S>(argv: I) -> RemoteCommand
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RemoteCommand {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            sudo: false,
        }
    }

    /// Adds one environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> RemoteCommand {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the command through `sudo -n`.
    pub fn sudo(mut self, sudo: bool) -> RemoteCommand {
        self.sudo = sudo;
        self
    }

    /// The argv actually executed: `sudo -n -- env K=V ... argv...` with sudo, `env K=V ... argv...` with env only,
    /// `argv` otherwise. Validates env names and argv.
    pub fn full_argv(&self) -> Result<Vec<String>, TransportError> {
        let Some(first) = self.argv.first() else {
            return Err(TransportError::InvalidCommand {
                reason: "empty argv".to_string(),
            });
        };
        for (k, _) in &self.env {
            if !valid_env_name(k) {
                return Err(TransportError::InvalidCommand {
                    reason: format!("invalid environment variable name {k:?}"),
                });
            }
        }
        let mut out = Vec::new();
        if self.sudo {
            out.extend(["sudo", "-n", "--"].map(String::from));
        }
        if !self.env.is_empty() || self.sudo {
            if first.contains('=') {
                // `env` would take it for an assignment.
                return Err(TransportError::InvalidCommand {
                    reason: format!("program name {first:?} contains '='"),
                });
            }
            if !self.env.is_empty() {
                out.push("env".to_string());
                out.extend(self.env.iter().map(|(k, v)| format!("{k}={v}")));
            }
        }
        out.extend(self.argv.iter().cloned());
        Ok(out)
    }

    /// The remote command line for SSH: every word single-quoted.
    pub fn render(&self) -> Result<String, TransportError> {
        Ok(self
            .full_argv()?
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "))
    }
}

pub(crate) fn valid_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Quotes one argument for a POSIX shell: `'...'`, with each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The result of a finished command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status; `None` when the process was killed by a signal or the status was never reported.
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// How a spawned process ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exit {
    pub status: Option<u32>,
    /// Signal name when the process died of a signal.
    pub signal: Option<String>,
    pub stderr: Vec<u8>,
}

/// Exit status and signal name reported by a transport's wait task.
pub(crate) type ExitInfo = (Option<u32>, Option<String>);

/// The end of a long-running process's stderr: the last [`StderrTail::CAP`] bytes, and
/// how many bytes came in all (so a reader can ask for what is new since a mark).
#[derive(Debug, Default)]
pub struct StderrTail {
    buf: Vec<u8>,
    total: u64,
}

impl StderrTail {
    /// An agent that writes without end must not grow the controller without end.
    pub const CAP: usize = 64 * 1024;

    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() > Self::CAP {
            let cut = self.buf.len() - Self::CAP;
            self.buf.drain(..cut);
        }
    }

    /// Bytes received in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// What came after `mark` (a former [`StderrTail::total`]), as far as it is kept.
    pub fn since(&self, mark: u64) -> &[u8] {
        let new = usize::try_from(self.total.saturating_sub(mark)).unwrap_or(usize::MAX);
        &self.buf[self.buf.len().saturating_sub(new)..]
    }

    pub fn all(&self) -> &[u8] {
        &self.buf
    }
}

/// Stderr shared between a transport's reader task and the process's owner.
pub type SharedStderr = Arc<Mutex<StderrTail>>;

/// Exit status and stderr of a spawned process, available once it ends.
pub struct ExitWaiter {
    host: String,
    sudo: bool,
    stderr: SharedStderr,
    task: JoinHandle<Result<ExitInfo, TransportError>>,
}

impl ExitWaiter {
    pub(crate) fn new(
        host: &str,
        sudo: bool,
        stderr: SharedStderr,
        task: JoinHandle<Result<ExitInfo, TransportError>>,
    ) -> ExitWaiter {
        ExitWaiter {
            host: host.to_string(),
            sudo,
            stderr,
            task,
        }
    }

    /// Stderr collected so far (its last [`StderrTail::CAP`] bytes).
    pub fn stderr_so_far(&self) -> Vec<u8> {
        self.stderr
            .lock()
            .map(|b| b.all().to_vec())
            .unwrap_or_default()
    }

    /// How many stderr bytes came so far: a mark for [`ExitWaiter::stderr_since`].
    pub fn stderr_mark(&self) -> u64 {
        self.stderr.lock().map(|b| b.total()).unwrap_or(0)
    }

    /// Stderr that came after `mark`.
    pub fn stderr_since(&self, mark: u64) -> Vec<u8> {
        self.stderr
            .lock()
            .map(|b| b.since(mark).to_vec())
            .unwrap_or_default()
    }

    /// Waits for the process to end. Stdout must be read to the end or dropped, or this may wait forever.
    /// A `sudo -n` that wanted a password is reported as [`TransportError::Sudo`].
    pub async fn wait(self) -> Result<Exit, TransportError> {
        let stderr_buf = self.stderr.clone();
        let (status, signal) = self.task.await.map_err(|e| TransportError::Io {
            host: self.host.clone(),
            context: "waiting for process".to_string(),
            source: std::io::Error::other(e.to_string()),
        })??;
        let stderr = stderr_buf
            .lock()
            .map(|b| b.all().to_vec())
            .unwrap_or_default();
        if self.sudo {
            check_sudo(&self.host, status, &stderr)?;
        }
        Ok(Exit {
            status,
            signal,
            stderr,
        })
    }
}

/// A running remote process: write its stdin, read its stdout lines; stderr collected.
pub struct Stream {
    /// Shutting it down (`AsyncWriteExt::shutdown`) sends EOF.
    pub stdin: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    pub stdout: Box<dyn tokio::io::AsyncBufRead + Send + Unpin>,
    /// Stderr text and exit status when it ends.
    pub exit: ExitWaiter,
}

#[async_trait::async_trait]
pub trait Transport: Send {
    /// Inventory name of the host.
    fn host(&self) -> &str;
    /// Runs a command to completion, feeding it `stdin` (or an empty stdin).
    async fn exec(
        &mut self,
        cmd: &RemoteCommand,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError>;
    /// Starts a command with streaming stdin/stdout.
    async fn spawn(&mut self, cmd: &RemoteCommand) -> Result<Stream, TransportError>;
}

pub(crate) const SUDO_PASSWORD_HINT: &str =
    "migfleet uses `sudo -n` — allow passwordless sudo for the agent, or connect as root";

/// Maps "sudo: a password is required" (sudo -n's refusal) to [`TransportError::Sudo`].
pub(crate) fn check_sudo(
    host: &str,
    status: Option<u32>,
    stderr: &[u8],
) -> Result<(), TransportError> {
    if status == Some(1) {
        let text = String::from_utf8_lossy(stderr);
        if text.contains("sudo: a password is required")
            || text.contains("sudo: a terminal is required")
        {
            return Err(TransportError::Sudo {
                host: host.to_string(),
                message: format!("sudo on {host} needs a password; {SUDO_PASSWORD_HINT}"),
            });
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{host}: unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    #[error(
        "{host}: host key {fingerprint} is not known (not in {known_hosts}); after checking the fingerprint, add this line to that file:\n    {line}\nor run once with --accept-new-host-keys to record the keys of hosts seen for the first time",
        known_hosts = known_hosts.display()
    )]
    HostKeyUnknown {
        host: String,
        fingerprint: String,
        known_hosts: PathBuf,
        /// The known_hosts line that would record the key.
        line: String,
    },
    #[error(
        "{host}: HOST KEY CHANGED: the host presented {fingerprint}, which differs from the key recorded at {file}:{line}; refusing to connect (possible man-in-the-middle; remove that line if the change is legitimate)",
        file = file.display()
    )]
    HostKeyChanged {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error(
        "{host}: host key {fingerprint} is REVOKED ({file}:{line}); refusing to connect",
        file = file.display()
    )]
    HostKeyRevoked {
        host: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("known_hosts {path}: {reason}", path = path.display())]
    KnownHosts { path: PathBuf, reason: String },
    #[error("{host}: authentication failed; tried: {}", if tried.is_empty() { "no keys (none configured or found)".to_string() } else { tried.join(", ") })]
    Auth { host: String, tried: Vec<String> },
    #[error("{host}: {message}")]
    Sudo { host: String, message: String },
    #[error("{host}: {context}: {source}")]
    Io {
        host: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host}: ssh: {reason}")]
    Ssh { host: String, reason: String },
    #[error("invalid command: {reason}")]
    InvalidCommand { reason: String },
    #[error("agent binary: {reason}")]
    AgentBinary { reason: String },
    #[error("{host}: no agent build for architecture {arch}; available builds: {}", if available.is_empty() { "none".to_string() } else { available.join(", ") })]
    NoAgentBuild {
        host: String,
        arch: String,
        available: Vec<String>,
    },
    #[error("{host}: pushing the agent failed: {message}")]
    Push { host: String, message: String },
    #[error(
        "{host}: refusing to run the agent: {path} (owner {owner}, mode {mode}) could be changed by another user, who could then replace the agent; every directory on the way to migfleet_remote_dir must be owned by root or the login user and writable only by its owner (a root-owned sticky directory such as /tmp excepted), and the agent directory itself private"
    )]
    UnsafeAgentDir {
        host: String,
        path: String,
        owner: String,
        mode: String,
    },
}

impl TransportError {
    /// Connection-level failures (Ansible's "unreachable"), as opposed to a command that failed.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. }
                | TransportError::HostKeyUnknown { .. }
                | TransportError::HostKeyChanged { .. }
                | TransportError::HostKeyRevoked { .. }
                | TransportError::KnownHosts { .. }
                | TransportError::Auth { .. }
                | TransportError::Ssh { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_tail_keeps_the_end_and_counts_everything() {
        let mut t = StderrTail::default();
        t.push(b"abc");
        let mark = t.total();
        t.push(b"def");
        assert_eq!(t.since(mark), b"def");
        t.push(&vec![b'x'; StderrTail::CAP]);
        assert_eq!(t.all().len(), StderrTail::CAP);
        assert_eq!(t.total(), 6 + StderrTail::CAP as u64);
        assert_eq!(t.since(0).len(), StderrTail::CAP, "only the kept end");
    }

    #[test]
    fn quote_simple() {
        assert_eq!(shell_quote("abc"), "'abc'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }

    #[test]
    fn render_sudo_env() {
        let c = RemoteCommand::new(["ls", "-l"]).env("A", "x y").sudo(true);
        assert_eq!(
            c.render().unwrap(),
            "'sudo' '-n' '--' 'env' 'A=x y' 'ls' '-l'"
        );
        let c = RemoteCommand::new(["ls"]).env("A-B", "x");
        assert!(c.render().is_err());
        assert!(RemoteCommand::new(Vec::<String>::new()).render().is_err());
        let c = RemoteCommand::new(["a=b"]).env("A", "x");
        assert!(c.render().is_err());
    }

    #[test]
    fn sudo_detect() {
        let e = check_sudo("h1", Some(1), b"sudo: a password is required\n").unwrap_err();
        assert!(e.to_string().contains("sudo on h1 needs a password"));
        assert!(check_sudo("h1", Some(1), b"other").is_ok());
        assert!(!e.is_unreachable());
    }
}
