//! The GPU model catalog: MIG profiles, placements, NVML ids and PCI ids per model, with
//! the provenance of every value. Data only, plus lookups by name and by PCI id; it knows
//! nothing about layouts or plans.
//!
//! Sources are in `shared/reference/mig-facts.md` §2. Values that no capture or document
//! gives are marked [`Source::Assumed`] or [`Source::Unknown`], never silently invented.
//! The host's own NVML table wins over this one at run time (the agent reports a
//! disagreement); the catalog exists so that plans, checks and policies work without a GPU.

mod ampere;
mod blackwell;
mod fact;
mod hopper;
mod names;

pub use fact::{Fact, Source};
pub use names::{ProfileName, normalize_model_name};

use serde::{Deserialize, Serialize};
use std::fmt;

/// NVIDIA's PCI vendor id.
pub const NVIDIA_VENDOR_ID: u16 = 0x10de;

/// GPU architecture generation; decides how MIG mode changes take effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    Ampere,
    Hopper,
    Blackwell,
}

impl Generation {
    /// Ampere applies a mode change only after a GPU reset (the driver tries one itself and
    /// leaves the change pending when clients hold the GPU); Hopper and later switch at once.
    pub fn mode_change_needs_reset(self) -> bool {
        matches!(self, Generation::Ampere)
    }
    /// Ampere keeps MIG mode in the InfoROM across reboots; Hopper and later lose it on
    /// reboot or driver reload.
    pub fn mode_survives_reboot(self) -> bool {
        matches!(self, Generation::Ampere)
    }
}

/// NVML's GPU-instance profile *index* constants (`NVML_GPU_INSTANCE_PROFILE_*`). These are
/// what `nvmlDeviceGetGpuInstanceProfileInfo` takes; the driver's unique profile id
/// ([`GiProfile::id`]) is a different number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GiConst {
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE")]
    Slice1,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_2_SLICE")]
    Slice2,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_3_SLICE")]
    Slice3,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_4_SLICE")]
    Slice4,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_7_SLICE")]
    Slice7,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1")]
    Slice1Rev1,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1")]
    Slice2Rev1,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2")]
    Slice1Rev2,
}

impl GiConst {
    /// The value of the constant in `nvml.h`.
    pub const fn value(self) -> u32 {
        match self {
            GiConst::Slice1 => 0x0,
            GiConst::Slice2 => 0x1,
            GiConst::Slice3 => 0x2,
            GiConst::Slice4 => 0x3,
            GiConst::Slice7 => 0x4,
            GiConst::Slice1Rev1 => 0x7,
            GiConst::Slice2Rev1 => 0x8,
            GiConst::Slice1Rev2 => 0x9,
        }
    }
    /// The constant's name in `nvml.h`.
    pub const fn c_name(self) -> &'static str {
        match self {
            GiConst::Slice1 => "NVML_GPU_INSTANCE_PROFILE_1_SLICE",
            GiConst::Slice2 => "NVML_GPU_INSTANCE_PROFILE_2_SLICE",
            GiConst::Slice3 => "NVML_GPU_INSTANCE_PROFILE_3_SLICE",
            GiConst::Slice4 => "NVML_GPU_INSTANCE_PROFILE_4_SLICE",
            GiConst::Slice7 => "NVML_GPU_INSTANCE_PROFILE_7_SLICE",
            GiConst::Slice1Rev1 => "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1",
            GiConst::Slice2Rev1 => "NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1",
            GiConst::Slice1Rev2 => "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2",
        }
    }
    /// Looks a constant up by its `nvml.h` value.
    pub fn from_value(v: u32) -> Option<GiConst> {
        ALL_GI_CONSTS.iter().copied().find(|c| c.value() == v)
    }
}

const ALL_GI_CONSTS: [GiConst; 8] = [
    GiConst::Slice1,
    GiConst::Slice2,
    GiConst::Slice3,
    GiConst::Slice4,
    GiConst::Slice7,
    GiConst::Slice1Rev1,
    GiConst::Slice2Rev1,
    GiConst::Slice1Rev2,
];

/// What kind of profile this is, beyond its size: the plain one, the media-extension
/// (`+me`) one, or the double-memory 1-slice one (REV2, which the driver names only by its
/// larger `NNgb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    Plain,
    MediaExtensions,
    DoubleMemory,
}

