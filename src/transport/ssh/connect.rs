//! SSH connections with russh: TCP connect with timeout and TCP_NODELAY, host key verification, public key auth (key files, ssh-agent), and the multiplexed `SshTransport`.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, client};
use tokio::io::AsyncWriteExt;

use super::known_hosts::{KnownHosts, Verdict, fingerprint, known_hosts_line};
use crate::transport::{
    ExitWaiter, Output, RemoteCommand, SharedStderr, Stream, Transport, TransportError, check_sudo,
};

/// Connection settings shared by all hosts.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// Default `~/.ssh/known_hosts`.
    pub known_hosts: PathBuf,
    /// Record unknown host keys (OpenSSH `StrictHostKeyChecking=accept-new`); changed/revoked keys are always refused.
    pub accept_new: bool,
    /// TCP connect + SSH handshake limit, and separately the authentication limit. Default 10 s.
    pub connect_timeout: Duration,
    /// SSH keepalive interval (3 unanswered = dead). Default 15 s.
    pub keepalive: Duration,
    /// Private keys tried after the target's own key file. Default: the `~/.ssh/id_*` files that exist.
    pub identity_files: Vec<PathBuf>,
    /// Try ssh-agent keys (`SSH_AUTH_SOCK`) last.
    pub use_agent: bool,
    /// The ssh_config file read for every host (`--ssh-config`, else `~/.ssh/config` when
    /// it exists).
    pub config_file: Option<PathBuf>,
    /// ansible.cfg's SSH arguments: `ssh_args` (always), `ssh_common_args` and
    /// `ssh_extra_args` (for hosts whose inventory gives no `ansible_ssh_*_args`).
    pub cfg_args: CfgArgs,
    /// ansible.cfg's `remote_port`: the port of hosts whose inventory names none, over
    /// ssh_config's `Port`.
    pub default_port: Option<u16>,
}

/// SSH arguments ansible.cfg gives every host (see [`SshOptions::cfg_args`]).
#[derive(Debug, Clone, Default)]
pub struct CfgArgs {
    pub ssh_args: Option<String>,
    pub common: Option<String>,
    pub extra: Option<String>,
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

impl Default for SshOptions {
    fn default() -> SshOptions {
        let ssh = home().join(".ssh");
        SshOptions {
            known_hosts: ssh.join("known_hosts"),
            accept_new: false,
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(15),
            identity_files: ["id_ed25519", "id_ecdsa", "id_rsa"]
                .iter()
                .map(|n| ssh.join(n))
                .filter(|p| p.exists())
                .collect(),
            use_agent: true,
            config_file: super::config::default_path(),
            cfg_args: CfgArgs::default(),
            default_port: None,
        }
    }
}

/// Where ssh-agent keys come from: ssh_config's `IdentityAgent`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IdentityAgent {
    /// The agent `SSH_AUTH_SOCK` names, if any (the default).
    #[default]
    Env,
    /// `IdentityAgent none`: no agent.
    Off,
    /// The agent listening on this socket.
    Socket(PathBuf),
}

/// One host to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// Inventory name (used in messages).
    pub host: String,
    /// Address to connect to (and to look up in known_hosts).
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `ansible_ssh_private_key_file`, tried first.
    pub key_file: Option<PathBuf>,
    /// ssh_config's / the SSH arguments' `IdentityFile`s, tried next.
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: only the files named for this host (no defaults, no agent).
    pub identities_only: bool,
    /// `IdentityAgent` for this host (and its jump hosts).
    pub identity_agent: IdentityAgent,
    /// `UserKnownHostsFile` for this host (and its jump hosts).
    pub known_hosts: Option<PathBuf>,
    /// `StrictHostKeyChecking`: `Some(false)` records unknown keys (a changed key is
    /// still refused).
    pub strict: Option<bool>,
    pub connect_timeout: Option<Duration>,
    /// `ServerAliveInterval`.
    pub keepalive: Option<Duration>,
    /// `ProxyJump` hops, first to last; the target is reached through their SSH
    /// channels, each hop's host key verified.
    pub jumps: Vec<super::config::Hop>,
}

