//! Exports: running processes and MIG device handles.

use super::*;

/// `nvmlDeviceGetComputeRunningProcesses_v3`: a parent handle lists every process of the GPU
/// (with GI/CI ids in MIG mode), a MIG handle only that CI's.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(
    device: nvmlDevice_t,
    info_count: *mut c_uint,
    infos: *mut nvmlProcessInfo_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let count = unsafe { info_count.as_mut() };
    call(
        "nvmlDeviceGetComputeRunningProcesses_v3",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let count = count.ok_or(INVALID_ARGUMENT)?;
            let (gpu, mig) = resolve_device(s, h)?;
            let list: Vec<nvmlProcessInfo_t> = gpu
                .processes
                .iter()
                .filter(|p| match mig {
                    Some((gi, ci)) => {
                        p.gpu_instance_id == Some(gi) && p.compute_instance_id == Some(ci)
                    }
                    None => true,
                })
                .map(|p| {
                    let in_mig = gpu.mig_mode_current == 1;
                    nvmlProcessInfo_t {
                        pid: p.pid,
                        usedGpuMemory: p.used_memory_mib * MIB,
                        gpuInstanceId: p.gpu_instance_id.filter(|_| in_mig).unwrap_or(NO_ID),
                        computeInstanceId: p
                            .compute_instance_id
                            .filter(|_| in_mig)
                            .unwrap_or(NO_ID),
                    }
                })
                .collect();
            let n = list.len() as u32;
            if n == 0 {
                *count = 0;
                return Ok(());
            }
            if *count < n || infos.is_null() {
                *count = n;
                return Err(INSUFFICIENT_SIZE);
            }
            // SAFETY: non-null and the caller declared room for `*count` >= n entries.
            let buf = unsafe { std::slice::from_raw_parts_mut(infos, list.len()) };
            buf.copy_from_slice(&list);
            *count = n;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetMaxMigDeviceCount`: 7 (A30: 4) with MIG on, else 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMaxMigDeviceCount(
    device: nvmlDevice_t,
    count: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let out = unsafe { count.as_mut() };
    call(
        "nvmlDeviceGetMaxMigDeviceCount",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let gpu = parent(s, h)?;
            let model = gpu.mig_model()?;
            *out = if gpu.mig_mode_current == 1 {
                model.max_mig_devices()
            } else {
                0
            };
            Ok(())
        },
    )
}

/// `nvmlDeviceGetMigDeviceHandleByIndex`: MIG devices ordered by GI id then CI id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMigDeviceHandleByIndex(
    device: nvmlDevice_t,
    index: c_uint,
    mig_device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable handle slot.
    let out = unsafe { mig_device.as_mut() };
    call(
        "nvmlDeviceGetMigDeviceHandleByIndex",
        hargs(h, json!({"index": index})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let gpu = parent(s, h)?;
            gpu.mig_model()?;
            let devices = gpu.mig_devices();
            let (gi, ci) = *devices.get(index as usize).ok_or(NOT_FOUND)?;
            *out = Handle::Mig(gpu.index, gi, ci).ptr();
            Ok(())
        },
    )
}

/// `nvmlDeviceIsMigDeviceHandle`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceIsMigDeviceHandle(
    device: nvmlDevice_t,
    is_mig_device: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let out = unsafe { is_mig_device.as_mut() };
    call(
        "nvmlDeviceIsMigDeviceHandle",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (_, mig) = resolve_device(s, h)?;
            *out = u32::from(mig.is_some());
            Ok(())
        },
    )
}

/// `nvmlDeviceGetGpuInstanceId` (MIG device handles only).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetGpuInstanceId(
    device: nvmlDevice_t,
    id: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let out = unsafe { id.as_mut() };
    call(
        "nvmlDeviceGetGpuInstanceId",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (_, mig) = resolve_device(s, h)?;
            *out = mig.ok_or(NOT_SUPPORTED)?.0;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetComputeInstanceId` (MIG device handles only).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetComputeInstanceId(
    device: nvmlDevice_t,
    id: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable unsigned int.
    let out = unsafe { id.as_mut() };
    call(
        "nvmlDeviceGetComputeInstanceId",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (_, mig) = resolve_device(s, h)?;
            *out = mig.ok_or(NOT_SUPPORTED)?.1;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetDeviceHandleFromMigDeviceHandle`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetDeviceHandleFromMigDeviceHandle(
    mig_device: nvmlDevice_t,
    device_out: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    let h = Handle::of(mig_device);
    // SAFETY: NVML contract: null or a writable handle slot.
    let out = unsafe { device_out.as_mut() };
    call(
        "nvmlDeviceGetDeviceHandleFromMigDeviceHandle",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (gpu, mig) = resolve_device(s, h)?;
            mig.ok_or(INVALID_ARGUMENT)?;
            *out = Handle::Gpu(gpu.index).ptr();
            Ok(())
        },
    )
}
