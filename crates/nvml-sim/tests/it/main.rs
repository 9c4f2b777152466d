//! The simulator's integration tests, one binary: its CLI, and its library driven through
//! nvml-wrapper's real `dlopen` path.

mod common;

mod catalog_agrees;
/// The `nvml-sim` CLI.
mod cli;
/// The NVML C ABI through nvml-wrapper.
mod nvml_abi;
