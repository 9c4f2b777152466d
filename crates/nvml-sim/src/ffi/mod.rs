//! The exported NVML C ABI (`nvml*` symbols of `libnvidia_ml_sim.so`): pointer checks,
//! opaque handle encoding, init refcount, error injection, call logging and panic guards
//! around the pure simulation in `sim`.
//!
//! Every export follows one shape: turn raw pointers into `Option<&mut T>` at the top (each
//! with a `SAFETY:` note on the NVML calling contract), then run the body through [`call`],
//! which checks initialisation, applies error injections, loads/stores the state under the
//! file lock, appends the call-log line and catches panics.
//!
//! The machinery (`session`, `handle`, `call`, `pointers`, `fill`) is shared by the export
//! files, one per part of NVML's API (`library`, `device`, `mig_mode`, `gpu_instance`,
//! `compute_instance`, `process`); each of them sees this module's imports and the
//! machinery through `use super::*`.

use std::ffi::{CStr, c_char, c_uint};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard};

use nvml_wrapper_sys::bindings::{
    nvmlComputeInstance_t, nvmlComputeInstanceInfo_t, nvmlComputeInstancePlacement_t,
    nvmlComputeInstanceProfileInfo_t, nvmlComputeInstanceProfileInfo_v2_t,
    nvmlComputeInstanceProfileInfo_v3_t, nvmlDevice_t, nvmlGpuInstance_t, nvmlGpuInstanceInfo_t,
    nvmlGpuInstancePlacement_t, nvmlGpuInstanceProfileInfo_t, nvmlGpuInstanceProfileInfo_v2_t,
    nvmlGpuInstanceProfileInfo_v3_t, nvmlMemory_t, nvmlMemory_v2_t, nvmlPciInfo_t,
    nvmlProcessInfo_t, nvmlReturn_t,
};
use serde_json::{Value, json};

use crate::codes::{
    ARGUMENT_VERSION_MISMATCH, Code, INSUFFICIENT_SIZE, INVALID_ARGUMENT, LIBRARY_NOT_FOUND,
    NOT_FOUND, NOT_SUPPORTED, SUCCESS, UNINITIALIZED, UNKNOWN, error_string,
};
use crate::hardware::{CI_PROFILE_INDEX_COUNT, GI_PROFILE_INDEX_COUNT, GiProfile};
use crate::sim::MigDevice;
use crate::state::{Gpu, GpuInstance, INIT_ENV, STATE_ENV, State, Store};

/// Driver version the simulator reports unless a host's state names another.
pub const DRIVER_VERSION: &str = crate::state::DEFAULT_DRIVER_VERSION;
/// NVML library version the simulator reports.
pub const NVML_VERSION: &str = "13.580.95.05-sim";

/// `NVML_VALUE_NOT_AVAILABLE`-style id for processes outside MIG.
const NO_ID: u32 = 0xFFFF_FFFF;
/// Bytes per MiB.
const MIB: u64 = 1024 * 1024;

// The machinery.
mod call;
mod fill;
mod handle;
mod pointers;
mod session;

// The exports.
mod compute_instance;
mod device;
mod gpu_instance;
mod library;
mod mig_mode;
mod process;

#[cfg(test)]
mod tests;

use call::*;
use fill::*;
use handle::*;
use pointers::*;
use session::*;
