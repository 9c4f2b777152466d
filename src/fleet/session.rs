//! One host's session for a run: connect (SSH, or a child process for local hosts), start
//! the agent (uploading it only when the host lacks this exact build), then talk to it.
//! One connection and one agent process per host for the whole run.

use crate::inventory::{Connection, ConnectionKind};
use crate::transport::agent::AgentClient;
use crate::transport::local::LocalTransport;
use crate::transport::push::{AgentBuilds, start_agent};
use crate::transport::ssh::{KnownHosts, SshOptions, Target, connect};
use crate::transport::{RemoteCommand, Transport, TransportError};
use std::sync::Arc;

/// What every host's session shares.
pub struct Context {
    pub ssh: SshOptions,
    pub known_hosts: Arc<KnownHosts>,
    pub builds: Arc<AgentBuilds>,
    /// `-u`: the user when the inventory names none.
    pub default_user: Option<String>,
}

pub struct Session {
    pub client: AgentClient,
    /// The agent binary had to be uploaded this time.
    pub uploaded: bool,
    // Keeps the SSH connection (and its channel) alive as long as the session.
    _transport: Box<dyn Transport>,
}

impl Session {
    /// Runs a command on the host over the session's connection.
    pub async fn exec(
        &mut self,
        cmd: &RemoteCommand,
    ) -> Result<crate::transport::Output, TransportError> {
        self._transport.exec(cmd, None).await
    }
}

/// Why a session could not start: `unreachable` for connection-level failures, as
/// Ansible counts them.
#[derive(Debug)]
pub struct SessionError {
    pub unreachable: bool,
    pub message: String,
}

impl From<TransportError> for SessionError {
    fn from(e: TransportError) -> Self {
        SessionError {
            unreachable: e.is_unreachable(),
            message: e.to_string(),
        }
    }
}

pub async fn open(
    conn: &Connection,
    ctx: &Context,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<Session, SessionError> {
    match conn.kind {
        ConnectionKind::Local => {
            let arch = std::env::consts::ARCH;
            let build = ctx.builds.get(arch).ok_or_else(|| SessionError {
                unreachable: false,
                message: format!(
                    "no agent build for this machine's arch {arch} (have: {})",
                    ctx.builds.arches().join(", ")
                ),
            })?;
            let mut t = LocalTransport::new(&conn.host);
            let cmd = RemoteCommand {
                argv: vec![build.path.display().to_string()],
                env: conn.agent_env.clone(),
                sudo: conn.become_,
            };
            let stream = t.spawn(&cmd).await?;
            Ok(Session {
                client: AgentClient::new(&conn.host, stream, conn.nvml_lib.clone()),
                uploaded: false,
                _transport: Box::new(t),
            })
        }
        ConnectionKind::Ssh => {
            let user = conn
                .user
                .clone()
                .or_else(|| ctx.default_user.clone())
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "root".to_string());
            let target = Target {
                host: conn.host.clone(),
                address: conn.address.clone(),
                port: conn.port,
                user,
                key_file: conn.key_file.clone(),
            };
            progress("connecting");
            let mut t = connect(&target, &ctx.ssh, ctx.known_hosts.clone()).await?;
            progress("starting agent");
            let started = start_agent(
                &mut t,
                &ctx.builds,
                &conn.remote_dir,
                &conn.agent_env,
                conn.become_,
            )
            .await?;
            Ok(Session {
                client: AgentClient::new(&conn.host, started.stream, conn.nvml_lib.clone()),
                uploaded: started.uploaded,
                _transport: Box::new(t),
            })
        }
    }
}
