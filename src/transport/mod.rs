//! How the controller reaches a host: run a command, or start a long-running one and talk
//! to it over its stdin/stdout. Knows nothing of MIG. (Interim: the SSH side lands next.)

pub mod agent;
pub mod local;

use tokio::io::{AsyncBufRead, AsyncWrite};

/// A command to run on a host, as argv (never a shell string).
#[derive(Clone, Debug, Default)]
pub struct RemoteCommand {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub sudo: bool,
}

#[derive(Debug)]
pub struct Output {
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A running process on a host.
pub struct Stream {
    pub stdin: Box<dyn AsyncWrite + Send + Unpin>,
    pub stdout: Box<dyn AsyncBufRead + Send + Unpin>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{host}: unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("{host}: {message}")]
    Io { host: String, message: String },
}

impl TransportError {
    /// Connection-level failures count as Ansible's "unreachable".
    pub fn is_unreachable(&self) -> bool {
        matches!(self, TransportError::Unreachable { .. })
    }
}

#[async_trait::async_trait]
pub trait Transport: Send {
    fn host(&self) -> &str;
    async fn exec(
        &mut self,
        cmd: &RemoteCommand,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError>;
    async fn spawn(&mut self, cmd: &RemoteCommand) -> Result<Stream, TransportError>;
}
