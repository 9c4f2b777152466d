//! Filling the C structs NVML returns (profile infos, PCI info, memory).

use super::*;

pub(super) fn gi_info_v1(p: &GiProfile) -> nvmlGpuInstanceProfileInfo_t {
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
/// `NOT_SUPPORTED` when absent on this GPU (or the GPU has no MIG), or when the host's
/// `driver` is older than the profile's first driver.
pub(super) fn gi_profile_by_index(
    gpu: &Gpu,
    driver: &str,
    index: u32,
) -> Result<&'static GiProfile, Code> {
    let model = gpu.mig_model()?;
    if index >= GI_PROFILE_INDEX_COUNT {
        return Err(INVALID_ARGUMENT);
    }
    model
        .profile_by_index(index)
        .filter(|p| p.offered_on(driver))
        .ok_or(NOT_SUPPORTED)
}
