//! The exported NVML C ABI (`nvml*` symbols of `libnvidia_ml_sim.so`): pointer checks,
//! opaque handle encoding, init refcount, error injection, call logging and panic guards
//! around the pure simulation in `sim`.
//!
//! Every export follows one shape: turn raw pointers into `Option<&mut T>` at the top (each
//! with a `SAFETY:` note on the NVML calling contract), then run the body through [`call`],
//! which checks initialisation, applies error injections, loads/stores the state under the
//! file lock, appends the call-log line and catches panics.

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

/// Driver version the simulator reports.
pub const DRIVER_VERSION: &str = "550.54.15-sim";
/// NVML library version the simulator reports.
pub const NVML_VERSION: &str = "12.550.54.15-sim";

/// `NVML_VALUE_NOT_AVAILABLE`-style id for processes outside MIG.
const NO_ID: u32 = 0xFFFF_FFFF;
/// Bytes per MiB.
const MIB: u64 = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Session (init refcount)
// ---------------------------------------------------------------------------------------

struct Session {
    refcount: u32,
    store: Option<Store>,
}

static SESSION: Mutex<Session> = Mutex::new(Session {
    refcount: 0,
    store: None,
});

fn session() -> MutexGuard<'static, Session> {
    SESSION.lock().unwrap_or_else(|e| e.into_inner())
}

