//! The migfleet controller: the command line (`cli`), Ansible inventories (`inventory`),
//! SSH and the agent protocol (`transport`), the fan-out over hosts (`fleet`), Lua
//! playbooks on top of it (`playbook`), Kubernetes nodes and pods (`k8s`), and how results
//! look (`report`). The MIG domain
//! itself lives in `migfleet-mig`, the wire contract in `migfleet-proto`.

pub mod ansible_cfg;
pub mod cli;
pub mod error;
pub mod fleet;
pub mod input;
pub mod inventory;
pub mod k8s;
pub mod playbook;
pub mod report;
pub mod transport;
