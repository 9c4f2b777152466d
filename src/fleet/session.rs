//! One host's session for a run: connect (SSH, or a child process for local hosts), start
//! the agent (uploading it only when the host lacks this exact build) with `hello` and
//! `facts` sent along so they cost no round trip of their own, check the agent speaks our
//! protocol, then talk to it. One connection and one agent process per host for the whole
//! run; the host's facts are cached until an operation may have changed them.

use super::event::{Event, Events};
use crate::inventory::{Connection, ConnectionKind};
use crate::transport::agent::{AgentClient, CallError, Timeouts, request_line};
use crate::transport::local::LocalTransport;
use crate::transport::push::{AgentBuilds, start_agent};
use crate::transport::ssh::{KnownHosts, SshOptions, connect};
use crate::transport::{RemoteCommand, Transport, TransportError};
use migfleet_proto::{self as proto, Facts, Hello, Op, PROTOCOL_VERSION, Reply};
use std::sync::Arc;
use std::time::Duration;

/// What every host's session shares: loaded once per run.
#[derive(Clone)]
pub struct Context {
    pub ssh: SshOptions,
    pub known_hosts: Arc<KnownHosts>,
    pub builds: Arc<AgentBuilds>,
    /// `-u`: the user when the inventory names none.
    pub default_user: Option<String>,
}

pub struct Session {
    host: String,
    client: AgentClient,
    /// The agent's greeting, checked at open.
    pub hello: Hello,
    /// The agent binary had to be uploaded this time.
    pub uploaded: bool,
    timeouts: Timeouts,
    facts: Option<Facts>,
    events: Events,
    /// Where the agent's stderr was last read up to (for `AgentStderr` events).
    stderr_mark: u64,
    // Keeps the SSH connection (and its channel) alive as long as the session.
    transport: Box<dyn Transport>,
}

/// Why a session could not start: `unreachable` for connection-level failures, as
/// Ansible counts them.
#[derive(Debug)]
pub struct SessionError {
    pub unreachable: bool,
    /// The host failed a trust check (its key): trying again cannot help.
    pub untrusted: bool,
    pub message: String,
    pub hints: Vec<String>,
}

impl From<TransportError> for SessionError {
    fn from(e: TransportError) -> Self {
        let hints = match &e {
            TransportError::HostKeyChanged { .. } => vec![
                "if the host was reinstalled, remove its old line from known_hosts; migfleet never accepts a changed key"
                    .to_string(),
            ],
            TransportError::Auth { .. } => vec![
                "set ansible_user / ansible_ssh_private_key_file in the inventory, or pass -u / --private-key"
                    .to_string(),
            ],
            _ => Vec::new(),
        };
        SessionError {
            unreachable: e.is_unreachable(),
            untrusted: matches!(
                e,
                TransportError::HostKeyChanged { .. }
                    | TransportError::HostKeyRevoked { .. }
                    | TransportError::HostKeyUnknown { .. }
            ),
            message: e.to_string(),
            hints,
        }
    }
}

impl SessionError {
    fn failed(message: impl Into<String>) -> SessionError {
        SessionError {
            unreachable: false,
            untrusted: false,
            message: message.into(),
            hints: Vec::new(),
        }
    }
}

/// What to fetch while the session starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// Only the greeting (`ping`).
    Hello,
    /// The greeting and the host's facts.
    Facts,
}