/// An authenticated SSH connection; each `exec`/`spawn` opens its own channel on it.
/// OpenSSH's `MaxSessions` (default 10) caps how many channels may be open at once.
pub struct SshTransport {
    target: Target,
    handle: Arc<client::Handle<ClientHandler>>,
    /// The jump hosts' connections, kept open while the target's runs through them.
    _jumps: Vec<client::Handle<ClientHandler>>,
}

#[derive(Debug)]
enum HandlerError {
    Ssh(russh::Error),
    HostKey(TransportError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> HandlerError {
        HandlerError::Ssh(e)
    }
}

struct ClientHandler {
    host: String,
    address: String,
    port: u16,
    known: Arc<KnownHosts>,
    accept_new: bool,
}

impl ClientHandler {
    async fn verify(&self, key: &PublicKey) -> Result<(), TransportError> {
        let fp = fingerprint(key);
        let verdict = match self.known.check(&self.address, self.port, key) {
            Verdict::Unknown if self.accept_new => {
                self.known.record(&self.address, self.port, key).await?
            }
            v => v,
        };
        match verdict {
            Verdict::Known => Ok(()),
            Verdict::Unknown => Err(TransportError::HostKeyUnknown {
                host: self.host.clone(),
                line: known_hosts_line(&self.address, self.port, key)
                    .unwrap_or_else(|| format!("(cannot encode the {fp} key)")),
                fingerprint: fp,
                known_hosts: self.known.path().to_path_buf(),
            }),
            Verdict::Changed { file, line } => Err(TransportError::HostKeyChanged {
                host: self.host.clone(),
                fingerprint: fp,
                file,
                line,
            }),
            Verdict::Revoked { file, line } => Err(TransportError::HostKeyRevoked {
                host: self.host.clone(),
                fingerprint: fp,
                file,
                line,
            }),
        }
    }
}

impl client::Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                self.verify(key).await.map_err(HandlerError::HostKey)?;
                Ok(true)
            }
            // Host certificates are not advertised (Preferred::host_key_certificates is empty), so this does not
            // happen; refuse rather than guess.
            PublicKeyOrCertificate::Certificate(_) => {
                Err(HandlerError::HostKey(TransportError::Ssh {
                    host: self.host.clone(),
                    reason:
                        "server presented a host certificate; host certificates are not supported"
                            .to_string(),
                }))
            }
        }
    }
}

/// The host-key algorithms to ask for: the types known_hosts records for this host first
/// (as OpenSSH orders them), so a host with several keys is checked against the one we
/// know rather than refused for offering another type.
fn host_key_order(known: &[russh::keys::Algorithm]) -> Vec<russh::keys::Algorithm> {
    let default = russh::Preferred::DEFAULT.key;
    let rsa = |a: &russh::keys::Algorithm| matches!(a, russh::keys::Algorithm::Rsa { .. });
    let same =
        |a: &russh::keys::Algorithm, b: &russh::keys::Algorithm| (rsa(a) && rsa(b)) || a == b;
    let mut order: Vec<russh::keys::Algorithm> = default
        .iter()
        .filter(|d| known.iter().any(|k| same(k, d)))
        .cloned()
        .collect();
    order.extend(
        default
            .iter()
            .filter(|d| !known.iter().any(|k| same(k, d)))
            .cloned(),
    );
    order
}

fn client_config(opts: &SshOptions, known: &[russh::keys::Algorithm]) -> client::Config {
    // Delayed zlib compression has desynced in russh; compression buys nothing for our traffic.
    let preferred = russh::Preferred {
        compression: Cow::Borrowed(&[russh::compression::NONE]),
        key: Cow::Owned(host_key_order(known)),
        ..Default::default()
    };
    client::Config {
        nodelay: true,
        keepalive_interval: Some(opts.keepalive),
        keepalive_max: 3,
        inactivity_timeout: None,
        preferred,
        ..Default::default()
    }
}

