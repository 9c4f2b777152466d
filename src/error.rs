//! The one error type that reaches `main`: a message, `hint:` lines, and the exit code.

use crate::report::exit_code;
use std::fmt::Write;

/// A failed command, ready to print.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub hints: Vec<String>,
    pub code: u8,
}

impl Failure {
    /// Bad input on the command line (unknown model, malformed layout): Ansible's 5.
    pub fn options(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hints: Vec::new(),
            code: exit_code::BAD_OPTIONS,
        }
    }

    /// A file that does not parse or validate: Ansible's parser-error 4.
    pub fn parse(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hints: Vec::new(),
            code: exit_code::PARSE_ERROR,
        }
    }

    /// The request is well-formed but cannot be done: 1.
    pub fn error(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hints: Vec::new(),
            code: exit_code::ERROR,
        }
    }

    /// Whoever read our output went away (`migfleet mig layouts ... | head`): stop quietly
    /// and successfully, as a filter in a pipeline should.
    pub fn closed_stdout() -> Failure {
        Failure {
            message: String::new(),
            hints: Vec::new(),
            code: exit_code::OK,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Failure {
        self.hints.push(hint.into());
        self
    }

    /// `error: ...` then one `hint: ...` line each; nothing for [`Failure::closed_stdout`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.message.is_empty() && self.hints.is_empty() {
            return out;
        }
        let _ = writeln!(out, "error: {}", self.message);
        for h in &self.hints {
            let _ = writeln!(out, "hint: {h}");
        }
        out
    }
}
