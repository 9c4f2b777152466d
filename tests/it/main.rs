//! migfleet's integration tests, one binary so the controller links once. Each module is
//! one concern; `support` holds what they share (temp dirs, the `migfleet` runner, sshd
//! test hosts, simulated fleets).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests and their helpers may panic

mod support;

/// The agent session: greeting, protocol version, timeouts, bounded replies.
mod agent_session;
/// `migfleet mig ...` end to end.
mod cli_mig;
/// Faults mid-run: NVML errors, stuck processes, a killed agent, a cut connection.
mod faults;
/// `ping`, `facts` and the fan-out against real sshd test hosts.
mod fleet_ssh;
/// Hostile inventories and input files: bounded, refused clearly.
mod input_probes;
/// Ctrl-C: finish what is in flight, then stop; twice: abort.
mod interrupts;
/// Inventories compared with ansible-core's recorded output.
mod inventory_conformance;
/// Kubernetes over real HTTP: the fake API server checked with kubectl; the k8s modules.
mod k8s;
/// Loading playbooks: data model, policies, validation errors with positions.
mod lua_loader;
/// Sandbox escapes and resource exhaustion.
mod lua_sandbox;
/// Hostile Lua that must end within its bound and be refused clearly.
mod probes;
/// Reboot and resume; the host lock.
mod reboot;
/// Rolling safely: restore on the way out, any_errors_fatal, retry files.
mod rolling;
/// `migfleet run` against sshd test hosts with simulated GPUs.
mod run_playbooks;
/// What people read, as snapshots.
mod snapshots;
/// Agent push over SSH.
mod transport_push;
/// The SSH transport: exec, host keys, timeouts, quoting.
mod transport_ssh;