fn unreachable(target: &Target, reason: impl Into<String>) -> TransportError {
    TransportError::Unreachable {
        host: target.host.clone(),
        reason: reason.into(),
    }
}

/// A known_hosts file other than the run's (`UserKnownHostsFile`), loaded once.
fn known_for(path: &std::path::Path) -> Result<Arc<KnownHosts>, TransportError> {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<BTreeMap<PathBuf, Arc<KnownHosts>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    if let Some(k) = cache.lock().ok().and_then(|c| c.get(path).cloned()) {
        return Ok(k);
    }
    let k = Arc::new(KnownHosts::load(path)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(path.to_path_buf(), k.clone());
    }
    Ok(k)
}

/// Connects (through the jump hosts, if any), verifies each host key against `known` (or
/// the target's own known_hosts file), and authenticates.
pub async fn connect(
    target: &Target,
    opts: &SshOptions,
    known: Arc<KnownHosts>,
) -> Result<SshTransport, TransportError> {
    let known = match &target.known_hosts {
        Some(p) if *p != opts.known_hosts => known_for(p)?,
        _ => known,
    };
    let mut opts = opts.clone();
    if let Some(strict) = target.strict {
        opts.accept_new = opts.accept_new || !strict;
    }
    if let Some(t) = target.connect_timeout {
        opts.connect_timeout = t;
    }
    if let Some(k) = target.keepalive {
        opts.keepalive = k;
    }
    if target.identities_only {
        opts.identity_files.clear();
        opts.use_agent = false;
    }
    let opts = &opts;
    // The hops in order, the target last; each reached through the one before.
    let mut hops: Vec<Target> = target
        .jumps
        .iter()
        .map(|j| Target {
            host: format!("{} (jump host for {})", j.name, target.host),
            address: j.address.clone(),
            port: j.port,
            user: j.user.clone().unwrap_or_else(|| target.user.clone()),
            key_file: None,
            identity_files: j.identity_files.clone(),
            identity_agent: target.identity_agent.clone(),
            ..Target::default()
        })
        .collect();
    hops.push(target.clone());
    let mut handles: Vec<client::Handle<ClientHandler>> = Vec::new();
    for hop in &hops {
        let via = handles.last();
        let handle = connect_hop(hop, opts, known.clone(), via).await?;
        handles.push(handle);
    }
    let handle = handles.pop().ok_or_else(|| unreachable(target, "no hop"))?;
    Ok(SshTransport {
        target: target.clone(),
        handle: Arc::new(handle),
        _jumps: handles,
    })
}

/// One hop: over TCP, or through a `direct-tcpip` channel of the hop before it.
async fn connect_hop(
    target: &Target,
    opts: &SshOptions,
    known: Arc<KnownHosts>,
    via: Option<&client::Handle<ClientHandler>>,
) -> Result<client::Handle<ClientHandler>, TransportError> {
    let config = Arc::new(client_config(
        opts,
        &known.known_algorithms(&target.address, target.port),
    ));
    let handler = ClientHandler {
        host: target.host.clone(),
        address: target.address.clone(),
        port: target.port,
        known,
        accept_new: opts.accept_new,
    };
    let addr = format!("{}:{}", target.address, target.port);
    let map_handshake = |e: HandlerError| match e {
        HandlerError::HostKey(e) => e,
        HandlerError::Ssh(e) => unreachable(target, format!("ssh handshake with {addr}: {e}")),
    };
    let handshake = async {
        match via {
            None => {
                let sock = tokio::net::TcpStream::connect((target.address.as_str(), target.port))
                    .await
                    .map_err(|e| unreachable(target, format!("connect to {addr}: {e}")))?;
                sock.set_nodelay(true)
                    .map_err(|e| unreachable(target, format!("set TCP_NODELAY on {addr}: {e}")))?;
                client::connect_stream(config, sock, handler)
                    .await
                    .map_err(map_handshake)
            }
            Some(jump) => {
                let channel = jump
                    .channel_open_direct_tcpip(
                        target.address.clone(),
                        u32::from(target.port),
                        "127.0.0.1",
                        0,
                    )
                    .await
                    .map_err(|e| {
                        unreachable(target, format!("the jump host cannot reach {addr}: {e}"))
                    })?;
                client::connect_stream(config, channel.into_stream(), handler)
                    .await
                    .map_err(map_handshake)
            }
        }
    };
    let mut handle = match tokio::time::timeout(opts.connect_timeout, handshake).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(unreachable(
                target,
                format!(
                    "connection to {addr} timed out after {:?}",
                    opts.connect_timeout
                ),
            ));
        }
    };
    match tokio::time::timeout(
        opts.connect_timeout,
        authenticate(&mut handle, target, opts),
    )
    .await
    {
        Ok(r) => r?,
        Err(_) => {
            return Err(unreachable(
                target,
                format!(
                    "authentication on {addr} timed out after {:?}",
                    opts.connect_timeout
                ),
            ));
        }
    }
    Ok(handle)
}

