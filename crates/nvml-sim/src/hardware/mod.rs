//! The simulator's own hardware tables: GPU models, their GPU-instance profiles and the
//! compute-instance profiles derived from them (deliberately independent of `migfleet-mig`).

mod tables;

pub use tables::MODELS;

/// GPU architecture generation; decides MIG-mode semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// A30 / A100: mode changes wait for a GPU reset and survive reboots.
    Ampere,
    /// H100 / H200 / GH200: mode changes are immediate when idle, lost on reboot.
    Hopper,
    /// B200: same MIG-mode semantics as Hopper.
    Blackwell,
    /// A GPU without MIG support (e.g. L4).
    Ada,
}

impl Generation {
    /// Whether a MIG-mode change needs a GPU reset to take effect (Ampere only).
    pub fn mode_change_needs_reset(self) -> bool {
        matches!(self, Generation::Ampere)
    }

    /// Whether the MIG mode survives a host reboot (Ampere only).
    pub fn mode_survives_reboot(self) -> bool {
        matches!(self, Generation::Ampere)
    }
}

/// One GPU-instance profile as NVML reports it (`nvmlGpuInstanceProfileInfo_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GiProfile {
    /// NVML index constant (`NVML_GPU_INSTANCE_PROFILE_*`).
    pub index: u32,
    /// Driver's unique profile id (`info.id`).
    pub id: u32,
    /// Short name without the `MIG ` prefix, e.g. `1g.5gb+me`.
    pub name: &'static str,
    /// Compute (SM) slices.
    pub slices: u32,
    /// Placement size, in the model's placement units (memory slices on A30..B200, three
    /// units per slice on the RTX PRO 6000).
    pub mem_slices: u32,
    /// Maximum number of instances of this profile.
    pub instance_count: u32,
    /// Memory of one instance, MiB.
    pub memory_mib: u64,
    /// Streaming multiprocessors.
    pub sms: u32,
    /// Copy engines.
    pub copy_engines: u32,
    /// NVDEC units.
    pub decoders: u32,
    /// NVENC units.
    pub encoders: u32,
    /// NVJPG units.
    pub jpegs: u32,
    /// Optical-flow accelerators.
    pub ofas: u32,
    /// Valid placement starts, in placement units.
    pub starts: &'static [u32],
    /// Takes the GPU's media extensions (`+me`, and `+me.all` which takes every media
    /// engine): at most one such instance per GPU.
    pub media_extensions: bool,
    /// The first driver that offers the profile, where later than the model's; an older
    /// driver answers NOT_SUPPORTED for it, as a real one does.
    pub min_driver: Option<&'static str>,
}

impl GiProfile {
    /// Whether a host on driver `driver` offers this profile.
    pub fn offered_on(&self, driver: &str) -> bool {
        self.min_driver
            .is_none_or(|floor| version_at_least(driver, floor))
    }
}

/// Compares NVIDIA driver versions (`580.95.05`, `R525`, a `-sim` suffix ignored) number by
/// number; text without numbers compares as new enough.
pub fn version_at_least(driver: &str, floor: &str) -> bool {
    fn nums(v: &str) -> Option<Vec<u32>> {
        let v = v.trim().trim_start_matches(['R', 'r']);
        let v = v.split('-').next().unwrap_or("");
        v.split('.').map(|p| p.parse().ok()).collect()
    }
    match (nums(driver), nums(floor)) {
        (Some(d), Some(f)) => d >= f,
        _ => true,
    }
}

/// One GPU model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    /// Key accepted by `nvml-sim init --model` (case-insensitive).
    pub key: &'static str,
    /// Device name as `nvmlDeviceGetName` reports it.
    pub name: &'static str,
    /// PCI device id (upper 16 bits of `pciDeviceId`).
    pub pci_device: u32,
    /// `pciSubSystemId`.
    pub pci_subsystem: u32,
    /// Total framebuffer memory, MiB.
    pub memory_mib: u64,
    /// Architecture generation.
    pub generation: Generation,
    /// Placement units across the GPU: the memory slices (8; A30: 4), or 12 on the RTX PRO
    /// 6000 whose 1-slice instances are 3 units wide. Zero on non-MIG GPUs.
    pub mem_slices: u32,
    /// Compute slices (7; A30: 4). Zero on non-MIG GPUs.
    pub compute_slices: u32,
    /// GPU-instance profiles, empty on non-MIG GPUs.
    pub profiles: &'static [GiProfile],
}

/// NVIDIA's PCI vendor id.
pub const NVIDIA_VENDOR: u32 = 0x10DE;
/// `NVML_GPU_INSTANCE_PROFILE_COUNT` in the newest headers: indices at or above are invalid.
pub const GI_PROFILE_INDEX_COUNT: u32 = 0x12;
/// `NVML_COMPUTE_INSTANCE_PROFILE_COUNT` in the newest headers.
pub const CI_PROFILE_INDEX_COUNT: u32 = 0x9;
/// Compute-instance slice counts by CI profile index 0..=4.
const CI_SLICES: [u32; 5] = [1, 2, 3, 4, 7];

