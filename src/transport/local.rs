//! `ansible_connection=local`: commands run as child processes of the controller, straight
//! from argv.

use super::{Output, RemoteCommand, Stream, Transport, TransportError};
use std::process::Stdio;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::Command;

pub struct LocalTransport {
    host: String,
}

impl LocalTransport {
    pub fn new(host: &str) -> LocalTransport {
        LocalTransport {
            host: host.to_string(),
        }
    }

    fn command(&self, cmd: &RemoteCommand) -> Result<Command, TransportError> {
        let mut argv: Vec<String> = Vec::new();
        if cmd.sudo {
            argv.extend(["sudo", "-n", "--"].map(String::from));
        }
        argv.extend(cmd.argv.iter().cloned());
        let (program, args) = argv.split_first().ok_or_else(|| TransportError::Io {
            host: self.host.clone(),
            message: "empty command".into(),
        })?;
        let mut c = Command::new(program);
        c.args(args)
            .envs(cmd.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        Ok(c)
    }

    fn io(&self, e: std::io::Error) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            message: e.to_string(),
        }
    }
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
        let mut child = c.spawn().map_err(|e| self.io(e))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(&data).await.map_err(|e| self.io(e))?;
        }
        let out = child.wait_with_output().await.map_err(|e| self.io(e))?;
        Ok(Output {
            status: out.status.code().map(|c| c as u32),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    async fn spawn(&mut self, cmd: &RemoteCommand) -> Result<Stream, TransportError> {
        let mut c = self.command(cmd)?;
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = c.spawn().map_err(|e| self.io(e))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| self.io(std::io::Error::other("no stdin")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| self.io(std::io::Error::other("no stdout")))?;
        // The child lives as long as its pipes; reap it in the background when it ends.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        Ok(Stream {
            stdin: Box::new(stdin),
            stdout: Box::new(BufReader::new(stdout)),
        })
    }
}