/// Opens the host's session: connects, starts the agent, checks its greeting.
pub async fn open(
    conn: &Connection,
    ctx: &Context,
    opening: Opening,
    events: Events,
) -> Result<Session, SessionError> {
    let timeouts = Timeouts::with_overrides(&conn.agent_timeouts).map_err(SessionError::failed)?;
    let mut ops = vec![Op::Hello];
    if opening == Opening::Facts {
        ops.push(Op::Facts);
    }
    let mut preface = String::new();
    for (i, op) in ops.iter().enumerate() {
        preface.push_str(
            &request_line(i as u64 + 1, op.clone(), conn.nvml_lib.clone())
                .map_err(|e| SessionError::failed(e.to_string()))?,
        );
    }
    let (client, uploaded, transport): (AgentClient, bool, Box<dyn Transport>) = match conn.kind {
        ConnectionKind::Local => {
            let arch = std::env::consts::ARCH;
            let build = ctx.builds.get(arch).ok_or_else(|| {
                SessionError::failed(format!(
                    "no agent build for this machine's arch {arch} (have: {})",
                    ctx.builds.arches().join(", ")
                ))
            })?;
            let mut t = LocalTransport::new(&conn.host);
            let cmd = RemoteCommand {
                argv: vec![build.path.display().to_string()],
                env: conn.agent_env.clone(),
                sudo: conn.become_,
            };
            let mut stream = t.spawn(&cmd).await?;
            use tokio::io::AsyncWriteExt;
            let lost = |e: std::io::Error| SessionError::failed(format!("starting the agent: {e}"));
            stream
                .stdin
                .write_all(preface.as_bytes())
                .await
                .map_err(lost)?;
            stream.stdin.flush().await.map_err(lost)?;
            let client = AgentClient::new(
                &conn.host,
                stream,
                conn.nvml_lib.clone(),
                ops.len() as u64 + 1,
            );
            (client, false, Box::new(t))
        }
        ConnectionKind::Ssh => {
            let user = conn
                .user
                .clone()
                .or_else(|| ctx.default_user.clone())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "root".to_string());
            let target = crate::transport::ssh::config::target_for(conn, user, &ctx.ssh)
                .map_err(SessionError::failed)?;
            events.progress(&conn.host, "connecting");
            let mut t = connect(&target, &ctx.ssh, ctx.known_hosts.clone()).await?;
            events.progress(&conn.host, "starting agent");
            let limit = timeouts.start();
            let started = tokio::time::timeout(
                limit,
                start_agent(
                    &mut t,
                    &ctx.builds,
                    &conn.remote_dir,
                    &conn.agent_env,
                    conn.become_,
                    preface.as_bytes(),
                ),
            )
            .await
            .map_err(|_| {
                SessionError::failed(format!(
                    "starting the agent (checking, uploading and starting it) took longer than {} s",
                    limit.as_secs()
                ))
            })??;
            let client = AgentClient::new(
                &conn.host,
                started.stream,
                conn.nvml_lib.clone(),
                ops.len() as u64 + 1,
            );
            (client, started.uploaded, Box::new(t))
        }
    };
    let mut session = Session {
        host: conn.host.clone(),
        client,
        hello: Hello {
            agent_version: String::new(),
            protocol_version: 0,
            arch: String::new(),
            hostname: String::new(),
            boot_id: String::new(),
            pid: 0,
        },
        uploaded,
        facts: None,
        stderr_mark: 0,
        events,
        transport,
        timeouts,
    };
    let hello_limit = session.timeouts.for_op(&Op::Hello);
    match session
        .client
        .reply_to(1, "hello", hello_limit, |_| {})
        .await
    {
        Ok(Reply::Hello(h)) => session.hello = h,
        Ok(other) => {
            return Err(SessionError::failed(format!(
                "the agent answered hello with {}",
                reply_name(&other)
            )));
        }
        Err(e) => return Err(session.start_failure(e).await),
    }
    if session.hello.protocol_version != PROTOCOL_VERSION {
        return Err(SessionError {
            unreachable: false,
            untrusted: false,
            message: format!(
                "the agent on this host (version {}) speaks protocol {}, this controller speaks {}",
                session.hello.agent_version, session.hello.protocol_version, PROTOCOL_VERSION
            ),
            hints: vec![
                "build the agent from the same source as this migfleet (`cargo build -p migfleet-agent`, or scripts/build-agent.sh for --agent-dir)"
                    .to_string(),
            ],
        });
    }
    if opening == Opening::Facts {
        let limit = session.timeouts.for_op(&Op::Facts);
        let reply = session.client.reply_to(2, "facts", limit, |_| {}).await;
        match reply {
            Ok(Reply::Facts(f)) => session.facts = Some(f),
            Ok(other) => {
                return Err(SessionError::failed(format!(
                    "the agent answered facts with {}",
                    reply_name(&other)
                )));
            }
            Err(e) => return Err(session.start_failure(e).await),
        }
    }
    session.drain_stderr();
    Ok(session)
}

/// Who this run is, for whoever finds the host locked: `migfleet (pid 42) by alice on ctl01`.
fn lock_holder() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "?".to_string());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "?".to_string());
    format!("migfleet (pid {}) by {user} on {host}", std::process::id())
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::Hello(_) => "hello",
        Reply::Facts(_) => "facts",
        Reply::SetMigMode { .. } => "set_mig_mode",
        Reply::ResetGpus { .. } => "reset_gpus",
        Reply::Apply { .. } => "apply",
        Reply::Drain(_) => "drain",
        Reply::Restore { .. } => "restore",
        Reply::Reboot { .. } => "reboot",
        Reply::Lock { .. } => "lock",
        Reply::Persist { .. } => "persist",
    }
}

/// A failed call, with what the agent wrote to stderr meanwhile (a driver or simulator
/// message must not surface as a bare "cannot load NVML").
#[derive(Debug)]
pub struct Failed {
    pub error: CallError,
    pub stderr: Vec<String>,
}

impl Failed {
    /// The session cannot be used any more (connection gone, agent out of step).
    pub fn ends_session(&self) -> bool {
        self.error.ends_session()
    }