/// How many compute instances of `ci` slices a GI of `gi` slices offers, as the driver
/// lists them (`nvidia-smi mig -lcip`); `None`: not offered. Kept here on its own (not
/// taken from the catalog) so the simulator and the catalog check each other. A 4-slice
/// GI has no 3-slice CI (A100-SXM4-80GB captures, driver 550).
fn ci_count(gi: u32, ci: u32) -> Option<u32> {
    match (gi, ci) {
        (1, 1) => Some(1),
        (2, 1) => Some(2),
        (2, 2) => Some(1),
        (3, 1) => Some(3),
        (3, 2) | (3, 3) => Some(1),
        (4, 1) => Some(4),
        (4, 2) => Some(2),
        (4, 4) => Some(1),
        (7, 1) => Some(7),
        (7, 2) => Some(3),
        (7, 3) => Some(2),
        (7, 4) | (7, 7) => Some(1),
        _ => None,
    }
}

impl Model {
    /// Looks a model up by its key, case-insensitively.
    pub fn by_key(key: &str) -> Option<&'static Model> {
        MODELS.iter().find(|m| m.key.eq_ignore_ascii_case(key))
    }

    /// Whether the model supports MIG at all.
    pub fn mig_capable(&self) -> bool {
        !self.profiles.is_empty()
    }

    /// `pciDeviceId` as NVML reports it: device << 16 | vendor.
    pub fn pci_device_id(&self) -> u32 {
        (self.pci_device << 16) | NVIDIA_VENDOR
    }

    /// Profile by NVML index constant.
    pub fn profile_by_index(&self, index: u32) -> Option<&'static GiProfile> {
        self.profiles.iter().find(|p| p.index == index)
    }

    /// Profile by driver unique id.
    pub fn profile_by_id(&self, id: u32) -> Option<&'static GiProfile> {
        self.profiles.iter().find(|p| p.id == id)
    }

    /// Maximum number of MIG devices (`nvmlDeviceGetMaxMigDeviceCount` with MIG on).
    pub fn max_mig_devices(&self) -> u32 {
        self.compute_slices
    }
}

/// A compute-instance profile inside a GPU instance of a given profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CiProfile {
    /// NVML CI index constant; the profile id equals it.
    pub index: u32,
    /// Compute slices.
    pub slices: u32,
    /// Maximum instances inside the GI.
    pub instance_count: u32,
    /// SMs of one instance.
    pub sms: u32,
    /// Name as the V call reports it, e.g. `MIG 1c.3g.20gb`.
    pub name: String,
}

impl GiProfile {
    /// The compute-instance profile with NVML index `index` in a GI of this profile, if allowed.
    pub fn ci_profile(&self, index: u32) -> Option<CiProfile> {
        let slices = *CI_SLICES.get(usize::try_from(index).ok()?)?;
        let instance_count = ci_count(self.slices, slices)?;
        let name = if slices == self.slices {
            format!("MIG {}", self.name)
        } else {
            format!("MIG {slices}c.{}", self.name)
        };
        Some(CiProfile {
            index,
            slices,
            instance_count,
            sms: self.sms * slices / self.slices,
            name,
        })
    }

    /// Valid compute-instance placement starts (compute-slice units) for `slices` in this GI:
    /// aligned to the CI size and fully inside the GI.
    pub fn ci_starts(&self, slices: u32) -> Vec<u32> {
        if slices == 0 {
            return Vec::new();
        }
        (0..self.slices)
            .step_by(slices as usize)
            .filter(|s| s + slices <= self.slices)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_unique_and_lookup_case_insensitive() {
        for m in MODELS {
            assert_eq!(
                Model::by_key(&m.key.to_lowercase()).map(|x| x.key),
                Some(m.key)
            );
            assert_eq!(MODELS.iter().filter(|o| o.key == m.key).count(), 1);
        }
    }

    #[test]
    fn placements_fit_and_ids_unique() {
        for m in MODELS {
            for p in m.profiles {
                for s in p.starts {
                    assert!(s + p.mem_slices <= m.mem_slices, "{} {}", m.key, p.name);
                }
                assert!(p.slices <= m.compute_slices);
                assert_eq!(m.profiles.iter().filter(|o| o.id == p.id).count(), 1);
                assert_eq!(m.profiles.iter().filter(|o| o.index == p.index).count(), 1);
            }
        }
    }

    #[test]
    fn ci_profiles() {
        let m = Model::by_key("A100-40GB").unwrap();
        let g3 = m.profile_by_id(9).unwrap();
        let ci1 = g3.ci_profile(0).unwrap();
        assert_eq!((ci1.slices, ci1.instance_count), (1, 3));
        assert_eq!(ci1.name, "MIG 1c.3g.20gb");
        assert_eq!(g3.ci_profile(2).unwrap().name, "MIG 3g.20gb");
        assert!(g3.ci_profile(3).is_none());
        assert_eq!(g3.ci_starts(2), vec![0]);
        let g7 = m.profile_by_id(0).unwrap();
        assert_eq!(g7.ci_profile(4).unwrap().instance_count, 1);
        assert_eq!(g7.ci_starts(3), vec![0, 3]);
        // A 4-slice GI offers 1c x4, 2c x2 and itself: no 3-slice CI.
        let g4 = m.profile_by_id(5).unwrap();
        assert_eq!(g4.slices, 4);
        assert!(g4.ci_profile(2).is_none(), "no 3c in a 4g");
        assert_eq!(g4.ci_profile(1).unwrap().instance_count, 2);
        assert_eq!(g4.ci_profile(0).unwrap().instance_count, 4);
        assert_eq!(g4.ci_profile(3).unwrap().name, "MIG 4g.20gb");
    }
}
