//! Local transport (`ansible_connection=local`): runs commands as child processes straight from argv, no shell.

use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::transport::{
    ExitWaiter, Output, RemoteCommand, SharedStderr, Stream, Transport, TransportError, check_sudo,
};

/// Runs commands on the controller itself.
pub struct LocalTransport {
    host: String,
}

impl LocalTransport {
    /// `host` is the inventory name (e.g. `localhost`).
    pub fn new(host: impl Into<String>) -> LocalTransport {
        LocalTransport { host: host.into() }
    }

    fn command(&self, cmd: &RemoteCommand) -> Result<Command, TransportError> {
        let argv = cmd.full_argv()?;
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        if !cmd.sudo {
            // With sudo the env travels as `env K=V` arguments (sudo resets the environment); without, set it
            // directly (the `env` prefix in argv does the same, this keeps it explicit).
            c.envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        c.kill_on_drop(true);
        // Its own process group: a Ctrl-C at the terminal is the controller's to handle
        // (finish the operation in flight, then stop), not a signal that kills the agent
        // halfway through an NVML change.
        c.process_group(0);
        Ok(c)
    }

    fn io_err(&self, context: String, e: std::io::Error) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            context,
            source: e,
        }
    }
}

fn status_of(s: std::process::ExitStatus) -> (Option<u32>, Option<String>) {
    use std::os::unix::process::ExitStatusExt;
    (
        s.code().map(|c| c as u32),
        s.signal().map(|n| format!("signal {n}")),
    )
}

#[async_trait::async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(
        &mut self,
        cmd: &RemoteCommand,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError> {
        let mut c = self.command(cmd)?;
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| self.io_err(format!("starting {:?}", cmd.argv[0]), e))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            tokio::spawn(async move {
                // A child that exits without reading its input is not an error.
                let _ = pipe.write_all(&data).await;
                let _ = pipe.shutdown().await;
            });
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| self.io_err(format!("waiting for {:?}", cmd.argv[0]), e))?;
        let (status, _) = status_of(out.status);
        if cmd.sudo {
            check_sudo(&self.host, status, &out.stderr)?;
        }
        Ok(Output {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn spawn(&mut self, cmd: &RemoteCommand) -> Result<Stream, TransportError> {
        let mut c = self.command(cmd)?;
        // A long-running process (the agent) is not killed with its handle: when the
        // controller goes away its stdin closes, and it ends after the operation it is
        // doing, as a remote agent does when its SSH connection drops.
        c.kill_on_drop(false);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| self.io_err(format!("starting {:?}", cmd.argv[0]), e))?;
        let missing = |what: &str| {
            self.io_err(
                format!("{what} pipe of {:?}", cmd.argv[0]),
                std::io::Error::other("not captured"),
            )
        };
        let stdin = child.stdin.take().ok_or_else(|| missing("stdin"))?;
        let stdout = child.stdout.take().ok_or_else(|| missing("stdout"))?;
        let mut stderr_pipe = child.stderr.take().ok_or_else(|| missing("stderr"))?;
        let stderr: SharedStderr = Arc::default();
        let err_buf = stderr.clone();
        let host = self.host.clone();
        let task = tokio::spawn(async move {
            let mut chunk = [0u8; 8192];
            loop {
                match stderr_pipe.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut b) = err_buf.lock() {
                            b.push(&chunk[..n]);
                        }
                    }
                }
            }
            let st = child.wait().await.map_err(|e| TransportError::Io {
                host,
                context: "waiting for local process".to_string(),
                source: e,
            })?;
            Ok(status_of(st))
        });
        Ok(Stream {
            stdin: Box::new(stdin),
            stdout: Box::new(tokio::io::BufReader::new(stdout)),
            exit: ExitWaiter::new(&self.host, cmd.sudo, stderr, task),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    #[tokio::test]
    async fn exec_env_and_stdin() {
        let mut t = LocalTransport::new("localhost");
        let out = t
            .exec(
                &RemoteCommand::new(["sh", "-c", "printf '%s:' \"$FOO\"; cat"]).env("FOO", "b a r"),
                Some(b"in put".to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(out.status, Some(0));
        assert_eq!(out.stdout, b"b a r:in put");
        let out = t
            .exec(
                &RemoteCommand::new(["sh", "-c", "echo e >&2; exit 3"]),
                None,
            )
            .await
            .unwrap();
        assert_eq!(out.status, Some(3));
        assert_eq!(out.stderr, b"e\n");
        assert!(
            t.exec(&RemoteCommand::new(["/nonexistent/x"]), None)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn spawn_roundtrip() {
        let mut t = LocalTransport::new("localhost");
        let mut s = t
            .spawn(&RemoteCommand::new([
                "sh",
                "-c",
                "echo started >&2; exec cat",
            ]))
            .await
            .unwrap();
        s.stdin.write_all(b"{\"a\":1}\n").await.unwrap();
        s.stdin.flush().await.unwrap();
        let mut line = String::new();
        s.stdout.read_line(&mut line).await.unwrap();
        assert_eq!(line, "{\"a\":1}\n");
        s.stdin.shutdown().await.unwrap();
        drop(s.stdin);
        let exit = s.exit.wait().await.unwrap();
        assert_eq!(exit.status, Some(0));
        assert_eq!(exit.stderr, b"started\n");
    }
}