fn current_store() -> Option<Store> {
    let s = session();
    if s.refcount > 0 {
        s.store.clone()
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------------------

/// What an opaque handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handle {
    /// A physical GPU (`nvmlDevice_t`).
    Gpu(u32),
    /// A MIG device (`nvmlDevice_t`): gpu, gi, ci.
    Mig(u32, u32, u32),
    /// A GPU instance (`nvmlGpuInstance_t`): gpu, gi.
    Gi(u32, u32),
    /// A compute instance (`nvmlComputeInstance_t`): gpu, gi, ci.
    Ci(u32, u32, u32),
}

impl Handle {
    fn encode(self) -> usize {
        let (kind, gpu, gi, ci) = match self {
            Handle::Gpu(g) => (1u32, g, 0, 0),
            Handle::Mig(g, i, c) => (2, g, i, c),
            Handle::Gi(g, i) => (3, g, i, 0),
            Handle::Ci(g, i, c) => (4, g, i, c),
        };
        let v = (kind << 24) | ((gpu & 0xFF) << 16) | ((gi & 0xFF) << 8) | (ci & 0xFF);
        v as usize + 1
    }

    fn decode(addr: usize) -> Option<Handle> {
        let v = u32::try_from(addr.checked_sub(1)?).ok()?;
        let (kind, gpu, gi, ci) = (v >> 24, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF);
        match kind {
            1 if gi == 0 && ci == 0 => Some(Handle::Gpu(gpu)),
            2 => Some(Handle::Mig(gpu, gi, ci)),
            3 if ci == 0 => Some(Handle::Gi(gpu, gi)),
            4 => Some(Handle::Ci(gpu, gi, ci)),
            _ => None,
        }
    }

    fn ptr<T>(self) -> *mut T {
        std::ptr::without_provenance_mut(self.encode())
    }

    fn of<T>(p: *mut T) -> Option<Handle> {
        Handle::decode(p.addr())
    }

    fn json(h: Option<Handle>) -> Value {
        match h {
            Some(Handle::Gpu(g)) => json!({"gpu": g}),
            Some(Handle::Mig(g, i, c)) => json!({"gpu": g, "gi": i, "ci": c, "mig": true}),
            Some(Handle::Gi(g, i)) => json!({"gpu": g, "gi": i}),
            Some(Handle::Ci(g, i, c)) => json!({"gpu": g, "gi": i, "ci": c}),
            None => json!({"handle": "invalid"}),
        }
    }
}

/// Log arguments: the handle's fields merged with `extra`.
fn hargs(h: Option<Handle>, extra: Value) -> Value {
    let mut base = Handle::json(h);
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// A device handle resolved against the state: the GPU and, for a MIG device, (gi, ci).
fn resolve_device(s: &State, h: Option<Handle>) -> Result<(&Gpu, Option<MigDevice>), Code> {
    match h {
        Some(Handle::Gpu(g)) => Ok((s.gpu(g).ok_or(INVALID_ARGUMENT)?, None)),
        Some(Handle::Mig(g, gi, ci)) => {
            let gpu = s.gpu(g).ok_or(INVALID_ARGUMENT)?;
            if gpu.mig_device_exists(gi, ci) {
                Ok((gpu, Some((gi, ci))))
            } else {
                Err(NOT_FOUND)
            }
        }
        _ => Err(INVALID_ARGUMENT),
    }
}

/// A handle that must name a physical GPU (not a MIG device).
fn parent(s: &State, h: Option<Handle>) -> Result<&Gpu, Code> {
    match h {
        Some(Handle::Gpu(g)) => s.gpu(g).ok_or(INVALID_ARGUMENT),
        _ => Err(INVALID_ARGUMENT),
    }
}

/// A GPU-instance handle resolved against the state.
fn resolve_gi(s: &State, h: Option<Handle>) -> Result<(&Gpu, &GpuInstance), Code> {
    match h {
        Some(Handle::Gi(g, gi)) => {
            let gpu = s.gpu(g).ok_or(INVALID_ARGUMENT)?;
            gpu.mig_enabled_model()?;
            Ok((gpu, gpu.gi(gi).ok_or(NOT_FOUND)?))
        }
        _ => Err(INVALID_ARGUMENT),
    }
}

// ---------------------------------------------------------------------------------------
// The call wrapper
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Reads the state under a shared lock.
    Read,
    /// Read-modify-write under the exclusive lock; saved only when the body succeeds.
    Write,
}

fn code_of(r: Result<(), Code>) -> Code {
    match r {
        Ok(()) => SUCCESS,
        Err(c) => c,
    }
}

fn store_failed(e: impl std::fmt::Display) -> Code {
    eprintln!("nvml-sim: {e}");
    UNKNOWN
}

fn run(
    store: &Store,
    name: &str,
    access: Access,
    body: impl FnOnce(&mut State) -> Result<(), Code>,
) -> Code {
    if access == Access::Read {
        match store.load() {
            Ok(mut state) if !state.has_injection(name) => return code_of(body(&mut state)),
            Ok(_) => {}
            Err(e) => return store_failed(e),
        }
    }
    let r = store.update(|s| {
        if let Some(code) = s.take_injection(name) {
            return (code, true);
        }
        let mut work = s.clone();
        match body(&mut work) {
            Ok(()) if access == Access::Write => {
                *s = work;
                (SUCCESS, true)
            }
            other => (code_of(other), false),
        }
    });
    r.unwrap_or_else(store_failed)
}

/// Runs one exported call: panic guard, init check, injection, body, call log.
fn call(
    name: &'static str,
    args: Value,
    access: Access,
    body: impl FnOnce(&mut State) -> Result<(), Code>,
) -> nvmlReturn_t {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let Some(store) = current_store() else {
            if let Some(path) = std::env::var_os(STATE_ENV) {
                log(&Store::new(path), name, args, UNINITIALIZED);
            }
            return UNINITIALIZED;
        };
        let ret = run(&store, name, access, body);
        log(&store, name, args, ret);
        ret
    }));
    r.unwrap_or(UNKNOWN)
}

fn log(store: &Store, name: &str, args: Value, ret: Code) {
    // The call log is best effort: a failure to log never changes the NVML result.
    // Built by hand so `fn` comes first in each line (serde_json sorts object keys).
    let line = format!(
        "{{\"fn\":{},\"args\":{args},\"ret\":{ret}}}",
        Value::from(name)
    );
    let _ = store.append_line(&line);
}

// ---------------------------------------------------------------------------------------
// Pointer helpers
// ---------------------------------------------------------------------------------------

/// Writes `s` NUL-terminated into `buf`; `INSUFFICIENT_SIZE` when it does not fit.
fn put_str(buf: Option<&mut [c_char]>, s: &str) -> Result<(), Code> {
    let buf = buf.ok_or(INVALID_ARGUMENT)?;
    if buf.len() < s.len() + 1 {
        return Err(INSUFFICIENT_SIZE);
    }
    for (d, b) in buf.iter_mut().zip(s.bytes().chain(std::iter::once(0))) {
        *d = b as c_char;
    }
    Ok(())
}

