//! Drives `libnvidia_ml_sim.so` through nvml-wrapper's real dlopen path: safe API where
//! nvml-wrapper has one, raw `nvml.lib()` calls for the MIG instance API.
//!
//! Each test runs its body in a child process (see `common::isolate`).

// Raw NVML calls through `nvml.lib()` are `unsafe fn`s; every block below says why it is sound.
#![allow(unsafe_code)]

use crate::common::{isolate, open, run_child, sim, sim_ok, state_json};
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper_sys::bindings::{
    nvmlComputeInstance_t, nvmlComputeInstanceInfo_t, nvmlDevice_t, nvmlGpuInstance_t,
    nvmlGpuInstanceInfo_t, nvmlGpuInstancePlacement_t, nvmlGpuInstanceProfileInfo_v2_t,
    nvmlGpuInstanceProfileInfo_v3_t,
};
use std::ptr;

const SUCCESS: u32 = 0;
const INVALID_ARGUMENT: u32 = 2;
const NOT_SUPPORTED: u32 = 3;
const NOT_FOUND: u32 = 6;
const IN_USE: u32 = 19;
const INSUFFICIENT_RESOURCES: u32 = 23;
const ARGUMENT_VERSION_MISMATCH: u32 = 25;

fn handle(nvml: &Nvml, index: u32) -> nvmlDevice_t {
    let d = nvml.device_by_index(index).expect("device handle");
    // SAFETY: the handle is only passed back to the same library while `nvml` lives.
    unsafe { d.handle() }
}

fn placements(nvml: &Nvml, dev: nvmlDevice_t, profile_id: u32) -> Result<Vec<(u32, u32)>, u32> {
    let mut count = 0;
    // SAFETY: NULL placements asks for the count only; `count` is a valid out pointer.
    let r = unsafe {
        nvml.lib().nvmlDeviceGetGpuInstancePossiblePlacements_v2(
            dev,
            profile_id,
            ptr::null_mut(),
            &mut count,
        )
    };
    if r != SUCCESS {
        return Err(r);
    }
    let mut buf = vec![
        nvmlGpuInstancePlacement_t {
            start: 99,
            size: 99
        };
        count as usize
    ];
    // SAFETY: `buf` has room for `count` placements.
    let r = unsafe {
        nvml.lib().nvmlDeviceGetGpuInstancePossiblePlacements_v2(
            dev,
            profile_id,
            buf.as_mut_ptr(),
            &mut count,
        )
    };
    assert_eq!(r, SUCCESS);
    Ok(buf.iter().map(|p| (p.start, p.size)).collect())
}

fn create_gi_at(
    nvml: &Nvml,
    dev: nvmlDevice_t,
    profile_id: u32,
    start: u32,
    size: u32,
) -> Result<nvmlGpuInstance_t, u32> {
    let placement = nvmlGpuInstancePlacement_t { start, size };
    let mut gi: nvmlGpuInstance_t = ptr::null_mut();
    // SAFETY: valid placement and out pointer for the duration of the call.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceCreateGpuInstanceWithPlacement(dev, profile_id, &placement, &mut gi)
    };
    if r == SUCCESS { Ok(gi) } else { Err(r) }
}

fn create_gi(nvml: &Nvml, dev: nvmlDevice_t, profile_id: u32) -> Result<nvmlGpuInstance_t, u32> {
    let mut gi: nvmlGpuInstance_t = ptr::null_mut();
    // SAFETY: valid out pointer.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceCreateGpuInstance(dev, profile_id, &mut gi)
    };
    if r == SUCCESS { Ok(gi) } else { Err(r) }
}

fn gi_info(nvml: &Nvml, gi: nvmlGpuInstance_t) -> nvmlGpuInstanceInfo_t {
    // SAFETY: all-zero is a valid bit pattern for this plain C struct (null pointer field).
    let mut info: nvmlGpuInstanceInfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer; `gi` came from this library.
    let r = unsafe { nvml.lib().nvmlGpuInstanceGetInfo(gi, &mut info) };
    assert_eq!(r, SUCCESS);
    info
}

