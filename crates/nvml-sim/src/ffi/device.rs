//! Exports: device discovery and attributes (count, handles, names, UUIDs, PCI, memory).

use super::*;

/// `nvmlDeviceGetCount_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(device_count: *mut c_uint) -> nvmlReturn_t {
    // SAFETY: NVML contract: null or a writable unsigned int.
    let out = unsafe { device_count.as_mut() };
    call("nvmlDeviceGetCount_v2", json!({}), Access::Read, |s| {
        let out = out.ok_or(INVALID_ARGUMENT)?;
        *out = u32::try_from(s.gpus.len()).map_err(|_| UNKNOWN)?;
        Ok(())
    })
}

/// `nvmlDeviceGetHandleByIndex_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    // SAFETY: NVML contract: null or a writable handle slot.
    let out = unsafe { device.as_mut() };
    call(
        "nvmlDeviceGetHandleByIndex_v2",
        json!({"index": index}),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            s.gpu(index).ok_or(INVALID_ARGUMENT)?;
            *out = Handle::Gpu(index).ptr();
            Ok(())
        },
    )
}

/// Finds a GPU or MIG device by UUID (`GPU-…`, `MIG-…` or legacy `MIG-GPU-…/gi/ci`).
pub(super) fn find_uuid(s: &State, uuid: &str) -> Option<Handle> {
    if let Some(rest) = uuid.strip_prefix("MIG-GPU-") {
        let mut parts = rest.split('/');
        let gpu_uuid = format!("GPU-{}", parts.next()?);
        let gi = parts.next()?.parse().ok()?;
        let ci = parts.next()?.parse().ok()?;
        let g = s
            .gpus
            .iter()
            .find(|g| g.uuid.eq_ignore_ascii_case(&gpu_uuid))?;
        return g
            .mig_device_exists(gi, ci)
            .then_some(Handle::Mig(g.index, gi, ci));
    }
    for g in &s.gpus {
        if g.uuid.eq_ignore_ascii_case(uuid) {
            return Some(Handle::Gpu(g.index));
        }
        if g.mig_mode_current != 1 {
            continue;
        }
        for gi in &g.gpu_instances {
            for ci in &gi.compute_instances {
                if ci.uuid.eq_ignore_ascii_case(uuid) {
                    return Some(Handle::Mig(g.index, gi.id, ci.id));
                }
            }
        }
    }
    None
}

/// `nvmlDeviceGetHandleByUUID`: GPU or MIG UUIDs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    // SAFETY: NVML contract: `uuid` is null or NUL-terminated; `device` null or writable.
    let (uuid, out) = unsafe { (in_str(uuid), device.as_mut()) };
    call(
        "nvmlDeviceGetHandleByUUID",
        json!({"uuid": uuid}),
        Access::Read,
        |s| {
            let (uuid, out) = (uuid.ok_or(INVALID_ARGUMENT)?, out.ok_or(INVALID_ARGUMENT)?);
            *out = find_uuid(s, uuid).ok_or(NOT_FOUND)?.ptr();
            Ok(())
        },
    )
}

/// `nvmlDeviceGetHandleByPciBusId_v2`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByPciBusId_v2(
    pci_bus_id: *const c_char,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    // SAFETY: NVML contract: `pci_bus_id` is null or NUL-terminated; `device` null or writable.
    let (bus, out) = unsafe { (in_str(pci_bus_id), device.as_mut()) };
    call(
        "nvmlDeviceGetHandleByPciBusId_v2",
        json!({"bus_id": bus}),
        Access::Read,
        |s| {
            let (bus, out) = (bus.ok_or(INVALID_ARGUMENT)?, out.ok_or(INVALID_ARGUMENT)?);
            *out = Handle::Gpu(s.gpu_by_bus_id(bus).ok_or(NOT_FOUND)?).ptr();
            Ok(())
        },
    )
}