/// A GPU-instance profile on one model.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GiProfile {
    /// Name as `nvidia-smi`, mig-parted and the Kubernetes device plugin spell it.
    pub name: &'static str,
    pub kind: ProfileKind,
    /// NVML index constant.
    pub nvml: GiConst,
    /// The driver's unique profile id (`nvmlGpuInstanceProfileInfo_t.id`), which create,
    /// list and placement calls take.
    pub id: Fact<u32>,
    /// Compute (SM) slices.
    pub compute_slices: u8,
    /// Memory slices; also the placement size in NVML placement units.
    pub memory_slices: u8,
    pub memory_mib: Fact<u32>,
    pub sm_count: Fact<u32>,
    /// `instanceCount`: how many of this profile fit on an empty GPU.
    pub max_instances: u8,
    /// Valid placement starts, in memory-slice units.
    pub starts: &'static [u8],
    /// Whether `starts` were captured with `-lgipp` on this model or assumed.
    pub starts_source: Source,
    /// The compute-instance profiles the GI offers: (compute slices, how many fit); see
    /// [`ci_offers`].
    pub cis: &'static [(u8, u8)],
}

/// The compute-instance profiles a GPU instance of `compute` slices offers, as the driver
/// lists them (`nvidia-smi mig -lcip`): (compute slices, how many fit). An explicit
/// table, not a rule from sizes: a 4-slice GI offers 1c ×4, 2c ×2 and the full 4g, and
/// no 3c (two A100-SXM4-80GB `-lcip` captures on driver 550, and NVIDIA's go-nvml mocks
/// for A100, H100, B200 and A30, agree). The 7-slice GI's 4c is documented for A100 and
/// assumed for Hopper and Blackwell, which are not confirmed.
pub const fn ci_offers(compute: u8) -> &'static [(u8, u8)] {
    match compute {
        1 => &[(1, 1)],
        2 => &[(1, 2), (2, 1)],
        3 => &[(1, 3), (2, 1), (3, 1)],
        4 => &[(1, 4), (2, 2), (4, 1)],
        7 => &[(1, 7), (2, 3), (3, 2), (4, 1), (7, 1)],
        _ => &[],
    }
}

impl GiProfile {
    /// Bit mask of the memory slices an instance placed at `start` occupies.
    /// A start outside the GPU (only possible in unvalidated input) gives the bits that
    /// still fall on it, never a panic.
    pub fn mask_at(&self, start: u8) -> u16 {
        let size = (1u32 << self.memory_slices.min(16)) - 1;
        size.checked_shl(u32::from(start)).unwrap_or(0) as u16
    }

