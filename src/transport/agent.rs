//! The controller's side of the agent protocol: send a request, collect its events, get
//! the final reply, each call bounded in time and each reply line bounded in length. One
//! client per host for the whole run.

use super::Stream;
use migfleet_proto::{
    self as proto, Body, ErrorReply, Event, MAX_REPLY_LINE_BYTES, Op, Reply, Request,
};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt};

/// How long each operation may take before the host counts as failed, per op name.
/// Defaults suit real drivers (a MIG create or destroy takes up to a second on some
/// GPUs); hosts override them with `migfleet_agent_timeouts` and tasks with `timeout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    by_op: BTreeMap<String, Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        let secs = |op: &str, s: u64| (op.to_string(), Duration::from_secs(s));
        Timeouts {
            by_op: [
                secs("hello", 30),
                secs("facts", 120),
                secs("set_mig_mode", 300),
                secs("reset_gpus", 600),
                secs("apply", 900),
                // `drain` waits for GPU processes for its own `timeout_s`; this is on top.
                secs("drain", 120),
                secs("restore", 300),
                secs("reboot", 60),
                // `lock` waits for another session for its own `wait_s`; this is on top.
                secs("lock", 30),
                // Not an op: checking, uploading (when needed) and starting the agent.
                secs(START, 300),
            ]
            .into_iter()
            .collect(),
        }
    }
}

impl Timeouts {
    /// The defaults with `overrides` (op name -> seconds) on top; unknown op names are
    /// an error naming the valid ones.
    pub fn with_overrides(overrides: &BTreeMap<String, u64>) -> Result<Timeouts, String> {
        let mut t = Timeouts::default();
        for (op, secs) in overrides {
            if !Op::NAMES.contains(&op.as_str()) && op != START {
                return Err(format!(
                    "unknown agent operation `{op}` (operations: {})",
                    Op::NAMES.join(", ")
                ));
            }
            t.by_op.insert(op.clone(), Duration::from_secs(*secs));
        }
        Ok(t)
    }

    /// How long starting the agent may take: checking it, uploading it when the host
    /// lacks it, and starting it.
    pub fn start(&self) -> Duration {
        self.by_op
            .get(START)
            .copied()
            .unwrap_or(Duration::from_secs(300))
    }

    /// The limit for `op`: its own, plus the wait a `drain` asks for.
    pub fn for_op(&self, op: &Op) -> Duration {
        let base = self
            .by_op
            .get(op.name())
            .copied()
            .unwrap_or(Duration::from_secs(300));
        match op {
            Op::Drain { timeout_s, .. } => base.saturating_add(Duration::from_secs(*timeout_s)),
            Op::Lock { wait_s, .. } => base.saturating_add(Duration::from_secs(*wait_s)),
            _ => base,
        }
    }
}

/// The key of the agent's start in `migfleet_agent_timeouts` (beside the op names).
pub const START: &str = "start";

