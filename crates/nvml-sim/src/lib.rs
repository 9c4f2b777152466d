//! A simulated `libnvidia-ml.so`: the NVML C ABI subset migfleet's agent calls, backed by a
//! JSON state file named by `NVML_SIM_STATE`, plus the Rust API the `nvml-sim` CLI uses.
//!
//! Build output: `target/<profile>/libnvidia_ml_sim.so`; point `nvml-wrapper`'s
//! `Nvml::builder().lib_path(..)` at it. Modules: `hardware` (model/profile tables),
//! `state` (file format, locking, call log), `sim` (driver behaviour), `ffi` (exports).

pub mod codes;
pub mod hardware;
pub mod sim;
pub mod state;

#[allow(unsafe_code)]
mod ffi;

pub use ffi::{DRIVER_VERSION, NVML_VERSION};