fn create_ci(
    nvml: &Nvml,
    gi: nvmlGpuInstance_t,
    profile: u32,
) -> Result<nvmlComputeInstance_t, u32> {
    let mut ci: nvmlComputeInstance_t = ptr::null_mut();
    // SAFETY: valid out pointer; `gi` came from this library.
    let r = unsafe {
        nvml.lib()
            .nvmlGpuInstanceCreateComputeInstance(gi, profile, &mut ci)
    };
    if r == SUCCESS { Ok(ci) } else { Err(r) }
}

fn destroy_gi(nvml: &Nvml, gi: nvmlGpuInstance_t) -> u32 {
    // SAFETY: `gi` came from this library (the simulator validates it anyway).
    unsafe { nvml.lib().nvmlGpuInstanceDestroy(gi) }
}

fn destroy_ci(nvml: &Nvml, ci: nvmlComputeInstance_t) -> u32 {
    // SAFETY: `ci` came from this library (the simulator validates it anyway).
    unsafe { nvml.lib().nvmlComputeInstanceDestroy(ci) }
}

#[test]
fn device_basics() {
    let Some(state) = isolate(
        "device_basics",
        &[
            "--model",
            "A100-40GB",
            "--gpus",
            "1",
            "--model",
            "H100-80GB",
            "--gpus",
            "1",
        ],
    ) else {
        return;
    };
    let nvml = open();
    assert_eq!(nvml.device_count().unwrap(), 2);
    assert_eq!(nvml.sys_driver_version().unwrap(), "580.95.05-sim");
    let st = state_json(&state);

    let a100 = nvml.device_by_index(0).unwrap();
    assert_eq!(a100.name().unwrap(), "NVIDIA A100-SXM4-40GB");
    let uuid = a100.uuid().unwrap();
    assert!(uuid.starts_with("GPU-") && uuid.len() == 40, "{uuid}");
    assert_eq!(uuid, st["gpus"][0]["uuid"].as_str().unwrap());
    let pci = a100.pci_info().unwrap();
    assert_eq!(pci.bus_id, "00000000:07:00.0");
    assert_eq!(pci.bus, 0x07);
    assert_eq!(pci.pci_device_id, 0x20B0_10DE);
    assert!(pci.pci_sub_system_id.is_some());
    let mem = a100.memory_info().unwrap();
    assert_eq!(mem.total, 40960 * 1024 * 1024);
    assert_eq!(mem.used, 0);
    assert_eq!(a100.index().unwrap(), 0);

    let h100 = nvml.device_by_index(1).unwrap();
    assert_eq!(h100.name().unwrap(), "NVIDIA H100 80GB HBM3");
    assert_eq!(h100.pci_info().unwrap().pci_device_id, 0x2330_10DE);
    assert_ne!(h100.pci_info().unwrap().bus_id, pci.bus_id);
    assert_eq!(
        nvml.device_by_uuid(uuid.as_str()).unwrap().index().unwrap(),
        0
    );
    assert_eq!(
        nvml.device_by_pci_bus_id(h100.pci_info().unwrap().bus_id)
            .unwrap()
            .index()
            .unwrap(),
        1
    );
    assert!(matches!(
        nvml.device_by_uuid("GPU-00000000-0000-0000-0000-000000000000"),
        Err(NvmlError::NotFound)
    ));
    assert!(matches!(
        nvml.device_by_index(2),
        Err(NvmlError::InvalidArg)
    ));
    assert!(!a100.mig_is_mig_device_handle().unwrap());
    assert!(a100.running_compute_processes().unwrap().is_empty());

    // Memory of a process shows up as used.
    sim_ok(
        &state,
        &[
            "process", "add", "--gpu", "0", "--pid", "77", "--mem", "1024",
        ],
    );
    assert_eq!(a100.memory_info().unwrap().used, 1024 * 1024 * 1024);
    let procs = a100.running_compute_processes().unwrap();
    assert_eq!(procs.len(), 1);
    assert_eq!(procs[0].pid, 77);
    assert_eq!(procs[0].gpu_instance_id, None);
}