    /// Compute-instance sizes (in compute slices) that can live inside this GPU instance.
    /// The set {1,2,3,4,7} bounded by the GI's size follows the MIG guide's `-lcip` listing
    /// for A100; on other models it is assumed the same.
    pub fn ci_sizes(&self) -> impl Iterator<Item = u8> + '_ {
        self.cis.iter().map(|(c, _)| *c)
    }

    /// How many compute instances of `slices` fit in one instance of this profile (0: the
    /// GI offers no such compute instance).
    pub fn ci_max(&self, slices: u8) -> u8 {
        self.cis
            .iter()
            .find(|(c, _)| *c == slices)
            .map_or(0, |(_, n)| *n)
    }

    /// The offered compute instances as `-lcip` names them: `1c ×4, 2c ×2, 4g.40gb`.
    pub fn ci_offer_text(&self) -> String {
        self.cis
            .iter()
            .map(|(c, n)| {
                if *c == self.compute_slices {
                    self.name.to_string()
                } else {
                    format!("{c}c ×{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The compute-instance profile of `slices` inside this GI, if it exists.
    pub fn ci_profile(&self, slices: u8) -> Option<CiProfile> {
        if !self.ci_sizes().any(|c| c == slices) {
            return None;
        }
        Some(CiProfile {
            gi_name: self.name,
            slices,
            full: slices == self.compute_slices,
            max_instances: self.ci_max(slices),
        })
    }

    /// Every compute-instance profile inside this GI, smallest first.
    pub fn ci_profiles(&self) -> Vec<CiProfile> {
        self.ci_sizes().filter_map(|c| self.ci_profile(c)).collect()
    }
}

/// NVML compute-instance profile index constants (`NVML_COMPUTE_INSTANCE_PROFILE_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CiConst(pub u32);

/// A compute-instance profile inside a GPU instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CiProfile {
    pub gi_name: &'static str,
    /// Compute slices of this CI.
    pub slices: u8,
    /// True when the CI spans the whole GI (the default, one CI per GI).
    pub full: bool,
    pub max_instances: u8,
}

impl CiProfile {
    /// NVML index constant for this CI size.
    pub fn nvml(&self) -> CiConst {
        CiConst(match self.slices {
            1 => 0x0,
            2 => 0x1,
            3 => 0x2,
            4 => 0x3,
            7 => 0x4,
            8 => 0x5,
            _ => 0x6,
        })
    }
    /// The name as the driver prints it: the GI name for a full CI, `Cc.<gi>` otherwise.
    pub fn name(&self) -> String {
        if self.full {
            self.gi_name.to_string()
        } else {
            format!("{}c.{}", self.slices, self.gi_name)
        }
    }
}

/// A PCI device id under which a model shows up.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct PciDevice {
    pub device_id: u16,
    /// Marketing name of this variant, e.g. "A100-SXM4-40GB".
    pub variant: &'static str,
}

/// One GPU model as far as MIG is concerned.
#[derive(Debug, Serialize)]
pub struct GpuModel {
    /// Canonical name, used in every output: e.g. `H100-80GB`.
    pub name: &'static str,
    pub generation: Generation,
    pub pci: &'static [PciDevice],
    /// Extra names (already normalized, see [`normalize_model_name`]) that select this model.
    pub aliases: &'static [&'static str],
    pub compute_slices: u8,
    pub memory_slices: u8,
    pub profiles: &'static [GiProfile],
    /// First driver branch with MIG support for this model.
    pub min_driver: &'static str,
}

/// Index of a profile in [`GpuModel::profiles`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProfileIdx(pub u8);

impl GpuModel {
    pub fn profile(&self, idx: ProfileIdx) -> &GiProfile {
        &self.profiles[idx.0 as usize]
    }

    /// Iterates over `(index, profile)` pairs.
    pub fn indexed_profiles(&self) -> impl Iterator<Item = (ProfileIdx, &GiProfile)> {
        self.profiles
            .iter()
            .enumerate()
            .map(|(i, p)| (ProfileIdx(i as u8), p))
    }

    /// Finds a GI profile by its NVML index constant.
    pub fn profile_by_const(&self, c: GiConst) -> Option<ProfileIdx> {
        self.indexed_profiles()
            .find(|(_, p)| p.nvml == c)
            .map(|(i, _)| i)
    }

    /// Resolves a profile name as written in configs, policies and device-plugin resource
    /// names (`1g.10gb`, `1g.10gb+me`, `1c.3g.40gb`, `mig-2g.20gb`) to this model's profile.
    pub fn resolve(&self, name: &str) -> Result<ResolvedProfile, ProfileError> {
        let parsed = ProfileName::parse(name).map_err(|reason| ProfileError::Syntax {
            name: name.to_string(),
            reason,
        })?;
        let gi_name = parsed.gi_name();
        let Some((idx, gi)) = self.indexed_profiles().find(|(_, p)| p.name == gi_name) else {
            return Err(ProfileError::NotOnModel {
                name: name.to_string(),
                model: self.name,
                known: self.profile_names(),
            });
        };
        let ci = parsed.ci_slices.unwrap_or(gi.compute_slices);
        if gi.ci_profile(ci).is_none() {
            return Err(ProfileError::NotOnModel {
                name: name.to_string(),
                model: self.name,
                known: gi.ci_profiles().iter().map(|c| c.name()).collect(),
            });
        }
        Ok(ResolvedProfile {
            gi: idx,
            ci_slices: ci,
        })
    }

    /// All GI profile names of this model, in catalog order.
    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.iter().map(|p| p.name.to_string()).collect()
    }

    /// Whether `idx` is one of the plain profiles (no `+me`, no double-memory 1g).
    pub fn is_plain(&self, idx: ProfileIdx) -> bool {
        self.profile(idx).kind == ProfileKind::Plain
    }

    /// The first PCI device id, used when a model stands for a GPU in checks and demos.
    pub fn primary_pci(&self) -> u16 {
        self.pci.first().map(|p| p.device_id).unwrap_or(0)
    }
}

