//! The MIG domain's integration tests, one binary: properties of the notation and the
//! planner, and mig-parted v1 files (valid, invalid, fuzzed, resolved against hosts).

/// No notation input makes the planner panic.
mod notation_props;
/// NVIDIA's default configs, each on every GPU it targets.
mod nvidia_defaults;
/// Planner properties: reaches the target, spares in-use instances, deterministic.
mod plan_props;
/// The config parser never panics.
mod spec_fuzz;
/// Malformed configs: exact positions and useful messages.
mod spec_invalid;
/// Configs resolved per GPU of a mixed host.
mod spec_resolve;
/// Well-formed configs decoded with positions.
mod spec_valid;