#[test]
fn ampere_mode_pending_until_reset() {
    let Some(state) = isolate(
        "ampere_mode_pending_until_reset",
        &["--model", "A100-80GB", "--gpus", "2"],
    ) else {
        return;
    };
    let nvml = open();
    let gpu = nvml.device_by_index(1).unwrap();
    let m = gpu.mig_mode().unwrap();
    assert_eq!((m.current, m.pending), (0, 0));
    assert_eq!(gpu.set_mig_mode(true).unwrap(), SUCCESS);
    let m = gpu.mig_mode().unwrap();
    assert_eq!((m.current, m.pending), (0, 1));
    // GI creation needs MIG to be current.
    assert_eq!(
        create_gi(&nvml, handle(&nvml, 1), 19).err(),
        Some(NOT_SUPPORTED)
    );
    assert_eq!(gpu.mig_device_count().unwrap(), 0);

    let bus = gpu.pci_info().unwrap().bus_id;
    sim_ok(&state, &["reset", "-i", &bus]);
    let m = gpu.mig_mode().unwrap();
    assert_eq!((m.current, m.pending), (1, 1));
    assert_eq!(gpu.mig_device_count().unwrap(), 7);
    // The other GPU was not reset.
    assert_eq!(
        nvml.device_by_index(0).unwrap().mig_mode().unwrap().current,
        0
    );

    // Disabling while a GI exists is refused.
    create_gi(&nvml, handle(&nvml, 1), 0).unwrap();
    assert!(matches!(gpu.set_mig_mode(false), Err(NvmlError::InUse)));
}