impl fmt::Display for GpuModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A name resolved on one model: which GI profile, and the size of the compute instance
/// inside it (equal to the GI's compute slices for the ordinary one-CI-per-GI case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedProfile {
    pub gi: ProfileIdx,
    pub ci_slices: u8,
}

/// Why a profile name does not resolve on a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("`{name}` is not a MIG profile name: {reason}")]
    Syntax { name: String, reason: String },
    #[error("profile `{name}` does not exist on {model}; profiles there: {}", known.join(", "))]
    NotOnModel {
        name: String,
        model: &'static str,
        known: Vec<String>,
    },
}

/// Why a model name does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("unknown GPU model `{name}`; known models: {}", known.join(", "))]
    Unknown {
        name: String,
        known: Vec<&'static str>,
    },
    #[error("GPU model `{name}` is ambiguous: it could be {}", candidates.join(" or "))]
    Ambiguous {
        name: String,
        candidates: Vec<&'static str>,
    },
}

static MODELS: [&GpuModel; 11] = [
    &ampere::A30_24GB,
    &ampere::A100_40GB,
    &ampere::A100_80GB,
    &hopper::H100_80GB,
    &hopper::H100_NVL_94GB,
    &hopper::H100_96GB,
    &hopper::H20_96GB,
    &hopper::PG506_96GB,
    &hopper::H200_141GB,
    &hopper::GH200_144GB,
    &blackwell::B200_180GB,
];

/// Every model in the catalog, in the order `migfleet mig models` lists them.
pub fn models() -> &'static [&'static GpuModel] {
    &MODELS
}

/// Finds a model by name, forgivingly: case, an `NVIDIA` prefix, `-SXM4`/`-SXM5`/`-PCIe`/
/// `-HBM3` forms, spaces, and the `nvidia.com/gpu.product` label values that GPU Feature
/// Discovery writes (including the `-MIG-<profile>` suffix of the single strategy).
pub fn find_model(name: &str) -> Result<&'static GpuModel, ModelError> {
    // A PCI id, as mig-parted's device filters name GPUs: `0x233010DE` or `0x2330`.
    if let Some(device) = pci_device_of(name) {
        return model_by_pci(device).ok_or_else(|| ModelError::Unknown {
            name: name.to_string(),
            known: models().iter().map(|m| m.name).collect(),
        });
    }
    let key = normalize_model_name(name);
    let hits: Vec<&'static GpuModel> = models()
        .iter()
        .copied()
        .filter(|m| normalize_model_name(m.name) == key || m.aliases.contains(&key.as_str()))
        .collect();
    // A bare family name (`A100`) matches every model whose name extends it.
    let hits = if hits.is_empty() && !key.is_empty() {
        let prefix = format!("{key}-");
        models()
            .iter()
            .copied()
            .filter(|m| {
                normalize_model_name(m.name).starts_with(&prefix)
                    || m.aliases.iter().any(|a| a.starts_with(&prefix))
            })
            .collect()
    } else {
        hits
    };
    match hits.as_slice() {
        [one] => Ok(one),
        [] => Err(ModelError::Unknown {
            name: name.to_string(),
            known: models().iter().map(|m| m.name).collect(),
        }),
        many => Err(ModelError::Ambiguous {
            name: name.to_string(),
            candidates: many.iter().map(|m| m.name).collect(),
        }),
    }
}

/// Finds the model for an NVIDIA PCI device id (as NVML's `pciDeviceId >> 16` reports it).
/// The PCI device id in `0x<device><vendor 10DE>` or `0x<device>`; `None` for anything
/// else (model names never start with `0x`).
pub fn pci_device_of(text: &str) -> Option<u16> {
    let hex = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        1..=4 => u16::from_str_radix(hex, 16).ok(),
        8 if hex[4..].eq_ignore_ascii_case("10DE") => u16::from_str_radix(&hex[..4], 16).ok(),
        _ => None,
    }
}

/// The model of a PCI device id.
pub fn model_by_pci(device_id: u16) -> Option<&'static GpuModel> {
    models()
        .iter()
        .copied()
        .find(|m| m.pci.iter().any(|p| p.device_id == device_id))
}

