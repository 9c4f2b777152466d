//! Fan-out over hosts: batches (`serial`), a concurrency limit (`forks`), a failure budget,
//! and the per-host session with its agent. Emits [`Event`]s; never prints.

pub mod event;
pub mod executor;
pub mod session;

pub use event::{Event, Outcome, Status};
pub use executor::{FleetOptions, Serial, run};