#[test]
fn hopper_mode_immediate_or_in_use() {
    let Some(state) = isolate(
        "hopper_mode_immediate_or_in_use",
        &["--model", "H100-80GB", "--gpus", "2"],
    ) else {
        return;
    };
    let nvml = open();
    let g0 = nvml.device_by_index(0).unwrap();
    assert_eq!(g0.set_mig_mode(true).unwrap(), SUCCESS);
    let m = g0.mig_mode().unwrap();
    assert_eq!((m.current, m.pending), (1, 1));

    sim_ok(&state, &["process", "add", "--gpu", "1", "--pid", "4242"]);
    let g1 = nvml.device_by_index(1).unwrap();
    assert_eq!(g1.set_mig_mode(true).unwrap(), IN_USE);
    let m = g1.mig_mode().unwrap();
    assert_eq!((m.current, m.pending), (0, 1));
    // The CLI refuses to reset a busy GPU and names the pid.
    let out = sim(&state, &["reset", "--gpu", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("4242"));
    sim_ok(&state, &["process", "remove", "--pid", "4242"]);
    sim_ok(
        &state,
        &["reset", "--bus-id", &g1.pci_info().unwrap().bus_id],
    );
    assert_eq!(g1.mig_mode().unwrap().current, 1);
}

#[test]
fn profile_ids_per_model() {
    let Some(_state) = isolate(
        "profile_ids_per_model",
        &[
            "--model",
            "A100-40GB",
            "--gpus",
            "1",
            "--model",
            "A30-24GB",
            "--gpus",
            "1",
            "--model",
            "H200-141GB",
            "--gpus",
            "1",
            "--model",
            "B200-180GB",
            "--gpus",
            "1",
        ],
    ) else {
        return;
    };
    let nvml = open();
    // (NVML index constant, driver id) for 1g, 1g+me, 1g-rev2, 2g, 3g, 4g, 7g.
    let seven = [(0, 19), (7, 20), (9, 15), (1, 14), (2, 9), (3, 5), (4, 0)];
    for i in [0, 2, 3] {
        let d = nvml.device_by_index(i).unwrap();
        for (index, id) in seven {
            assert_eq!(
                d.profile_info(index).unwrap().id,
                id,
                "gpu {i} index {index}"
            );
        }
        assert!(matches!(d.profile_info(8), Err(NvmlError::NotSupported)));
        assert!(matches!(d.profile_info(0x12), Err(NvmlError::InvalidArg)));
    }
    let a100 = nvml.device_by_index(0).unwrap().profile_info(2).unwrap();
    assert_eq!(
        (
            a100.slice_count,
            a100.instance_count,
            a100.memory_size_mb,
            a100.multiprocessor_count
        ),
        (3, 2, 19968, 42)
    );
    let a30 = nvml.device_by_index(1).unwrap();
    for (index, id) in [(0, 14), (7, 21), (1, 5), (8, 6), (3, 0)] {
        assert_eq!(a30.profile_info(index).unwrap().id, id, "A30 index {index}");
    }
    assert!(matches!(a30.profile_info(2), Err(NvmlError::NotSupported)));
    assert!(matches!(a30.profile_info(9), Err(NvmlError::NotSupported)));
    // B200's 2g has two decoders and two JPEG engines, as captures show.
    let b200_2g = nvml.device_by_index(3).unwrap().profile_info(1).unwrap();
    assert_eq!(
        (b200_2g.decoder_count, b200_2g.jpeg_count),
        (2, 2),
        "B200 2g engines"
    );

    // The versioned call needs MIG enabled and a known struct version.
    let dev = handle(&nvml, 2);
    // SAFETY: all-zero is valid for this plain C struct.
    let mut v2: nvmlGpuInstanceProfileInfo_v2_t = unsafe { std::mem::zeroed() };
    v2.version = std::mem::size_of::<nvmlGpuInstanceProfileInfo_v2_t>() as u32 | (2 << 24);
    // SAFETY: `v2` is a writable v2 struct with its version set.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceGetGpuInstanceProfileInfoV(dev, 0, &mut v2)
    };
    assert_eq!(r, NOT_SUPPORTED);
    nvml.device_by_index(2).unwrap().set_mig_mode(true).unwrap();
    // SAFETY: as above.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceGetGpuInstanceProfileInfoV(dev, 0, &mut v2)
    };
    assert_eq!(r, SUCCESS);
    assert_eq!((v2.id, v2.memorySizeMB), (19, 16384));
    // SAFETY: `name` is NUL-terminated by the library.
    let name = unsafe { std::ffi::CStr::from_ptr(v2.name.as_ptr()) };
    assert_eq!(name.to_str().unwrap(), "MIG 1g.18gb");
    // SAFETY: all-zero is valid for this plain C struct.
    let mut v3: nvmlGpuInstanceProfileInfo_v3_t = unsafe { std::mem::zeroed() };
    v3.version = std::mem::size_of::<nvmlGpuInstanceProfileInfo_v3_t>() as u32 | (3 << 24);
    // SAFETY: `v3` is a writable v3 struct; the API takes it through the v2 pointer type.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceGetGpuInstanceProfileInfoV(dev, 4, (&raw mut v3).cast())
    };
    assert_eq!(r, SUCCESS);
    assert_eq!((v3.id, v3.sliceCount, v3.multiprocessorCount), (0, 7, 132));
    v2.version = 12345;
    // SAFETY: as above.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceGetGpuInstanceProfileInfoV(dev, 0, &mut v2)
    };
    assert_eq!(r, ARGUMENT_VERSION_MISMATCH);
}