/// Copies `s` into a fixed C char array, truncating, always NUL-terminated.
fn fill_chars(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst
        .iter_mut()
        .zip(s.bytes().take(n).chain(std::iter::repeat(0)))
    {
        *d = b as c_char;
    }
}

/// # Safety
/// `p` must be null or point to `len` writable `T`s for the duration of the call.
unsafe fn out_slice<'a, T>(p: *mut T, len: usize) -> Option<&'a mut [T]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and, per this function's contract, valid for `len` elements.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

/// # Safety
/// `p` must be null or point to a NUL-terminated string valid for the call.
unsafe fn in_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated per this function's contract.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// `sizeof(T) | (ver << 24)`, nvml.h's `NVML_STRUCT_VERSION`.
fn struct_version<T>(ver: u32) -> u32 {
    (std::mem::size_of::<T>() as u32) | (ver << 24)
}

// ---------------------------------------------------------------------------------------
// Struct fillers
// ---------------------------------------------------------------------------------------

fn gi_info_v1(p: &GiProfile) -> nvmlGpuInstanceProfileInfo_t {
    nvmlGpuInstanceProfileInfo_t {
        id: p.id,
        isP2pSupported: 0,
        sliceCount: p.slices,
        instanceCount: p.instance_count,
        multiprocessorCount: p.sms,
        copyEngineCount: p.copy_engines,
        decoderCount: p.decoders,
        encoderCount: p.encoders,
        jpegCount: p.jpegs,
        ofaCount: p.ofas,
        memorySizeMB: p.memory_mib,
    }
}

/// Looks up GI profile index `index` on `gpu`: `INVALID_ARGUMENT` past the constant range,
/// `NOT_SUPPORTED` when absent on this GPU (or the GPU has no MIG).
fn gi_profile_by_index(gpu: &Gpu, index: u32) -> Result<&'static GiProfile, Code> {
    let model = gpu.mig_model()?;
    if index >= GI_PROFILE_INDEX_COUNT {
        return Err(INVALID_ARGUMENT);
    }
    model.profile_by_index(index).ok_or(NOT_SUPPORTED)
}

// ---------------------------------------------------------------------------------------
// Exports: library and system
// ---------------------------------------------------------------------------------------

fn init_impl(name: &'static str, args: Value) -> nvmlReturn_t {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let Some(path) = std::env::var_os(STATE_ENV) else {
            eprintln!(
                "nvml-sim: {STATE_ENV} is not set; point it at a state file made by `nvml-sim init`"
            );
            return LIBRARY_NOT_FOUND;
        };
        let store = Store::new(path);
        if let Some(spec) = std::env::var_os(INIT_ENV)
            && !store.path().exists()
        {
            if let Some(dir) = store.path().parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let made = crate::sim::parse_init_spec(&spec.to_string_lossy())
                .and_then(|spec| crate::sim::new_state(&spec));
            match made {
                // Another process may have created it meanwhile: then it exists, fine.
                Ok(st) => {
                    let _ = store.create(&st, false);
                }
                Err(e) => {
                    eprintln!("nvml-sim: {INIT_ENV}: {e}");
                    return LIBRARY_NOT_FOUND;
                }
            }
        }
        let state = match store.load() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("nvml-sim: {STATE_ENV}: {e}");
                return LIBRARY_NOT_FOUND;
            }
        };
        if state.has_injection(name) {
            let injected = store.update(|s| match s.take_injection(name) {
                Some(c) => (Some(c), true),
                None => (None, false),
            });
            if let Ok(Some(code)) = injected {
                log(&store, name, args, code);
                return code;
            }
        }
        {
            let mut s = session();
            if s.refcount == 0 || s.store.is_none() {
                s.store = Some(store.clone());
            }
            s.refcount += 1;
        }
        log(&store, name, args, SUCCESS);
        SUCCESS
    }));
    r.unwrap_or(UNKNOWN)
}

/// `nvmlInit_v2`: reads `NVML_SIM_STATE`; `LIBRARY_NOT_FOUND` when unset or unreadable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    init_impl("nvmlInit_v2", json!({}))
}

/// `nvmlInitWithFlags`: flags are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInitWithFlags(flags: c_uint) -> nvmlReturn_t {
    init_impl("nvmlInitWithFlags", json!({"flags": flags}))
}

