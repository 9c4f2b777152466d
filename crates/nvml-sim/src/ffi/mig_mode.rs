//! Exports: MIG mode and GPU-instance profiles (`nvmlDeviceSetMigMode`, profile infos, placements).

use super::*;

/// `nvmlDeviceGetMigMode`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigMode(
    device: nvmlDevice_t,
    current_mode: *mut c_uint,
    pending_mode: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: each null or a writable unsigned int.
    let (cur, pend) = unsafe { (current_mode.as_mut(), pending_mode.as_mut()) };
    call(
        "nvmlDeviceGetMigMode",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let (cur, pend) = (cur.ok_or(INVALID_ARGUMENT)?, pend.ok_or(INVALID_ARGUMENT)?);
            let gpu = parent(s, h)?;
            gpu.mig_model()?;
            *cur = gpu.mig_mode_current;
            *pend = gpu.mig_mode_pending;
            Ok(())
        },
    )
}

/// `nvmlDeviceSetMigMode`: Ampere → pending until reset; Hopper+ → immediate when idle,
/// else pending with activation status `IN_USE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceSetMigMode(
    device: nvmlDevice_t,
    mode: c_uint,
    activation_status: *mut nvmlReturn_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable nvmlReturn_t.
    let out = unsafe { activation_status.as_mut() };
    call(
        "nvmlDeviceSetMigMode",
        hargs(h, json!({"mode": mode})),
        Access::Write,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let index = parent(s, h)?.index;
            let gpu = s.gpu_mut(index).ok_or(INVALID_ARGUMENT)?;
            *out = gpu.set_mig_mode(mode)?;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetGpuInstanceProfileInfo` (v1; works in either MIG mode).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceProfileInfo(
    device: nvmlDevice_t,
    profile: c_uint,
    info: *mut nvmlGpuInstanceProfileInfo_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable v1 profile info.
    let out = unsafe { info.as_mut() };
    call(
        "nvmlDeviceGetGpuInstanceProfileInfo",
        hargs(h, json!({"profile": profile})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            *out = gi_info_v1(gi_profile_by_index(parent(s, h)?, s.driver(), profile)?);
            Ok(())
        },
    )
}

/// `nvmlDeviceGetGpuInstanceProfileInfoV` (v2 or v3 by `info->version`; MIG must be on).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceProfileInfoV(
    device: nvmlDevice_t,
    profile: c_uint,
    info: *mut nvmlGpuInstanceProfileInfo_v2_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: `info` is null or a writable struct whose size matches the
    // version the caller stored in its first field; both v2 and v3 start with `version`.
    let version = unsafe { info.cast::<c_uint>().as_ref().copied() };
    call(
        "nvmlDeviceGetGpuInstanceProfileInfoV",
        hargs(h, json!({"profile": profile, "version": version})),
        Access::Read,
        |s| {
            let version = version.ok_or(INVALID_ARGUMENT)?;
            let v2 = struct_version::<nvmlGpuInstanceProfileInfo_v2_t>(2);
            let v3 = struct_version::<nvmlGpuInstanceProfileInfo_v3_t>(3);
            if version != v2 && version != v3 {
                return Err(ARGUMENT_VERSION_MISMATCH);
            }
            let gpu = parent(s, h)?;
            gpu.mig_enabled_model()?;
            let p = gi_profile_by_index(gpu, s.driver(), profile)?;
            let name = format!("MIG {}", p.name);
            if version == v2 {
                // SAFETY: non-null (version was read) and the caller declared a v2 struct.
                let out = unsafe { &mut *info };
                out.id = p.id;
                out.isP2pSupported = 0;
                out.sliceCount = p.slices;
                out.instanceCount = p.instance_count;
                out.multiprocessorCount = p.sms;
                out.copyEngineCount = p.copy_engines;
                out.decoderCount = p.decoders;
                out.encoderCount = p.encoders;
                out.jpegCount = p.jpegs;
                out.ofaCount = p.ofas;
                out.memorySizeMB = p.memory_mib;
                fill_chars(&mut out.name, &name);
            } else {
                // SAFETY: non-null (version was read) and the caller declared a v3 struct.
                let out = unsafe { &mut *info.cast::<nvmlGpuInstanceProfileInfo_v3_t>() };
                out.id = p.id;
                out.sliceCount = p.slices;
                out.instanceCount = p.instance_count;
                out.multiprocessorCount = p.sms;
                out.copyEngineCount = p.copy_engines;
                out.decoderCount = p.decoders;
                out.encoderCount = p.encoders;
                out.jpegCount = p.jpegs;
                out.ofaCount = p.ofas;
                out.memorySizeMB = p.memory_mib;
                fill_chars(&mut out.name, &name);
                out.capabilities = 0;
            }
            Ok(())
        },
    )
}

/// `nvmlDeviceGetGpuInstancePossiblePlacements_v2`: all placements of a profile id, in any
/// MIG mode; `placements == NULL` → count only.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstancePossiblePlacements_v2(
    device: nvmlDevice_t,
    profile_id: c_uint,
    placements: *mut nvmlGpuInstancePlacement_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let count = unsafe { count.as_mut() };
    call(
        "nvmlDeviceGetGpuInstancePossiblePlacements_v2",
        hargs(
            h,
            json!({"profile_id": profile_id, "count_only": placements.is_null()}),
        ),
        Access::Read,
        |s| {
            let count = count.ok_or(INVALID_ARGUMENT)?;
            let model = parent(s, h)?.mig_model()?;
            let p = model.profile_by_id(profile_id).ok_or(INVALID_ARGUMENT)?;
            let n = p.starts.len() as u32;
            if placements.is_null() {
                *count = n;
                return Ok(());
            }
            if *count < n {
                *count = n;
                return Err(INSUFFICIENT_SIZE);
            }
            // SAFETY: non-null and the caller declared room for `*count` >= n placements.
            let buf = unsafe { std::slice::from_raw_parts_mut(placements, n as usize) };
            for (slot, start) in buf.iter_mut().zip(p.starts) {
                *slot = nvmlGpuInstancePlacement_t {
                    start: *start,
                    size: p.mem_slices,
                };
            }
            *count = n;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetGpuInstanceRemainingCapacity`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceRemainingCapacity(
    device: nvmlDevice_t,
    profile_id: c_uint,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let out = unsafe { count.as_mut() };
    call(
        "nvmlDeviceGetGpuInstanceRemainingCapacity",
        hargs(h, json!({"profile_id": profile_id})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            *out = parent(s, h)?.gi_remaining_capacity(profile_id)?;
            Ok(())
        },
    )
}
