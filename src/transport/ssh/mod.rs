//! SSH transport: connection setup and authentication (`connect`), host key verification (`known_hosts`).

pub mod config;
pub mod connect;
pub mod known_hosts;

pub use connect::{IdentityAgent, SshOptions, SshTransport, Target, connect};
pub use known_hosts::{KnownHosts, Verdict};
