//! Exports: compute instances (profiles, create, list, info, destroy).

use super::*;

/// The CI profile `profile` inside `gi` (`INVALID_ARGUMENT` past the constant range or for a
/// non-shared engine profile, `NOT_SUPPORTED` when too big for the GI).
pub(super) fn ci_profile(
    gpu: &Gpu,
    gi: &GpuInstance,
    profile: u32,
    eng: u32,
) -> Result<(crate::hardware::CiProfile, &'static GiProfile), Code> {
    if profile >= CI_PROFILE_INDEX_COUNT || eng != 0 {
        return Err(INVALID_ARGUMENT);
    }
    let gp = gpu.gi_profile(gi)?;
    Ok((gp.ci_profile(profile).ok_or(NOT_SUPPORTED)?, gp))
}

/// `nvmlGpuInstanceGetComputeInstanceProfileInfo` (v1).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstanceProfileInfo(
    gpu_instance: nvmlGpuInstance_t,
    profile: c_uint,
    eng_profile: c_uint,
    info: *mut nvmlComputeInstanceProfileInfo_t,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: null or a writable v1 CI profile info.
    let out = unsafe { info.as_mut() };
    call(
        "nvmlGpuInstanceGetComputeInstanceProfileInfo",
        hargs(h, json!({"profile": profile, "eng_profile": eng_profile})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (gpu, gi) = resolve_gi(s, h)?;
            let (cp, gp) = ci_profile(gpu, gi, profile, eng_profile)?;
            *out = nvmlComputeInstanceProfileInfo_t {
                id: cp.index,
                sliceCount: cp.slices,
                instanceCount: cp.instance_count,
                multiprocessorCount: cp.sms,
                sharedCopyEngineCount: gp.copy_engines,
                sharedDecoderCount: gp.decoders,
                sharedEncoderCount: gp.encoders,
                sharedJpegCount: gp.jpegs,
                sharedOfaCount: gp.ofas,
            };
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstanceProfileInfoV` (v2 or v3 by `info->version`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstanceProfileInfoV(
    gpu_instance: nvmlGpuInstance_t,
    profile: c_uint,
    eng_profile: c_uint,
    info: *mut nvmlComputeInstanceProfileInfo_v2_t,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: `info` is null or a writable struct of the version stored in its
    // first field; v2 and v3 both start with `version`.
    let version = unsafe { info.cast::<c_uint>().as_ref().copied() };
    call(
        "nvmlGpuInstanceGetComputeInstanceProfileInfoV",
        hargs(
            h,
            json!({"profile": profile, "eng_profile": eng_profile, "version": version}),
        ),
        Access::Read,
        |s| {
            let version = version.ok_or(INVALID_ARGUMENT)?;
            let v2 = struct_version::<nvmlComputeInstanceProfileInfo_v2_t>(2);
            let v3 = struct_version::<nvmlComputeInstanceProfileInfo_v3_t>(3);
            if version != v2 && version != v3 {
                return Err(ARGUMENT_VERSION_MISMATCH);
            }
            let (gpu, gi) = resolve_gi(s, h)?;
            let (cp, gp) = ci_profile(gpu, gi, profile, eng_profile)?;
            if version == v2 {
                // SAFETY: non-null (version was read) and the caller declared a v2 struct.
                let out = unsafe { &mut *info };
                out.id = cp.index;
                out.sliceCount = cp.slices;
                out.instanceCount = cp.instance_count;
                out.multiprocessorCount = cp.sms;
                out.sharedCopyEngineCount = gp.copy_engines;
                out.sharedDecoderCount = gp.decoders;
                out.sharedEncoderCount = gp.encoders;
                out.sharedJpegCount = gp.jpegs;
                out.sharedOfaCount = gp.ofas;
                fill_chars(&mut out.name, &cp.name);
            } else {
                // SAFETY: non-null (version was read) and the caller declared a v3 struct.
                let out = unsafe { &mut *info.cast::<nvmlComputeInstanceProfileInfo_v3_t>() };
                out.id = cp.index;
                out.sliceCount = cp.slices;
                out.instanceCount = cp.instance_count;
                out.multiprocessorCount = cp.sms;
                out.sharedCopyEngineCount = gp.copy_engines;
                out.sharedDecoderCount = gp.decoders;
                out.sharedEncoderCount = gp.encoders;
                out.sharedJpegCount = gp.jpegs;
                out.sharedOfaCount = gp.ofas;
                fill_chars(&mut out.name, &cp.name);
                out.capabilities = 0;
            }
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstancePossiblePlacements` (compute-slice units in the GI).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstancePossiblePlacements(
    gpu_instance: nvmlGpuInstance_t,
    profile_id: c_uint,
    placements: *mut nvmlComputeInstancePlacement_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let count = unsafe { count.as_mut() };
    call(
        "nvmlGpuInstanceGetComputeInstancePossiblePlacements",
        hargs(
            h,
            json!({"profile_id": profile_id, "count_only": placements.is_null()}),
        ),
        Access::Read,
        |s| {
            let count = count.ok_or(INVALID_ARGUMENT)?;
            let (gpu, gi) = resolve_gi(s, h)?;
            let (cp, gp) = ci_profile(gpu, gi, profile_id, 0)?;
            let starts = gp.ci_starts(cp.slices);
            let n = starts.len() as u32;
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
            for (slot, start) in buf.iter_mut().zip(starts) {
                *slot = nvmlComputeInstancePlacement_t {
                    start,
                    size: cp.slices,
                };
            }
            *count = n;
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstanceRemainingCapacity`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstanceRemainingCapacity(
    gpu_instance: nvmlGpuInstance_t,
    profile_id: c_uint,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let out = unsafe { count.as_mut() };
    call(
        "nvmlGpuInstanceGetComputeInstanceRemainingCapacity",
        hargs(h, json!({"profile_id": profile_id})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (gpu, gi) = resolve_gi(s, h)?;
            *out = gpu.ci_remaining_capacity(gi.id, profile_id)?;
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceCreateComputeInstance`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceCreateComputeInstance(
    gpu_instance: nvmlGpuInstance_t,
    profile_id: c_uint,
    compute_instance: *mut nvmlComputeInstance_t,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: null or a writable handle slot.
    let out = unsafe { compute_instance.as_mut() };
    call(
        "nvmlGpuInstanceCreateComputeInstance",
        hargs(h, json!({"profile_id": profile_id})),
        Access::Write,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (index, gi) = {
                let (gpu, gi) = resolve_gi(s, h)?;
                (gpu.index, gi.id)
            };
            let gpu = s.gpu_mut(index).ok_or(INVALID_ARGUMENT)?;
            let ci = gpu.create_ci(gi, profile_id)?;
            *out = Handle::Ci(index, gi, ci).ptr();
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstances`: CIs of one CI profile, by id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstances(
    gpu_instance: nvmlGpuInstance_t,
    profile_id: c_uint,
    compute_instances: *mut nvmlComputeInstance_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let count = unsafe { count.as_mut() };
    call(
        "nvmlGpuInstanceGetComputeInstances",
        hargs(h, json!({"profile_id": profile_id})),
        Access::Read,
        |s| {
            let count = count.ok_or(INVALID_ARGUMENT)?;
            let (gpu, gi) = resolve_gi(s, h)?;
            let (cp, _) = ci_profile(gpu, gi, profile_id, 0)?;
            if compute_instances.is_null() {
                return Err(INVALID_ARGUMENT);
            }
            let mut ids: Vec<u32> = gi
                .compute_instances
                .iter()
                .filter(|c| c.profile_id == profile_id)
                .map(|c| c.id)
                .collect();
            ids.sort_unstable();
            ids.truncate(cp.instance_count as usize);
            // SAFETY: non-null; NVML requires room for `instanceCount` handles and
            // `ids.len() <= instanceCount`.
            let buf = unsafe { std::slice::from_raw_parts_mut(compute_instances, ids.len()) };
            for (slot, id) in buf.iter_mut().zip(&ids) {
                *slot = Handle::Ci(gpu.index, gi.id, *id).ptr();
            }
            *count = ids.len() as u32;
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetComputeInstanceById`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetComputeInstanceById(
    gpu_instance: nvmlGpuInstance_t,
    id: c_uint,
    compute_instance: *mut nvmlComputeInstance_t,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: null or a writable handle slot.
    let out = unsafe { compute_instance.as_mut() };
    call(
        "nvmlGpuInstanceGetComputeInstanceById",
        hargs(h, json!({"id": id})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (gpu, gi) = resolve_gi(s, h)?;
            gi.ci(id).ok_or(NOT_FOUND)?;
            *out = Handle::Ci(gpu.index, gi.id, id).ptr();
            Ok(())
        },
    )
}

/// `nvmlComputeInstanceGetInfo_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlComputeInstanceGetInfo_v2(
    compute_instance: nvmlComputeInstance_t,
    info: *mut nvmlComputeInstanceInfo_t,
) -> nvmlReturn_t {
    let h = Handle::of(compute_instance);
    // SAFETY: NVML contract: null or a writable nvmlComputeInstanceInfo_t.
    let out = unsafe { info.as_mut() };
    call(
        "nvmlComputeInstanceGetInfo_v2",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let Some(Handle::Ci(g, gi, ci)) = h else {
                return Err(INVALID_ARGUMENT);
            };
            let (gpu, inst) = resolve_gi(s, Some(Handle::Gi(g, gi)))?;
            let c = inst.ci(ci).ok_or(NOT_FOUND)?;
            *out = nvmlComputeInstanceInfo_t {
                device: Handle::Gpu(gpu.index).ptr(),
                gpuInstance: Handle::Gi(gpu.index, gi).ptr(),
                id: c.id,
                profileId: c.profile_id,
                placement: nvmlComputeInstancePlacement_t {
                    start: c.start,
                    size: c.size,
                },
            };
            Ok(())
        },
    )
}

/// `nvmlComputeInstanceDestroy`: `IN_USE` while processes run on it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlComputeInstanceDestroy(
    compute_instance: nvmlComputeInstance_t,
) -> nvmlReturn_t {
    let h = Handle::of(compute_instance);
    call(
        "nvmlComputeInstanceDestroy",
        hargs(h, json!({})),
        Access::Write,
        |s| {
            let Some(Handle::Ci(g, gi, ci)) = h else {
                return Err(INVALID_ARGUMENT);
            };
            resolve_gi(s, Some(Handle::Gi(g, gi)))?;
            s.gpu_mut(g).ok_or(INVALID_ARGUMENT)?.destroy_ci(gi, ci)
        },
    )
}