/// The signature hash to use with an RSA key: asked of the server once per connection
/// (`cache`), `None` for other key types.
async fn rsa_hash_for(
    handle: &mut client::Handle<ClientHandler>,
    is_rsa: bool,
    cache: &mut Option<Option<russh::keys::HashAlg>>,
) -> Result<Option<russh::keys::HashAlg>, russh::Error> {
    if !is_rsa {
        return Ok(None);
    }
    if cache.is_none() {
        *cache = Some(handle.best_supported_rsa_hash().await?.flatten());
    }
    Ok(cache.flatten())
}

async fn authenticate(
    handle: &mut client::Handle<ClientHandler>,
    target: &Target,
    opts: &SshOptions,
) -> Result<(), TransportError> {
    let mut tried = Vec::new();
    let mut files: Vec<&PathBuf> = Vec::new();
    if let Some(k) = &target.key_file {
        files.push(k);
    }
    for f in target.identity_files.iter().chain(&opts.identity_files) {
        if !files.contains(&f) {
            files.push(f);
        }
    }
    let ssh_err = |e: russh::Error| TransportError::Ssh {
        host: target.host.clone(),
        reason: format!("during authentication: {e}"),
    };
    let mut rsa_hash: Option<Option<russh::keys::HashAlg>> = None;
    for path in files {
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(k) => k,
            Err(e) => {
                tried.push(format!("{} (unusable: {e})", path.display()));
                continue;
            }
        };
        let hash = rsa_hash_for(handle, key.algorithm().is_rsa(), &mut rsa_hash)
            .await
            .map_err(ssh_err)?;
        tried.push(path.display().to_string());
        let res = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(ssh_err)?;
        if res.success() {
            return Ok(());
        }
    }
    let socket = match &target.identity_agent {
        IdentityAgent::Env => std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
        IdentityAgent::Off => None,
        IdentityAgent::Socket(p) => Some(p.clone()),
    };
    if let Some(socket) = socket.filter(|_| opts.use_agent) {
        match russh::keys::agent::client::AgentClient::connect_uds(&socket).await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                for id in ids {
                    let key = id.public_key().into_owned();
                    let hash = rsa_hash_for(handle, key.algorithm().is_rsa(), &mut rsa_hash)
                        .await
                        .map_err(ssh_err)?;
                    let label = format!("agent key {}", fingerprint(&key));
                    let res = handle
                        .authenticate_publickey_with(target.user.clone(), key, hash, &mut agent)
                        .await;
                    match res {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(_) => tried.push(label),
                        Err(e) => tried.push(format!("{label} (agent error: {e})")),
                    }
                }
            }
            Err(e) => tried.push(format!(
                "ssh-agent at {} (unavailable: {e})",
                socket.display()
            )),
        }
    }
    Err(TransportError::Auth {
        host: target.host.clone(),
        tried,
    })
}

impl SshTransport {
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    fn ssh_err(&self, what: &str, e: russh::Error) -> TransportError {
        TransportError::Ssh {
            host: self.target.host.clone(),
            reason: format!("{what}: {e}"),
        }
    }

