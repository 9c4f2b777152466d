//! mig-parted configuration files (`version: v1`): strict parsing with positions
//! ([`v1`]), and resolution of a selected config against one host's GPUs to a per-GPU
//! target ([`resolve`]).

pub mod spanned;
pub mod v1;

mod resolve;

pub use resolve::{GpuTarget, HostGpu, ResolvedGpu, resolve, select};