/// `nvmlShutdown`: drops one init reference.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    let ret = call("nvmlShutdown", json!({}), Access::Read, |_| Ok(()));
    if ret == SUCCESS {
        let mut s = session();
        s.refcount = s.refcount.saturating_sub(1);
        if s.refcount == 0 {
            s.store = None;
        }
    }
    ret
}

/// `nvmlErrorString`: static description of a return code.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    let r = catch_unwind(|| {
        if let Some(store) = current_store() {
            log(
                &store,
                "nvmlErrorString",
                json!({"result": result}),
                SUCCESS,
            );
        }
        error_string(result).as_ptr()
    });
    r.unwrap_or(c"Unknown Error".as_ptr())
}

/// `nvmlSystemGetDriverVersion`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: NVML contract: `version` is null or has `length` writable bytes.
    let buf = unsafe { out_slice(version, length as usize) };
    call(
        "nvmlSystemGetDriverVersion",
        json!({}),
        Access::Read,
        |_| put_str(buf, DRIVER_VERSION),
    )
}

/// `nvmlSystemGetNVMLVersion`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: NVML contract: `version` is null or has `length` writable bytes.
    let buf = unsafe { out_slice(version, length as usize) };
    call("nvmlSystemGetNVMLVersion", json!({}), Access::Read, |_| {
        put_str(buf, NVML_VERSION)
    })
}

// ---------------------------------------------------------------------------------------
// Exports: device discovery and attributes
// ---------------------------------------------------------------------------------------

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
fn find_uuid(s: &State, uuid: &str) -> Option<Handle> {
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
fn memory(gpu: &Gpu, mig: Option<MigDevice>) -> Result<(u64, u64), Code> {
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

// ---------------------------------------------------------------------------------------
// Exports: MIG mode and GPU-instance profiles
// ---------------------------------------------------------------------------------------

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
            *out = gi_info_v1(gi_profile_by_index(parent(s, h)?, profile)?);
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
            let p = gi_profile_by_index(gpu, profile)?;
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

// ---------------------------------------------------------------------------------------
// Exports: GPU instances
// ---------------------------------------------------------------------------------------

fn create_gi(
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

// ---------------------------------------------------------------------------------------
// Exports: compute instances
// ---------------------------------------------------------------------------------------

/// The CI profile `profile` inside `gi` (`INVALID_ARGUMENT` past the constant range or for a
/// non-shared engine profile, `NOT_SUPPORTED` when too big for the GI).
fn ci_profile(
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

// ---------------------------------------------------------------------------------------
// Exports: processes and MIG devices
// ---------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        for h in [
            Handle::Gpu(0),
            Handle::Gpu(63),
            Handle::Mig(3, 7, 6),
            Handle::Gi(1, 1),
            Handle::Ci(2, 5, 0),
        ] {
            assert_eq!(Handle::decode(h.encode()), Some(h));
            assert_ne!(h.encode(), 0);
        }
        assert_eq!(Handle::decode(0), None);
        assert_eq!(Handle::decode(0xdead_beef_0000), None);
        assert_eq!(Handle::decode(0x1234), None);
    }

    #[test]
    fn calls_before_init_are_uninitialized() {
        // No unit test initialises the library, so the refcount is 0 here.
        let mut count = 0;
        // SAFETY: `count` is a valid out pointer for the call.
        assert_eq!(unsafe { nvmlDeviceGetCount_v2(&mut count) }, UNINITIALIZED);
        // SAFETY: no arguments.
        assert_eq!(unsafe { nvmlShutdown() }, UNINITIALIZED);
        // SAFETY: returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(nvmlErrorString(23)) };
        assert_eq!(text.to_str().unwrap(), "Insufficient Resources");
    }

    #[test]
    fn strings() {
        let mut buf = [1 as c_char; 4];
        assert_eq!(put_str(Some(&mut buf), "abcd"), Err(INSUFFICIENT_SIZE));
        assert_eq!(put_str(Some(&mut buf), "abc"), Ok(()));
        assert_eq!(buf[3], 0);
        let mut small = [1 as c_char; 3];
        fill_chars(&mut small, "hello");
        assert_eq!(small, [b'h' as c_char, b'e' as c_char, 0]);
    }
}