    /// The error, and the agent's last stderr lines if it wrote any.
    pub fn message(&self) -> String {
        let mut m = self.error.to_string();
        if !self.stderr.is_empty() {
            let tail: Vec<&str> = self
                .stderr
                .iter()
                .rev()
                .take(STDERR_LINES)
                .rev()
                .map(String::as_str)
                .collect();
            m.push_str("\nagent stderr:\n    ");
            m.push_str(&tail.join("\n    "));
        }
        m
    }
}

/// How many of the agent's last stderr lines a failure shows.
const STDERR_LINES: usize = 10;

impl Session {
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends `op` to the agent and waits for its reply, at most the op's timeout (or
    /// `limit`). NVML steps and progress go out as events. Operations that may change
    /// the host forget the cached facts.
    pub async fn call(&mut self, op: Op, limit: Option<Duration>) -> Result<Reply, Failed> {
        if !matches!(op, Op::Hello | Op::Facts) && !matches!(op, Op::Apply { dry_run: true, .. }) {
            self.facts = None;
        }
        let limit = limit.unwrap_or_else(|| self.timeouts.for_op(&op));
        let mark = self.client.stderr_mark();
        let host = self.host.clone();
        let events = self.events.clone();
        let result = self
            .client
            .call(op, limit, |e| match e {
                proto::Event::Nvml { gpu, step, of, op } => events.send(Event::Nvml {
                    host: host.clone(),
                    gpu,
                    step,
                    of,
                    op,
                }),
                proto::Event::Progress { message } => events.waiting(&host, message),
            })
            .await;
        match result {
            Ok(r) => {
                self.drain_stderr();
                Ok(r)
            }
            Err(error) => {
                let stderr = self.stderr_after_failure(&error, mark).await;
                self.drain_stderr();
                Err(Failed { error, stderr })
            }
        }
    }

    /// Takes the host's lock for this session, waiting at most `wait_s` for a session
    /// that holds it (the agent says who, as progress, meanwhile).
    pub async fn lock(&mut self, wait_s: u64) -> Result<(), Failed> {
        let op = Op::Lock {
            holder: lock_holder(),
            wait_s,
        };
        match self.call(op, None).await? {
            Reply::Lock { .. } => Ok(()),
            other => Err(Failed {
                error: CallError::Protocol(format!(
                    "the agent answered lock with {}",
                    reply_name(&other)
                )),
                stderr: Vec::new(),
            }),
        }
    }

    /// Ends the agent (its stdin closes; it exits, letting go of the host's lock). The
    /// session cannot be used afterwards.
    pub async fn close(&mut self) {
        self.facts = None;
        self.client.close().await;
    }

    /// The host's facts: cached since the last change, else asked for.
    pub async fn facts(&mut self) -> Result<&Facts, Failed> {
        if self.facts.is_none() {
            match self.call(Op::Facts, None).await? {
                Reply::Facts(f) => self.facts = Some(f),
                other => {
                    return Err(Failed {
                        error: CallError::Protocol(format!(
                            "the agent answered facts with {}",
                            reply_name(&other)
                        )),
                        stderr: Vec::new(),
                    });
                }
            }
        }
        self.facts.as_ref().ok_or_else(|| Failed {
            error: CallError::Protocol("no facts".into()),
            stderr: Vec::new(),
        })
    }

    /// Runs a command on the host over the session's connection.
    pub async fn exec(
        &mut self,
        cmd: &RemoteCommand,
    ) -> Result<crate::transport::Output, TransportError> {
        self.facts = None;
        self.transport.exec(cmd, None).await
    }

    /// Stderr the agent wrote for a failed call. An error reply can overtake the stderr
    /// lines written before it (sshd forwards the two pipes separately), so a round trip
    /// (`hello`) is made first: whatever the agent wrote before answering it has arrived.
    async fn stderr_after_failure(&mut self, error: &CallError, mark: u64) -> Vec<String> {
        if let CallError::Agent(_) = error {
            let limit = self.timeouts.for_op(&Op::Hello);
            let _ = self.client.call(Op::Hello, limit, |_| {}).await;
        }
        self.client.stderr_since(mark)
    }

    async fn start_failure(&mut self, error: CallError) -> SessionError {
        let stderr = self.stderr_after_failure(&error, 0).await;
        self.drain_stderr();
        let failed = Failed { error, stderr };
        // The connection stood; the agent did not work: a failure, not unreachable.
        SessionError::failed(format!("starting the agent: {}", failed.message()))
    }

    /// Sends what the agent wrote to stderr since the last look as events (`-v`).
    fn drain_stderr(&mut self) {
        let now = self.client.stderr_mark();
        if now == self.stderr_mark {
            return;
        }
        for line in self.client.stderr_since(self.stderr_mark) {
            self.events.send(Event::AgentStderr {
                host: self.host.clone(),
                line,
            });
        }
        self.stderr_mark = now;
    }
}