#[test]
fn possible_placements() {
    let Some(_state) = isolate(
        "possible_placements",
        &[
            "--model",
            "H100-80GB",
            "--gpus",
            "1",
            "--model",
            "A30-24GB",
            "--gpus",
            "1",
        ],
    ) else {
        return;
    };
    let nvml = open();
    let h = handle(&nvml, 0);
    // Works with MIG disabled.
    assert_eq!(
        placements(&nvml, h, 19).unwrap(),
        (0..7).map(|s| (s, 1)).collect::<Vec<_>>()
    );
    assert_eq!(
        placements(&nvml, h, 15).unwrap(),
        vec![(0, 2), (2, 2), (4, 2), (6, 2)]
    );
    assert_eq!(
        placements(&nvml, h, 14).unwrap(),
        vec![(0, 2), (2, 2), (4, 2)]
    );
    assert_eq!(placements(&nvml, h, 9).unwrap(), vec![(0, 4), (4, 4)]);
    assert_eq!(placements(&nvml, h, 5).unwrap(), vec![(0, 4)]);
    assert_eq!(placements(&nvml, h, 0).unwrap(), vec![(0, 8)]);
    assert_eq!(placements(&nvml, h, 77), Err(INVALID_ARGUMENT));
    let a30 = handle(&nvml, 1);
    assert_eq!(
        placements(&nvml, a30, 14).unwrap(),
        (0..4).map(|s| (s, 1)).collect::<Vec<_>>()
    );
    assert_eq!(placements(&nvml, a30, 5).unwrap(), vec![(0, 2), (2, 2)]);
    assert_eq!(placements(&nvml, a30, 0).unwrap(), vec![(0, 4)]);
}

#[test]
fn gpu_instance_rules() {
    let Some(_state) = isolate(
        "gpu_instance_rules",
        &["--model", "H100-80GB", "--gpus", "1"],
    ) else {
        return;
    };
    let nvml = open();
    nvml.device_by_index(0).unwrap().set_mig_mode(true).unwrap();
    let dev = handle(&nvml, 0);

    let g3 = create_gi_at(&nvml, dev, 9, 0, 4).unwrap();
    let info = gi_info(&nvml, g3);
    assert_eq!(
        (
            info.id,
            info.profileId,
            info.placement.start,
            info.placement.size
        ),
        (1, 9, 0, 4)
    );
    assert_eq!(
        create_gi_at(&nvml, dev, 14, 2, 2).err(),
        Some(INSUFFICIENT_RESOURCES)
    );
    assert_eq!(
        create_gi_at(&nvml, dev, 9, 1, 4).err(),
        Some(INVALID_ARGUMENT)
    );
    assert_eq!(
        create_gi_at(&nvml, dev, 9, 4, 2).err(),
        Some(INVALID_ARGUMENT)
    );
    let g2 = create_gi_at(&nvml, dev, 14, 4, 2).unwrap();
    assert_eq!(gi_info(&nvml, g2).id, 2);
    // Driver-chosen placement: the highest free start.
    let g1 = create_gi(&nvml, dev, 19).unwrap();
    assert_eq!(gi_info(&nvml, g1).placement.start, 6);
    let mut remaining = 99;
    // SAFETY: valid out pointer.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceGetGpuInstanceRemainingCapacity(dev, 19, &mut remaining)
    };
    assert_eq!((r, remaining), (SUCCESS, 0));
    assert_eq!(
        create_gi(&nvml, dev, 19).err(),
        Some(INSUFFICIENT_RESOURCES)
    );

    let mut list = [ptr::null_mut(); 3];
    let mut count = 0;
    // SAFETY: the buffer holds instanceCount (3) handles for 2g.
    let r = unsafe {
        nvml.lib()
            .nvmlDeviceGetGpuInstances(dev, 14, list.as_mut_ptr(), &mut count)
    };
    assert_eq!((r, count), (SUCCESS, 1));
    assert_eq!(gi_info(&nvml, list[0]).id, 2);
    let mut by_id = ptr::null_mut();
    // SAFETY: valid out pointer.
    let r = unsafe { nvml.lib().nvmlDeviceGetGpuInstanceById(dev, 3, &mut by_id) };
    assert_eq!(r, SUCCESS);
    assert_eq!(gi_info(&nvml, by_id).profileId, 19);
    // SAFETY: valid out pointer.
    let r = unsafe { nvml.lib().nvmlDeviceGetGpuInstanceById(dev, 6, &mut by_id) };
    assert_eq!(r, NOT_FOUND);

    assert_eq!(destroy_gi(&nvml, g2), SUCCESS);
    assert_eq!(destroy_gi(&nvml, g2), NOT_FOUND);
    // Freed id 2 is reused.
    assert_eq!(gi_info(&nvml, create_gi(&nvml, dev, 14).unwrap()).id, 2);
    // Garbage handle.
    assert_eq!(
        destroy_gi(&nvml, 0x5555_0000usize as nvmlGpuInstance_t),
        INVALID_ARGUMENT
    );
}

