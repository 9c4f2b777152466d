//! Raw NVML calls that nvml-wrapper's safe API lacks (GPU/compute instance create, list,
//! info, destroy; placements; MIG handle ids). The only `unsafe` in the agent. Every symbol
//! is looked up first, so a driver without it gives an error naming the function instead
//! of nvml-wrapper's panic.

#![allow(unsafe_code)]

use crate::error::{AgentError, Result};
use nvml_wrapper::Nvml;
use nvml_wrapper_sys::bindings::{
    nvmlComputeInstance_t, nvmlComputeInstanceInfo_t, nvmlComputeInstanceProfileInfo_t,
    nvmlDevice_t, nvmlGpuInstance_t, nvmlGpuInstanceInfo_t, nvmlGpuInstancePlacement_t,
    nvmlGpuInstanceProfileInfo_t, nvmlGpuInstanceProfileInfo_v2_t, nvmlReturn_t,
};
use std::mem;
use std::os::raw::c_uint;
use std::ptr;

pub const SUCCESS: nvmlReturn_t = 0;
pub const INVALID_ARGUMENT: nvmlReturn_t = 2;
pub const NOT_SUPPORTED: nvmlReturn_t = 3;
pub const NOT_FOUND: nvmlReturn_t = 6;

/// NVML's name for a return code, with its value.
pub fn describe(code: nvmlReturn_t) -> String {
    let name = match code {
        0 => "Success",
        1 => "Uninitialized",
        2 => "Invalid Argument",
        3 => "Not Supported",
        4 => "Insufficient Permissions",
        5 => "Already Initialized",
        6 => "Not Found",
        7 => "Insufficient Size",
        8 => "Insufficient External Power",
        9 => "Driver Not Loaded",
        10 => "Timeout",
        12 => "Library Not Found",
        13 => "Function Not Found",
        15 => "GPU Is Lost",
        16 => "Reset Required",
        17 => "Operating System Call Failed",
        19 => "In Use",
        22 => "No Data",
        23 => "Insufficient Resources",
        25 => "Argument Version Mismatch",
        29 => "Invalid State",
        _ => "Unknown Error",
    };
    format!("{name} (NVML error {code})")
}

macro_rules! sym {
    ($nvml:expr, $name:ident) => {
        $nvml.lib().$name.as_ref().map_err(|_| {
            AgentError::nvml(format!(
                "the NVML library has no `{}` (driver too old for MIG?)",
                stringify!($name)
            ))
        })?
    };
}

fn check(code: nvmlReturn_t, what: &str) -> Result<()> {
    if code == SUCCESS {
        Ok(())
    } else {
        Err(AgentError::nvml(format!("{what}: {}", describe(code))))
    }
}

/// GI profile info for an NVML profile index; `None` when the GPU has no such profile.
pub fn gi_profile(
    nvml: &Nvml,
    dev: nvmlDevice_t,
    index: u32,
) -> Result<Option<nvmlGpuInstanceProfileInfo_t>> {
    let f = sym!(nvml, nvmlDeviceGetGpuInstanceProfileInfo);
    // SAFETY: `info` is a plain C struct NVML fills; zeroed is a valid initial value and
    // the pointer is valid for the call. `dev` is a live handle from nvml-wrapper.
    let (code, info) = unsafe {
        let mut info: nvmlGpuInstanceProfileInfo_t = mem::zeroed();
        (f(dev, index, &mut info), info)
    };
    match code {
        SUCCESS => Ok(Some(info)),
        NOT_SUPPORTED | INVALID_ARGUMENT => Ok(None),
        c => Err(AgentError::nvml(format!(
            "profile info {index}: {}",
            describe(c)
        ))),
    }
}

/// The profile's name from the versioned call (`MIG 1g.10gb` -> `1g.10gb`), when the
/// driver has it (MIG must be on).
pub fn gi_profile_name(nvml: &Nvml, dev: nvmlDevice_t, index: u32) -> Option<String> {
    let f = nvml
        .lib()
        .nvmlDeviceGetGpuInstanceProfileInfoV
        .as_ref()
        .ok()?;
    // SAFETY: as above; `version` is set as nvml.h's macro does (size | version << 24).
    let (code, info) = unsafe {
        let mut info: nvmlGpuInstanceProfileInfo_v2_t = mem::zeroed();
        info.version = (mem::size_of::<nvmlGpuInstanceProfileInfo_v2_t>() as c_uint) | (2 << 24);
        (f(dev, index, &mut info), info)
    };
    if code != SUCCESS {
        return None;
    }
    let bytes: Vec<u8> = info
        .name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let name = String::from_utf8_lossy(&bytes).to_string();
    let name = name
        .strip_prefix("MIG ")
        .unwrap_or(&name)
        .trim()
        .to_string();
    (!name.is_empty()).then_some(name)
}