pub struct AgentClient {
    host: String,
    stream: Stream,
    next: u64,
    nvml_lib: Option<String>,
    /// Set once a call timed out or the protocol broke: later replies cannot be trusted.
    broken: Option<String>,
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
    /// The agent did not answer in time; the session cannot be used any more.
    #[error("the agent did not answer `{op}` within {secs} s", secs = .after.as_secs())]
    Timeout { op: &'static str, after: Duration },
}

impl CallError {
    /// The session is gone: further calls cannot work (unreachable, or the protocol is
    /// out of step).
    pub fn ends_session(&self) -> bool {
        !matches!(self, CallError::Agent(_))
    }
}

/// Encodes one request line (with its newline).
pub fn request_line(id: u64, op: Op, nvml_lib: Option<String>) -> Result<String, CallError> {
    let req = Request { id, nvml_lib, op };
    let mut line = serde_json::to_string(&req).map_err(|e| CallError::Protocol(e.to_string()))?;
    line.push('\n');
    Ok(line)
}

/// Reads one line of at most `max` bytes (without its newline); `None` at end of input.
async fn read_bounded_line(
    input: &mut (dyn AsyncBufRead + Send + Unpin),
    max: usize,
) -> Result<Option<Vec<u8>>, CallError> {
    let lost = |e: std::io::Error| CallError::Lost(e.to_string());
    let mut line = Vec::new();
    loop {
        let chunk = input.fill_buf().await.map_err(lost)?;
        if chunk.is_empty() {
            return Ok((!line.is_empty()).then_some(line));
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        line.extend_from_slice(&chunk[..take]);
        input.consume(take);
        if line.len() > max + 1 {
            return Err(CallError::Protocol(format!(
                "a reply line longer than {max} bytes"
            )));
        }
        if done {
            line.pop();
            return Ok(Some(line));
        }
    }
}

impl AgentClient {
    /// A client over the agent's stdio. `first_id` is the id the next request gets
    /// (requests written before the client existed took the ones below it).
    pub fn new(host: &str, stream: Stream, nvml_lib: Option<String>, first_id: u64) -> AgentClient {
        AgentClient {
            host: host.to_string(),
            stream,
            next: first_id,
            nvml_lib,
            broken: None,
        }
    }

    /// Closes the agent's stdin (it exits at end of input); later calls fail.
    pub async fn close(&mut self) {
        let _ = self.stream.stdin.shutdown().await;
        self.broken = Some("the session was closed".to_string());
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn nvml_lib(&self) -> Option<String> {
        self.nvml_lib.clone()
    }

    /// The mark of the agent's stderr so far (see [`AgentClient::stderr_since`]).
    pub fn stderr_mark(&self) -> u64 {
        self.stream.exit.stderr_mark()
    }

    /// The agent's stderr lines after `mark`.
    pub fn stderr_since(&self, mark: u64) -> Vec<String> {
        String::from_utf8_lossy(&self.stream.exit.stderr_since(mark))
            .lines()
            .map(str::to_string)
            .filter(|l| !l.trim().is_empty())
            .collect()
    }

    /// Sends `op` and waits at most `limit` for its reply, passing events to `on_event`
    /// as they come.
    pub async fn call(
        &mut self,
        op: Op,
        limit: Duration,
        on_event: impl FnMut(Event) + Send,
    ) -> Result<Reply, CallError> {
        if let Some(why) = &self.broken {
            return Err(CallError::Lost(why.clone()));
        }
        let name = op.name();
        let id = self.next;
        self.next += 1;
        let line = request_line(id, op, self.nvml_lib.clone())?;
        let exchange = async {
            let lost = |e: std::io::Error| CallError::Lost(e.to_string());
            self.stream
                .stdin
                .write_all(line.as_bytes())
                .await
                .map_err(lost)?;
            self.stream.stdin.flush().await.map_err(lost)?;
            self.receive(id, on_event).await
        };
        let result = match tokio::time::timeout(limit, exchange).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout {
                op: name,
                after: limit,
            }),
        };
        if let Err(e) = &result
            && e.ends_session()
        {
            self.broken = Some(e.to_string());
        }
        result
    }

    /// Waits at most `limit` for the reply to a request written earlier (`id`).
    pub async fn reply_to(
        &mut self,
        id: u64,
        op: &'static str,
        limit: Duration,
        on_event: impl FnMut(Event) + Send,
    ) -> Result<Reply, CallError> {
        let result = match tokio::time::timeout(limit, self.receive(id, on_event)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::Timeout { op, after: limit }),
        };
        if let Err(e) = &result
            && e.ends_session()
        {
            self.broken = Some(e.to_string());
        }
        result
    }

    async fn receive(
        &mut self,
        id: u64,
        mut on_event: impl FnMut(Event) + Send,
    ) -> Result<Reply, CallError> {
        loop {
            let Some(bytes) =
                read_bounded_line(&mut *self.stream.stdout, MAX_REPLY_LINE_BYTES).await?
            else {
                return Err(CallError::Lost("the agent closed its output".into()));
            };
            let text = String::from_utf8_lossy(&bytes);
            let resp: proto::Response = serde_json::from_str(text.trim_end()).map_err(|e| {
                let mut shown = text.trim_end().to_string();
                if shown.len() > 200 {
                    shown.truncate(200);
                    shown.push_str("...");
                }
                CallError::Protocol(format!("{e}: {shown}"))
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reply_lines_are_bounded() {
        let data = format!("{}\n{{}}\n", "x".repeat(100));
        let mut r = tokio::io::BufReader::with_capacity(16, data.as_bytes());
        let e = read_bounded_line(&mut r, 50).await.unwrap_err();
        assert!(e.to_string().contains("longer than 50 bytes"), "{e}");
        let mut r = tokio::io::BufReader::with_capacity(16, "ab\ncd".as_bytes());
        assert_eq!(
            read_bounded_line(&mut r, 50).await.unwrap(),
            Some(b"ab".to_vec())
        );
        assert_eq!(
            read_bounded_line(&mut r, 50).await.unwrap(),
            Some(b"cd".to_vec())
        );
        assert_eq!(read_bounded_line(&mut r, 50).await.unwrap(), None);
    }

    #[test]
    fn timeouts_default_per_op_and_take_overrides() {
        let t = Timeouts::default();
        assert_eq!(t.for_op(&Op::Hello), Duration::from_secs(30));
        let drain = Op::Drain {
            units: vec![],
            gpus: vec![],
            timeout_s: 300,
            signal: None,
            systemctl: None,
        };
        assert_eq!(t.for_op(&drain), Duration::from_secs(420));
        let t =
            Timeouts::with_overrides(&[("apply".to_string(), 5)].into_iter().collect()).unwrap();
        let apply = Op::Apply {
            gpus: vec![],
            dry_run: false,
            allow_destroy_in_use: false,
            on_busy: Default::default(),
            assume: vec![],
        };
        assert_eq!(t.for_op(&apply), Duration::from_secs(5));
        let e =
            Timeouts::with_overrides(&[("aply".to_string(), 5)].into_iter().collect()).unwrap_err();
        assert!(e.contains("unknown agent operation `aply`"), "{e}");
    }
}
