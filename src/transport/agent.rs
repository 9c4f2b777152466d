//! The controller's side of the agent protocol: send one request, collect its events, get
//! the final reply. One client per host for the whole run.

use super::Stream;
use migfleet_proto::{self as proto, Body, ErrorReply, Event, Op, Reply, Request};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

pub struct AgentClient {
    host: String,
    stream: Stream,
    next: u64,
    nvml_lib: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The agent answered with an error.
    #[error("{}", .0.message)]
    Agent(ErrorReply),
    /// The connection or the agent went away.
    #[error("lost the agent: {0}")]
    Lost(String),
    /// The agent wrote something that is not the protocol.
    #[error("agent protocol error: {0}")]
    Protocol(String),
}

impl AgentClient {
    pub fn new(host: &str, stream: Stream, nvml_lib: Option<String>) -> AgentClient {
        AgentClient {
            host: host.to_string(),
            stream,
            next: 1,
            nvml_lib,
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends `op` and waits for its reply, passing events to `on_event` as they come.
    pub async fn call(
        &mut self,
        op: Op,
        mut on_event: impl FnMut(Event) + Send,
    ) -> Result<Reply, CallError> {
        let id = self.next;
        self.next += 1;
        let req = Request {
            id,
            nvml_lib: self.nvml_lib.clone(),
            op,
        };
        let mut line =
            serde_json::to_string(&req).map_err(|e| CallError::Protocol(e.to_string()))?;
        line.push('\n');
        let lost = |e: std::io::Error| CallError::Lost(e.to_string());
        self.stream
            .stdin
            .write_all(line.as_bytes())
            .await
            .map_err(lost)?;
        self.stream.stdin.flush().await.map_err(lost)?;
        loop {
            let mut buf = String::new();
            let n = self.stream.stdout.read_line(&mut buf).await.map_err(lost)?;
            if n == 0 {
                return Err(CallError::Lost("the agent closed its output".into()));
            }
            let resp: proto::Response = serde_json::from_str(buf.trim_end())
                .map_err(|e| CallError::Protocol(format!("{e}: {}", buf.trim_end())))?;
            if resp.id != Some(id) {
                return Err(CallError::Protocol(format!(
                    "reply to request {:?}, expected {id}",
                    resp.id
                )));
            }
            match resp.body {
                Body::Event(e) => on_event(e),
                Body::Ok(r) => return Ok(r),
                Body::Err(e) => return Err(CallError::Agent(e)),
            }
        }
    }
}