/// Every possible placement of a profile (by the driver's profile id), free or not.
pub fn placements(nvml: &Nvml, dev: nvmlDevice_t, profile_id: u32) -> Result<Vec<(u8, u8)>> {
    let f = sym!(nvml, nvmlDeviceGetGpuInstancePossiblePlacements_v2);
    let mut count: c_uint = 0;
    // SAFETY: a null array with a valid count pointer asks for the count only.
    let code = unsafe { f(dev, profile_id, ptr::null_mut(), &mut count) };
    check(code, "possible placements")?;
    let mut buf = vec![nvmlGpuInstancePlacement_t { start: 0, size: 0 }; count as usize];
    // SAFETY: `buf` holds `count` elements, as NVML was told.
    let code = unsafe { f(dev, profile_id, buf.as_mut_ptr(), &mut count) };
    check(code, "possible placements")?;
    buf.truncate(count as usize);
    Ok(buf.iter().map(|p| (p.start as u8, p.size as u8)).collect())
}

/// The GPU instances of one profile.
pub fn gpu_instances(
    nvml: &Nvml,
    dev: nvmlDevice_t,
    profile_id: u32,
    max: u32,
) -> Result<Vec<nvmlGpuInstance_t>> {
    let f = sym!(nvml, nvmlDeviceGetGpuInstances);
    let mut buf: Vec<nvmlGpuInstance_t> = vec![ptr::null_mut(); max.max(1) as usize];
    let mut count: c_uint = 0;
    // SAFETY: `buf` has room for `max` handles, at least the profile's instance count.
    let code = unsafe { f(dev, profile_id, buf.as_mut_ptr(), &mut count) };
    listed(code, buf, count, "list GPU instances")
}

/// `(GI id, profile id, start, size)`.
pub fn gi_info(nvml: &Nvml, gi: nvmlGpuInstance_t) -> Result<(u32, u32, u8, u8)> {
    let f = sym!(nvml, nvmlGpuInstanceGetInfo);
    // SAFETY: `info` is a plain C struct; `gi` came from NVML.
    let (code, info) = unsafe {
        let mut info: nvmlGpuInstanceInfo_t = mem::zeroed();
        (f(gi, &mut info), info)
    };
    check(code, "GPU instance info")?;
    Ok((
        info.id,
        info.profileId,
        info.placement.start as u8,
        info.placement.size as u8,
    ))
}

pub fn gi_by_id(nvml: &Nvml, dev: nvmlDevice_t, id: u32) -> Result<nvmlGpuInstance_t> {
    let f = sym!(nvml, nvmlDeviceGetGpuInstanceById);
    let mut gi: nvmlGpuInstance_t = ptr::null_mut();
    // SAFETY: out-pointer valid for the call.
    let code = unsafe { f(dev, id, &mut gi) };
    check(code, &format!("GPU instance {id}"))?;
    Ok(gi)
}

/// CI profile info by NVML CI profile index; `None` when the GI has no such profile.
pub fn ci_profile(
    nvml: &Nvml,
    gi: nvmlGpuInstance_t,
    index: u32,
) -> Result<Option<nvmlComputeInstanceProfileInfo_t>> {
    let f = sym!(nvml, nvmlGpuInstanceGetComputeInstanceProfileInfo);
    // SAFETY: plain C struct out-parameter; engine profile 0 is NVML's "shared".
    let (code, info) = unsafe {
        let mut info: nvmlComputeInstanceProfileInfo_t = mem::zeroed();
        (f(gi, index, 0, &mut info), info)
    };
    match code {
        SUCCESS => Ok(Some(info)),
        NOT_SUPPORTED | INVALID_ARGUMENT => Ok(None),
        c => Err(AgentError::nvml(format!(
            "compute instance profile {index}: {}",
            describe(c)
        ))),
    }
}

pub fn compute_instances(
    nvml: &Nvml,
    gi: nvmlGpuInstance_t,
    profile_id: u32,
    max: u32,
) -> Result<Vec<nvmlComputeInstance_t>> {
    let f = sym!(nvml, nvmlGpuInstanceGetComputeInstances);
    let mut buf: Vec<nvmlComputeInstance_t> = vec![ptr::null_mut(); max.max(1) as usize];
    let mut count: c_uint = 0;
    // SAFETY: `buf` has room for `max` handles, the CI profile's instance count.
    let code = unsafe { f(gi, profile_id, buf.as_mut_ptr(), &mut count) };
    listed(code, buf, count, "list compute instances")
}