    async fn open(
        &self,
        cmd: &RemoteCommand,
    ) -> Result<russh::Channel<client::Msg>, TransportError> {
        let line = cmd.render()?;
        let ch = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| self.ssh_err("opening a channel", e))?;
        ch.exec(true, line)
            .await
            .map_err(|e| self.ssh_err("exec request", e))?;
        Ok(ch)
    }
}

#[async_trait::async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.target.host
    }

    async fn exec(
        &mut self,
        cmd: &RemoteCommand,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError> {
        let ch = self.open(cmd).await?;
        let (mut rd, wr) = ch.split();
        // Feed stdin concurrently with reading, so a large input cannot deadlock against output.
        let host = self.target.host.clone();
        let writer = tokio::spawn(async move {
            if let Some(data) = stdin {
                wr.data(&data[..]).await?;
            }
            wr.eof().await?;
            Ok::<_, russh::Error>(wr)
        });
        let mut out = Output::default();
        while let Some(msg) = rd.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        // The channel is closed. A process that exited without reading all of its stdin
        // (an upload script that failed early) leaves the writer waiting for window space
        // that never comes: what it did not write no longer matters.
        if !writer.is_finished() {
            writer.abort();
        }
        match writer.await {
            Ok(Ok(wr)) => {
                let _ = wr.close().await;
            }
            // The process may exit without reading all of stdin; that is its business, not an error.
            Ok(Err(_)) => {}
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                return Err(TransportError::Ssh {
                    host,
                    reason: format!("stdin writer: {e}"),
                });
            }
        }
        if self.handle.is_closed() && out.status.is_none() {
            return Err(TransportError::Ssh {
                host: self.target.host.clone(),
                reason: "connection lost while running a command".to_string(),
            });
        }
        if cmd.sudo {
            check_sudo(&self.target.host, out.status, &out.stderr)?;
        }
        Ok(out)
    }

    async fn spawn(&mut self, cmd: &RemoteCommand) -> Result<Stream, TransportError> {
        let ch = self.open(cmd).await?;
        let (mut rd, wr) = ch.split();
        let stdin = wr.make_writer();
        let (mut out_w, out_r) = tokio::io::duplex(64 * 1024);
        let stderr: SharedStderr = Arc::default();
        let err_buf = stderr.clone();
        let handle = self.handle.clone();
        let host = self.target.host.clone();
        let task = tokio::spawn(async move {
            let mut status = None;
            let mut signal = None;
            let mut stdout_open = true;
            while let Some(msg) = rd.wait().await {
                match msg {
                    // Once the reader is dropped, keep draining so the channel can finish.
                    ChannelMsg::Data { data } if stdout_open => {
                        stdout_open = out_w.write_all(&data).await.is_ok();
                    }
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        if let Ok(mut b) = err_buf.lock() {
                            b.push(&data);
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        signal = Some(format!("{signal_name:?}"))
                    }
                    ChannelMsg::Close => break,
                    _ => {}
                }
            }
            drop(out_w);
            let _ = wr.close().await;
            if status.is_none() && signal.is_none() && handle.is_closed() {
                return Err(TransportError::Ssh {
                    host,
                    reason: "connection lost while the process was running".to_string(),
                });
            }
            Ok((status, signal))
        });
        Ok(Stream {
            stdin: Box::new(stdin),
            stdout: Box::new(tokio::io::BufReader::new(out_r)),
            exit: ExitWaiter::new(&self.target.host, cmd.sudo, stderr, task),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::Algorithm;

    #[test]
    fn known_key_types_are_asked_for_first() {
        let order = host_key_order(&[Algorithm::Rsa { hash: None }]);
        let rsa = |a: &Algorithm| matches!(a, Algorithm::Rsa { .. });
        assert!(
            rsa(&order[0]) && rsa(&order[1]) && rsa(&order[2]),
            "{order:?}"
        );
        assert_eq!(order.len(), russh::Preferred::DEFAULT.key.len());
        assert_eq!(host_key_order(&[]), russh::Preferred::DEFAULT.key.to_vec());
    }
}
