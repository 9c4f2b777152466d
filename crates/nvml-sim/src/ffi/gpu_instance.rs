//! Exports: GPU instances (create with or without a placement, list, info, destroy).

use super::*;

pub(super) fn create_gi(
    s: &mut State,
    h: Option<Handle>,
    profile_id: u32,
    placement: Option<(u32, u32)>,
    out: Option<&mut nvmlGpuInstance_t>,
) -> Result<(), Code> {
    let out = out.ok_or(INVALID_ARGUMENT)?;
    let index = parent(s, h)?.index;
    let gpu = s.gpu_mut(index).ok_or(INVALID_ARGUMENT)?;
    let id = gpu.create_gi(profile_id, placement)?;
    *out = Handle::Gi(index, id).ptr();
    Ok(())
}

/// `nvmlDeviceCreateGpuInstance`: driver-chosen placement (highest free valid start).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceCreateGpuInstance(
    device: nvmlDevice_t,
    profile_id: c_uint,
    gpu_instance: *mut nvmlGpuInstance_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable handle slot.
    let out = unsafe { gpu_instance.as_mut() };
    call(
        "nvmlDeviceCreateGpuInstance",
        hargs(h, json!({"profile_id": profile_id})),
        Access::Write,
        |s| create_gi(s, h, profile_id, None, out),
    )
}

/// `nvmlDeviceCreateGpuInstanceWithPlacement`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceCreateGpuInstanceWithPlacement(
    device: nvmlDevice_t,
    profile_id: c_uint,
    placement: *const nvmlGpuInstancePlacement_t,
    gpu_instance: *mut nvmlGpuInstance_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: `placement` null or readable; `gpu_instance` null or writable.
    let (placement, out) = unsafe { (placement.as_ref().copied(), gpu_instance.as_mut()) };
    let pargs = placement.map(|p| json!({"start": p.start, "size": p.size}));
    call(
        "nvmlDeviceCreateGpuInstanceWithPlacement",
        hargs(h, json!({"profile_id": profile_id, "placement": pargs})),
        Access::Write,
        |s| {
            let p = placement.ok_or(INVALID_ARGUMENT)?;
            create_gi(s, h, profile_id, Some((p.start, p.size)), out)
        },
    )
}

/// `nvmlDeviceGetGpuInstances`: existing GIs of one profile id, by GI id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstances(
    device: nvmlDevice_t,
    profile_id: c_uint,
    gpu_instances: *mut nvmlGpuInstance_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let count = unsafe { count.as_mut() };
    call(
        "nvmlDeviceGetGpuInstances",
        hargs(h, json!({"profile_id": profile_id})),
        Access::Read,
        |s| {
            let count = count.ok_or(INVALID_ARGUMENT)?;
            let gpu = parent(s, h)?;
            let model = gpu.mig_enabled_model()?;
            let p = model.profile_by_id(profile_id).ok_or(INVALID_ARGUMENT)?;
            if gpu_instances.is_null() {
                return Err(INVALID_ARGUMENT);
            }
            let mut ids: Vec<u32> = gpu
                .gpu_instances
                .iter()
                .filter(|g| g.profile_id == profile_id)
                .map(|g| g.id)
                .collect();
            ids.sort_unstable();
            ids.truncate(p.instance_count as usize);
            // SAFETY: non-null; NVML requires room for `instanceCount` handles and
            // `ids.len() <= instanceCount`.
            let buf = unsafe { std::slice::from_raw_parts_mut(gpu_instances, ids.len()) };
            for (slot, id) in buf.iter_mut().zip(&ids) {
                *slot = Handle::Gi(gpu.index, *id).ptr();
            }
            *count = ids.len() as u32;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetGpuInstanceById`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceById(
    device: nvmlDevice_t,
    id: c_uint,
    gpu_instance: *mut nvmlGpuInstance_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable handle slot.
    let out = unsafe { gpu_instance.as_mut() };
    call(
        "nvmlDeviceGetGpuInstanceById",
        hargs(h, json!({"id": id})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let gpu = parent(s, h)?;
            gpu.mig_enabled_model()?;
            gpu.gi(id).ok_or(NOT_FOUND)?;
            *out = Handle::Gi(gpu.index, id).ptr();
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceGetInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceGetInfo(
    gpu_instance: nvmlGpuInstance_t,
    info: *mut nvmlGpuInstanceInfo_t,
) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    // SAFETY: NVML contract: null or a writable nvmlGpuInstanceInfo_t.
    let out = unsafe { info.as_mut() };
    call(
        "nvmlGpuInstanceGetInfo",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (gpu, gi) = resolve_gi(s, h)?;
            *out = nvmlGpuInstanceInfo_t {
                device: Handle::Gpu(gpu.index).ptr(),
                id: gi.id,
                profileId: gi.profile_id,
                placement: nvmlGpuInstancePlacement_t {
                    start: gi.start,
                    size: gi.size,
                },
            };
            Ok(())
        },
    )
}

/// `nvmlGpuInstanceDestroy`: `IN_USE` while CIs or processes remain.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlGpuInstanceDestroy(gpu_instance: nvmlGpuInstance_t) -> nvmlReturn_t {
    let h = Handle::of(gpu_instance);
    call(
        "nvmlGpuInstanceDestroy",
        hargs(h, json!({})),
        Access::Write,
        |s| {
            let (index, gi) = {
                let (gpu, gi) = resolve_gi(s, h)?;
                (gpu.index, gi.id)
            };
            s.gpu_mut(index).ok_or(INVALID_ARGUMENT)?.destroy_gi(gi)
        },
    )
}