/// The answer of a list call: the first `count` handles, none when the driver has none
/// of that profile (or MIG is off), an error otherwise.
fn listed<H>(code: nvmlReturn_t, mut buf: Vec<H>, count: c_uint, what: &str) -> Result<Vec<H>> {
    match code {
        SUCCESS => {
            buf.truncate(count as usize);
            Ok(buf)
        }
        NOT_FOUND | NOT_SUPPORTED => Ok(Vec::new()),
        c => Err(AgentError::nvml(format!("{what}: {}", describe(c)))),
    }
}

/// `(CI id, CI profile id)`.
pub fn ci_info(nvml: &Nvml, ci: nvmlComputeInstance_t) -> Result<(u32, u32)> {
    let f = sym!(nvml, nvmlComputeInstanceGetInfo_v2);
    // SAFETY: plain C struct out-parameter.
    let (code, info) = unsafe {
        let mut info: nvmlComputeInstanceInfo_t = mem::zeroed();
        (f(ci, &mut info), info)
    };
    check(code, "compute instance info")?;
    Ok((info.id, info.profileId))
}

pub fn ci_by_id(nvml: &Nvml, gi: nvmlGpuInstance_t, id: u32) -> Result<nvmlComputeInstance_t> {
    let f = sym!(nvml, nvmlGpuInstanceGetComputeInstanceById);
    let mut ci: nvmlComputeInstance_t = ptr::null_mut();
    // SAFETY: out-pointer valid for the call.
    let code = unsafe { f(gi, id, &mut ci) };
    check(code, &format!("compute instance {id}"))?;
    Ok(ci)
}

/// Creates a GI at an explicit placement; returns its id.
pub fn create_gi(
    nvml: &Nvml,
    dev: nvmlDevice_t,
    profile_id: u32,
    start: u8,
    size: u8,
) -> Result<u32> {
    let f = sym!(nvml, nvmlDeviceCreateGpuInstanceWithPlacement);
    let placement = nvmlGpuInstancePlacement_t {
        start: start.into(),
        size: size.into(),
    };
    let mut gi: nvmlGpuInstance_t = ptr::null_mut();
    // SAFETY: `placement` lives across the call; `gi` is a valid out-pointer.
    let code = unsafe { f(dev, profile_id, &placement, &mut gi) };
    check(code, "create GPU instance")?;
    Ok(gi_info(nvml, gi)?.0)
}

/// Creates a CI (by CI profile id) in a GI; returns its id.
pub fn create_ci(nvml: &Nvml, gi: nvmlGpuInstance_t, ci_profile_id: u32) -> Result<u32> {
    let f = sym!(nvml, nvmlGpuInstanceCreateComputeInstance);
    let mut ci: nvmlComputeInstance_t = ptr::null_mut();
    // SAFETY: `ci` is a valid out-pointer.
    let code = unsafe { f(gi, ci_profile_id, &mut ci) };
    check(code, "create compute instance")?;
    Ok(ci_info(nvml, ci)?.0)
}

pub fn destroy_gi(nvml: &Nvml, gi: nvmlGpuInstance_t) -> Result<()> {
    let f = sym!(nvml, nvmlGpuInstanceDestroy);
    // SAFETY: `gi` came from NVML for this device.
    check(unsafe { f(gi) }, "destroy GPU instance")
}

pub fn destroy_ci(nvml: &Nvml, ci: nvmlComputeInstance_t) -> Result<()> {
    let f = sym!(nvml, nvmlComputeInstanceDestroy);
    // SAFETY: `ci` came from NVML for this GI.
    check(unsafe { f(ci) }, "destroy compute instance")
}

/// The GI and CI ids behind a MIG device handle.
pub fn mig_ids(nvml: &Nvml, mig: nvmlDevice_t) -> Result<(u32, u32)> {
    let gi_f = sym!(nvml, nvmlDeviceGetGpuInstanceId);
    let ci_f = sym!(nvml, nvmlDeviceGetComputeInstanceId);
    let (mut gi, mut ci): (c_uint, c_uint) = (0, 0);
    // SAFETY: out-pointers valid for the calls; `mig` is a MIG device handle from NVML.
    let code = unsafe { gi_f(mig, &mut gi) };
    check(code, "GPU instance id of MIG device")?;
    // SAFETY: as above.
    let code = unsafe { ci_f(mig, &mut ci) };
    check(code, "compute instance id of MIG device")?;
    Ok((gi, ci))
}
