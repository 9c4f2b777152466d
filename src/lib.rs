//! The migfleet controller: command line, and (in later layers) inventory, playbooks,
//! transport, fleet execution and reporting. The MIG domain itself lives in
//! `migfleet-mig`.

pub mod cli;
pub mod error;
pub mod fleet;
pub mod inventory;
pub mod playbook;
pub mod report;
pub mod transport;
