//! Fan-out over hosts: the fleet loaded once per run ([`fanout`]), batches (`serial`), a
//! concurrency limit (`forks`) and a failure budget ([`executor`]), and each host's
//! session with its agent ([`session`]). Emits [`Event`]s; never prints. Knows nothing of
//! Lua or playbooks: those are built on top of it in `playbook`.

pub mod event;
pub mod executor;
pub mod fanout;
pub mod session;

pub use event::{Event, Events, GpuResult, ModeChange, Outcome, Status, TaskResult};
pub use executor::{FleetOptions, Serial};
pub use fanout::Fleet;
