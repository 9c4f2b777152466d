//! The agent's error: a kind for programs, a message for people naming GPU, instance and
//! PIDs, and for `apply` the operations done before the failure.

use migfleet_mig::plan::Op as NvmlOp;
use migfleet_proto::{ErrorKind, ErrorReply};

#[derive(Debug)]
pub struct AgentError {
    pub kind: ErrorKind,
    pub message: String,
    pub gpu: Option<u32>,
    pub done: Vec<NvmlOp>,
}

pub type Result<T> = std::result::Result<T, AgentError>;

impl AgentError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> AgentError {
        AgentError {
            kind,
            message: message.into(),
            gpu: None,
            done: Vec::new(),
        }
    }
    pub fn nvml(message: impl Into<String>) -> AgentError {
        AgentError::new(ErrorKind::Nvml, message)
    }
    pub fn invalid(message: impl Into<String>) -> AgentError {
        AgentError::new(ErrorKind::Invalid, message)
    }
    pub fn command(message: impl Into<String>) -> AgentError {
        AgentError::new(ErrorKind::Command, message)
    }
    /// Attaches the GPU index, prefixing the message with it once.
    pub fn on_gpu(mut self, gpu: u32) -> AgentError {
        if self.gpu.is_none() {
            self.gpu = Some(gpu);
            self.message = format!("GPU {gpu}: {}", self.message);
        }
        self
    }
    pub fn into_reply(self) -> ErrorReply {
        ErrorReply {
            kind: self.kind,
            message: self.message,
            gpu: self.gpu,
            done: self.done,
        }
    }
}