#[test]
fn compute_instances_processes_and_destroy() {
    let Some(state) = isolate(
        "compute_instances_processes_and_destroy",
        &["--model", "A100-40GB", "--gpus", "1"],
    ) else {
        return;
    };
    sim_ok(&state, &["reset"]); // no-op before enabling: nothing pending
    let nvml = open();
    let gpu = nvml.device_by_index(0).unwrap();
    gpu.set_mig_mode(true).unwrap();
    sim_ok(&state, &["reset", "--gpu", "0"]);
    let dev = handle(&nvml, 0);
    let gi = create_gi(&nvml, dev, 9).unwrap();
    let gi_id = gi_info(&nvml, gi).id;
    let ci_a = create_ci(&nvml, gi, 0).unwrap();
    let ci_b = create_ci(&nvml, gi, 1).unwrap();
    assert_eq!(create_ci(&nvml, gi, 0).err(), Some(INSUFFICIENT_RESOURCES));
    assert_eq!(create_ci(&nvml, gi, 3).err(), Some(INVALID_ARGUMENT));
    // SAFETY: all-zero is valid for this plain C struct (null pointer fields).
    let mut info: nvmlComputeInstanceInfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid out pointer; `ci_b` came from this library.
    let r = unsafe { nvml.lib().nvmlComputeInstanceGetInfo_v2(ci_b, &mut info) };
    assert_eq!(r, SUCCESS);
    assert_eq!((info.id, info.profileId, info.placement.size), (1, 1, 2));

    assert_eq!(destroy_gi(&nvml, gi), IN_USE);

    // MIG devices: ordered by GI id then CI id, with their own UUIDs.
    assert_eq!(gpu.mig_device_count().unwrap(), 7);
    let mig0 = gpu.mig_device_by_index(0).unwrap();
    let mig1 = gpu.mig_device_by_index(1).unwrap();
    assert!(matches!(
        gpu.mig_device_by_index(2),
        Err(NvmlError::NotFound)
    ));
    assert!(mig1.mig_is_mig_device_handle().unwrap());
    let mig1_uuid = mig1.uuid().unwrap();
    assert!(mig1_uuid.starts_with("MIG-"), "{mig1_uuid}");
    assert_ne!(mig1_uuid, mig0.uuid().unwrap());
    assert_eq!(
        nvml.device_by_uuid(mig1_uuid.as_str())
            .unwrap()
            .uuid()
            .unwrap(),
        mig1_uuid
    );
    assert_eq!(
        mig1.mig_parent_device().unwrap().uuid().unwrap(),
        gpu.uuid().unwrap()
    );
    assert_eq!(mig1.name().unwrap(), "NVIDIA A100-SXM4-40GB MIG 3g.20gb");
    assert_eq!(mig1.memory_info().unwrap().total, 19968 * 1024 * 1024);
    let mut ids = (0, 0);
    // SAFETY: valid out pointers; the MIG handle came from this library.
    unsafe {
        assert_eq!(
            nvml.lib()
                .nvmlDeviceGetGpuInstanceId(mig1.handle(), &mut ids.0),
            SUCCESS
        );
        assert_eq!(
            nvml.lib()
                .nvmlDeviceGetComputeInstanceId(mig1.handle(), &mut ids.1),
            SUCCESS
        );
    }
    assert_eq!(ids, (gi_id, 1));

    // A process on CI 1 blocks its destruction.
    sim_ok(
        &state,
        &[
            "process",
            "add",
            "--gpu",
            "0",
            "--gi",
            &gi_id.to_string(),
            "--ci",
            "1",
            "--pid",
            "5150",
            "--mem",
            "300",
        ],
    );
    let on_mig = mig1.running_compute_processes().unwrap();
    assert_eq!(on_mig.len(), 1);
    assert_eq!(on_mig[0].pid, 5150);
    assert!(mig0.running_compute_processes().unwrap().is_empty());
    let all = gpu.running_compute_processes().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].gpu_instance_id, all[0].compute_instance_id),
        (Some(gi_id), Some(1))
    );
    assert_eq!(destroy_ci(&nvml, ci_b), IN_USE);
    assert_eq!(destroy_ci(&nvml, ci_a), SUCCESS);
    assert_eq!(destroy_ci(&nvml, ci_a), NOT_FOUND);
    // Stale MIG handle of the destroyed CI 0.
    assert!(matches!(mig0.uuid(), Err(NvmlError::NotFound)));

    sim_ok(&state, &["process", "remove", "--pid", "5150"]);
    assert_eq!(destroy_ci(&nvml, ci_b), SUCCESS);
    assert_eq!(destroy_gi(&nvml, gi), SUCCESS);
    assert_eq!(gpu.mig_device_count().unwrap(), 7);
    assert!(matches!(
        gpu.mig_device_by_index(0),
        Err(NvmlError::NotFound)
    ));
}

