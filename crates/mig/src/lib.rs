//! The MIG domain, pure: the GPU model catalog, layouts with exact placements, geometry
//! enumeration, the minimal-change planner and mig-parted v1 configs.
//!
//! No I/O, no async, no NVML: every function takes values and returns values. The agent
//! executes what this crate decides; it never searches by trial.

pub mod catalog;
pub mod demand;
pub mod geometry;
pub mod layout;
pub mod notation;
pub mod pack;
pub mod plan;
pub mod spec;

pub use catalog::{GpuModel, ProfileIdx, find_model, model_by_pci, models};