/// `nvmlDeviceGetIndex` (a MIG device reports its parent's index).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetIndex(
    device: nvmlDevice_t,
    index: *mut c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or writable.
    let out = unsafe { index.as_mut() };
    call(
        "nvmlDeviceGetIndex",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            *out = resolve_device(s, h)?.0.index;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetName` (a MIG device: `<gpu name> MIG <profile>`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: nvmlDevice_t,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: `name` is null or has `length` writable bytes.
    let buf = unsafe { out_slice(name, length as usize) };
    call(
        "nvmlDeviceGetName",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let (gpu, mig) = resolve_device(s, h)?;
            let model = gpu.model()?;
            let text = match mig.and_then(|(gi, _)| gpu.gi(gi)) {
                Some(gi) => format!("{} MIG {}", model.name, gpu.gi_profile(gi)?.name),
                None => model.name.to_string(),
            };
            put_str(buf, &text)
        },
    )
}

/// `nvmlDeviceGetUUID`: GPU or MIG UUID.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: nvmlDevice_t,
    uuid: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: `uuid` is null or has `length` writable bytes.
    let buf = unsafe { out_slice(uuid, length as usize) };
    call(
        "nvmlDeviceGetUUID",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let (gpu, mig) = resolve_device(s, h)?;
            let text = match mig {
                Some((gi, ci)) => gpu
                    .gi(gi)
                    .and_then(|g| g.ci(ci))
                    .map(|c| c.uuid.as_str())
                    .ok_or(NOT_FOUND)?,
                None => gpu.uuid.as_str(),
            };
            put_str(buf, text)
        },
    )
}

/// `nvmlDeviceGetPciInfo_v3`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    device: nvmlDevice_t,
    pci: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable nvmlPciInfo_t.
    let out = unsafe { pci.as_mut() };
    call(
        "nvmlDeviceGetPciInfo_v3",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (gpu, _) = resolve_device(s, h)?;
            let model = gpu.model()?;
            let (domain, bus, dev, func) =
                crate::sim::parse_bus_id(&gpu.pci_bus_id).ok_or(UNKNOWN)?;
            out.domain = domain;
            out.bus = bus;
            out.device = dev;
            out.pciDeviceId = model.pci_device_id();
            out.pciSubSystemId = model.pci_subsystem;
            fill_chars(
                &mut out.busId,
                &format!("{domain:08X}:{bus:02X}:{dev:02X}.{func:X}"),
            );
            fill_chars(
                &mut out.busIdLegacy,
                &format!("{domain:04X}:{bus:02X}:{dev:02X}.{func:X}"),
            );
            Ok(())
        },
    )
}

/// (total MiB, used MiB) of a GPU or MIG device.
pub(super) fn memory(gpu: &Gpu, mig: Option<MigDevice>) -> Result<(u64, u64), Code> {
    match mig {
        None => Ok((
            gpu.model()?.memory_mib,
            gpu.processes.iter().map(|p| p.used_memory_mib).sum(),
        )),
        Some((gi, ci)) => {
            let inst = gpu.gi(gi).ok_or(NOT_FOUND)?;
            let used = gpu
                .processes
                .iter()
                .filter(|p| p.gpu_instance_id == Some(gi) && p.compute_instance_id == Some(ci))
                .map(|p| p.used_memory_mib)
                .sum();
            Ok((gpu.gi_profile(inst)?.memory_mib, used))
        }
    }
}

/// `nvmlDeviceGetMemoryInfo`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo(
    device: nvmlDevice_t,
    memory_out: *mut nvmlMemory_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable nvmlMemory_t.
    let out = unsafe { memory_out.as_mut() };
    call(
        "nvmlDeviceGetMemoryInfo",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            let (gpu, mig) = resolve_device(s, h)?;
            let (total, used) = memory(gpu, mig)?;
            let used = used.min(total);
            out.total = total * MIB;
            out.used = used * MIB;
            out.free = (total - used) * MIB;
            Ok(())
        },
    )
}

/// `nvmlDeviceGetMemoryInfo_v2` (checks `version`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(
    device: nvmlDevice_t,
    memory_out: *mut nvmlMemory_v2_t,
) -> nvmlReturn_t {
    let h = Handle::of(device);
    // SAFETY: NVML contract: null or a writable nvmlMemory_v2_t.
    let out = unsafe { memory_out.as_mut() };
    call(
        "nvmlDeviceGetMemoryInfo_v2",
        hargs(h, json!({})),
        Access::Read,
        |s| {
            let out = out.ok_or(INVALID_ARGUMENT)?;
            if out.version != struct_version::<nvmlMemory_v2_t>(2) {
                return Err(ARGUMENT_VERSION_MISMATCH);
            }
            let (gpu, mig) = resolve_device(s, h)?;
            let (total, used) = memory(gpu, mig)?;
            let used = used.min(total);
            out.total = total * MIB;
            out.reserved = 0;
            out.used = used * MIB;
            out.free = (total - used) * MIB;
            Ok(())
        },
    )
}