#[test]
fn injection_then_success_and_call_log() {
    let Some(state) = isolate(
        "injection_then_success_and_call_log",
        &["--model", "H200-141GB", "--gpus", "1"],
    ) else {
        return;
    };
    let nvml = open();
    sim_ok(
        &state,
        &[
            "inject",
            "--function",
            "nvmlDeviceGetCount_v2",
            "--code",
            "3",
        ],
    );
    assert!(matches!(nvml.device_count(), Err(NvmlError::NotSupported)));
    assert_eq!(nvml.device_count().unwrap(), 1);

    nvml.device_by_index(0).unwrap().set_mig_mode(true).unwrap();
    let dev = handle(&nvml, 0);
    sim_ok(
        &state,
        &[
            "inject",
            "--function",
            "nvmlDeviceCreateGpuInstanceWithPlacement",
            "--code",
            "23",
            "--count",
            "2",
        ],
    );
    assert_eq!(
        create_gi_at(&nvml, dev, 19, 0, 1).err(),
        Some(INSUFFICIENT_RESOURCES)
    );
    assert_eq!(
        create_gi_at(&nvml, dev, 19, 0, 1).err(),
        Some(INSUFFICIENT_RESOURCES)
    );
    assert!(
        state_json(&state)["gpus"][0]["gpu_instances"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let gi = create_gi_at(&nvml, dev, 19, 0, 1).unwrap();
    create_gi_at(&nvml, dev, 19, 1, 1).unwrap();
    assert_eq!(destroy_gi(&nvml, gi), SUCCESS);
    assert!(
        state_json(&state)["injections"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let count = |f: &str| {
        sim_ok(&state, &["calls", "--count-only", "--function", f])
            .trim()
            .parse::<usize>()
            .unwrap()
    };
    assert_eq!(count("nvmlDeviceCreateGpuInstanceWithPlacement"), 4);
    assert_eq!(count("nvmlGpuInstanceDestroy"), 1);
    assert_eq!(count("nvmlDeviceGetCount_v2"), 2);
    assert_eq!(count("nvmlInit_v2"), 1);

    let lines: Vec<serde_json::Value> =
        std::fs::read_to_string(state.with_file_name("state.json.calls"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let creates: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fn"] == "nvmlDeviceCreateGpuInstanceWithPlacement")
        .collect();
    let rets: Vec<u64> = creates.iter().map(|l| l["ret"].as_u64().unwrap()).collect();
    assert_eq!(rets, vec![23, 23, 0, 0]);
    assert_eq!(creates[3]["args"]["gpu"], 0);
    assert_eq!(creates[3]["args"]["profile_id"], 19);
    assert_eq!(creates[3]["args"]["placement"]["start"], 1);
    let total = sim_ok(&state, &["calls", "--count-only"])
        .trim()
        .parse::<usize>()
        .unwrap();
    assert_eq!(total, lines.len());
}

#[test]
fn reboot_per_generation() {
    let Some(state) = isolate(
        "reboot_per_generation",
        &[
            "--model",
            "A30-24GB",
            "--gpus",
            "1",
            "--model",
            "B200-180GB",
            "--gpus",
            "1",
        ],
    ) else {
        return;
    };
    let boot = state_json(&state)["boot_id"].as_str().unwrap().to_string();
    let nvml = open();
    let a30 = nvml.device_by_index(0).unwrap();
    let b200 = nvml.device_by_index(1).unwrap();
    a30.set_mig_mode(true).unwrap();
    b200.set_mig_mode(true).unwrap();
    create_gi(&nvml, handle(&nvml, 1), 0).unwrap();
    sim_ok(&state, &["process", "add", "--gpu", "0", "--pid", "9"]);

    sim_ok(&state, &["reboot"]);
    let st = state_json(&state);
    assert_ne!(st["boot_id"].as_str().unwrap(), boot);
    let m = a30.mig_mode().unwrap();
    assert_eq!(
        (m.current, m.pending),
        (1, 1),
        "Ampere: mode persists and activates"
    );
    let m = b200.mig_mode().unwrap();
    assert_eq!((m.current, m.pending), (0, 0), "Blackwell: mode lost");
    assert!(
        st["gpus"][1]["gpu_instances"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(st["gpus"][0]["processes"].as_array().unwrap().is_empty());
    assert_eq!(a30.mig_device_count().unwrap(), 4);
}

#[test]
fn non_mig_gpu_not_supported() {
    let Some(_state) = isolate(
        "non_mig_gpu_not_supported",
        &["--model", "L4", "--gpus", "1"],
    ) else {
        return;
    };
    let nvml = open();
    let l4 = nvml.device_by_index(0).unwrap();
    assert_eq!(l4.name().unwrap(), "NVIDIA L4");
    assert_eq!(l4.pci_info().unwrap().pci_device_id, 0x27B8_10DE);
    assert_eq!(l4.memory_info().unwrap().total, 23034 * 1024 * 1024);
    assert!(matches!(l4.mig_mode(), Err(NvmlError::NotSupported)));
    assert!(matches!(
        l4.set_mig_mode(true),
        Err(NvmlError::NotSupported)
    ));
    assert!(matches!(l4.profile_info(0), Err(NvmlError::NotSupported)));
    assert!(matches!(
        l4.mig_device_count(),
        Err(NvmlError::NotSupported)
    ));
    let dev = handle(&nvml, 0);
    assert_eq!(placements(&nvml, dev, 19), Err(NOT_SUPPORTED));
    assert_eq!(create_gi(&nvml, dev, 19).err(), Some(NOT_SUPPORTED));
}

#[test]
fn missing_state_is_an_error_not_a_crash() {
    if std::env::var_os(crate::common::CHILD).is_none() {
        run_child("missing_state_is_an_error_not_a_crash", None);
        return;
    }
    let r = Nvml::builder()
        .lib_path(crate::common::lib_path().as_os_str())
        .init();
    assert!(
        matches!(r, Err(NvmlError::LibraryNotFound)),
        "{:?}",
        r.err()
    );
}

#[test]
fn unreadable_state_is_an_error() {
    let Some(state) = isolate(
        "unreadable_state_is_an_error",
        &["--model", "L4", "--gpus", "1"],
    ) else {
        return;
    };
    std::fs::write(&state, "{not json").unwrap();
    let r = Nvml::builder()
        .lib_path(crate::common::lib_path().as_os_str())
        .init();
    assert!(
        matches!(r, Err(NvmlError::LibraryNotFound)),
        "{:?}",
        r.err()
    );
}