/// Builds a profile of the 7-compute/8-memory-slice class (A100, H100, H200, GH200, B200):
/// slice counts, instance count and placement starts follow from the NVML constant, as
/// captured on A100 and H100 (`-lgipp`, mig-facts §2.3).
const fn seven_slice(
    name: &'static str,
    nvml: GiConst,
    id: Fact<u32>,
    memory_mib: Fact<u32>,
    sm_count: Fact<u32>,
    starts_source: Source,
) -> GiProfile {
    let (kind, compute, memory, max, starts): (ProfileKind, u8, u8, u8, &'static [u8]) = match nvml
    {
        GiConst::Slice1 => (ProfileKind::Plain, 1, 1, 7, &[0, 1, 2, 3, 4, 5, 6]),
        GiConst::Slice1Rev1 => (
            ProfileKind::MediaExtensions,
            1,
            1,
            1,
            &[0, 1, 2, 3, 4, 5, 6],
        ),
        GiConst::Slice1Rev2 => (ProfileKind::DoubleMemory, 1, 2, 4, &[0, 2, 4, 6]),
        GiConst::Slice2 => (ProfileKind::Plain, 2, 2, 3, &[0, 2, 4]),
        GiConst::Slice2Rev1 => (ProfileKind::MediaExtensions, 2, 2, 1, &[0, 2, 4]),
        GiConst::Slice3 => (ProfileKind::Plain, 3, 4, 2, &[0, 4]),
        GiConst::Slice4 => (ProfileKind::Plain, 4, 4, 1, &[0]),
        GiConst::Slice7 => (ProfileKind::Plain, 7, 8, 1, &[0]),
    };
    GiProfile {
        name,
        kind,
        nvml,
        id,
        compute_slices: compute,
        memory_slices: memory,
        memory_mib,
        sm_count,
        max_instances: max,
        starts,
        starts_source,
        cis: ci_offers(compute),
    }
}

/// Builds a profile of the A30's 4-compute/4-memory-slice class (`-lgipp` capture).
const fn four_slice(
    name: &'static str,
    nvml: GiConst,
    id: Fact<u32>,
    memory_mib: Fact<u32>,
    sm_count: Fact<u32>,
) -> GiProfile {
    let (kind, compute, max, starts): (ProfileKind, u8, u8, &'static [u8]) = match nvml {
        GiConst::Slice1 => (ProfileKind::Plain, 1, 4, &[0, 1, 2, 3]),
        GiConst::Slice1Rev1 => (ProfileKind::MediaExtensions, 1, 1, &[0, 1, 2, 3]),
        GiConst::Slice2 => (ProfileKind::Plain, 2, 2, &[0, 2]),
        GiConst::Slice2Rev1 => (ProfileKind::MediaExtensions, 2, 1, &[0, 2]),
        _ => (ProfileKind::Plain, 4, 1, &[0]),
    };
    GiProfile {
        name,
        kind,
        nvml,
        id,
        compute_slices: compute,
        memory_slices: compute,
        memory_mib,
        sm_count,
        max_instances: max,
        starts,
        starts_source: Source::Measured,
        cis: ci_offers(compute),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn models_are_found_by_pci_id_as_mig_parted_filters_name_them() {
        assert_eq!(find_model("0x233010DE").unwrap().name, "H100-80GB");
        assert_eq!(find_model("0x2330").unwrap().name, "H100-80GB");
        assert_eq!(find_model("0x20b010de").unwrap().name, "A100-40GB");
        assert!(matches!(
            find_model("0x999910DE"),
            Err(ModelError::Unknown { .. })
        ));
        assert_eq!(pci_device_of("0x2330ABCD"), None, "not NVIDIA's vendor id");
        // 0x20B6 is a GA100 board: Ampere rules. The H20 has its own driver floor.
        let pg = find_model("0x20B610DE").unwrap();
        assert_eq!((pg.name, pg.generation), ("PG506-96GB", Generation::Ampere));
        let h20 = find_model("0x2329").unwrap();
        assert_eq!((h20.name, h20.min_driver), ("H20-96GB", "R535.161.07"));
        assert_eq!(find_model("h20").unwrap().name, "H20-96GB");
        assert_eq!(find_model("0x2342").unwrap().name, "H100-96GB");
        assert_eq!(pci_device_of("h100"), None);
    }

    use super::*;

    #[test]
    fn finds_models_by_driver_label_and_catalog_names() {
        for (name, want) in [
            ("H100-80GB", "H100-80GB"),
            ("NVIDIA H100 80GB HBM3", "H100-80GB"),
            ("NVIDIA-H100-PCIe", "H100-80GB"),
            ("h100-sxm5-80gb", "H100-80GB"),
            ("NVIDIA-A100-SXM4-40GB", "A100-40GB"),
            ("NVIDIA-A100-40GB-PCIe", "A100-40GB"),
            ("NVIDIA A100 80GB PCIe", "A100-80GB"),
            ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "A100-80GB"),
            ("NVIDIA H100 NVL", "H100-NVL-94GB"),
            ("NVIDIA GH200 480GB", "H100-96GB"),
            ("NVIDIA GH200 144G HBM3e", "GH200-144GB"),
            ("NVIDIA H200", "H200-141GB"),
            ("NVIDIA H200 NVL", "H200-141GB"),
            ("NVIDIA B200", "B200-180GB"),
            ("a30", "A30-24GB"),
        ] {
            assert_eq!(find_model(name).map(|m| m.name), Ok(want), "{name}");
        }
    }

    #[test]
    fn unknown_and_ambiguous_models_are_explained() {
        let e = find_model("A100").unwrap_err().to_string();
        assert_eq!(
            e,
            "GPU model `A100` is ambiguous: it could be A100-40GB or A100-80GB"
        );
        let e = find_model("V100").unwrap_err().to_string();
        assert!(
            e.starts_with("unknown GPU model `V100`; known models: A30-24GB, A100-40GB"),
            "{e}"
        );
    }

    #[test]
    fn pci_ids_select_models_and_are_unique() {
        assert_eq!(model_by_pci(0x20b0).map(|m| m.name), Some("A100-40GB"));
        assert_eq!(model_by_pci(0x2335).map(|m| m.name), Some("H200-141GB"));
        assert!(model_by_pci(0x1db4).is_none());
        let mut ids: Vec<u16> = models()
            .iter()
            .flat_map(|m| m.pci.iter().map(|p| p.device_id))
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "a PCI id is listed under two models");
    }

    #[test]
    fn same_name_resolves_to_different_profiles_per_model() {
        let a40 = find_model("A100-40GB").unwrap();
        let a80 = find_model("A100-80GB").unwrap();
        let r40 = a40.resolve("1g.10gb").unwrap();
        let r80 = a80.resolve("1g.10gb").unwrap();
        assert_eq!(a40.profile(r40.gi).nvml, GiConst::Slice1Rev2);
        assert_eq!(a40.profile(r40.gi).memory_slices, 2);
        assert_eq!(a80.profile(r80.gi).nvml, GiConst::Slice1);
        assert_eq!(a80.profile(r80.gi).memory_slices, 1);
        let me = a80.resolve("1g.10gb+me").unwrap();
        assert_eq!(a80.profile(me.gi).kind, ProfileKind::MediaExtensions);
        let ci = a80.resolve("2c.7g.80gb").unwrap();
        assert_eq!((a80.profile(ci.gi).name, ci.ci_slices), ("7g.80gb", 2));
        let e = a40.resolve("1g.20gb").unwrap_err().to_string();
        assert_eq!(
            e,
            "profile `1g.20gb` does not exist on A100-40GB; profiles there: 1g.5gb, 1g.5gb+me, 1g.10gb, 2g.10gb, 3g.20gb, 4g.20gb, 7g.40gb"
        );
        let e = a40.resolve("5c.7g.40gb").unwrap_err().to_string();
        assert!(
            e.contains("1c.7g.40gb, 2c.7g.40gb, 3c.7g.40gb, 4c.7g.40gb, 7g.40gb"),
            "{e}"
        );
    }

    #[test]
    fn unknown_values_are_marked_not_invented() {
        for m in models() {
            for p in m.profiles {
                assert_eq!(
                    p.memory_mib.value.is_none(),
                    p.memory_mib.source == Source::Unknown
                );
                assert_eq!(
                    p.sm_count.value.is_none(),
                    p.sm_count.source == Source::Unknown
                );
                assert!(p.id.value.is_some(), "{} {} has no id", m.name, p.name);
            }
        }
        let gh = find_model("GH200-144GB").unwrap();
        let g7 = gh.resolve("7g.144gb").unwrap();
        assert_eq!(gh.profile(g7.gi).memory_mib.source, Source::Unknown);
        assert_eq!(gh.profile(g7.gi).id.source, Source::Assumed);
    }
}
