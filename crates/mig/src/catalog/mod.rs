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

/// NVML's GPU-instance profile *index* constants (`NVML_GPU_INSTANCE_PROFILE_*`), all
/// eighteen of the newest `nvml.h`. These are what `nvmlDeviceGetGpuInstanceProfileInfo`
/// takes; the driver's unique profile id ([`GiProfile::id`]) is a different number.
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
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_8_SLICE")]
    Slice8,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_6_SLICE")]
    Slice6,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1")]
    Slice1Rev1,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1")]
    Slice2Rev1,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2")]
    Slice1Rev2,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE_GFX")]
    Slice1Gfx,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_2_SLICE_GFX")]
    Slice2Gfx,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_4_SLICE_GFX")]
    Slice4Gfx,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE_NO_ME")]
    Slice1NoMe,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_2_SLICE_NO_ME")]
    Slice2NoMe,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME")]
    Slice1AllMe,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME")]
    Slice2AllMe,
    #[serde(rename = "NVML_GPU_INSTANCE_PROFILE_3_SLICE_GFX")]
    Slice3Gfx,
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
            GiConst::Slice8 => 0x5,
            GiConst::Slice6 => 0x6,
            GiConst::Slice1Rev1 => 0x7,
            GiConst::Slice2Rev1 => 0x8,
            GiConst::Slice1Rev2 => 0x9,
            GiConst::Slice1Gfx => 0xA,
            GiConst::Slice2Gfx => 0xB,
            GiConst::Slice4Gfx => 0xC,
            GiConst::Slice1NoMe => 0xD,
            GiConst::Slice2NoMe => 0xE,
            GiConst::Slice1AllMe => 0xF,
            GiConst::Slice2AllMe => 0x10,
            GiConst::Slice3Gfx => 0x11,
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
            GiConst::Slice8 => "NVML_GPU_INSTANCE_PROFILE_8_SLICE",
            GiConst::Slice6 => "NVML_GPU_INSTANCE_PROFILE_6_SLICE",
            GiConst::Slice1Rev1 => "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV1",
            GiConst::Slice2Rev1 => "NVML_GPU_INSTANCE_PROFILE_2_SLICE_REV1",
            GiConst::Slice1Rev2 => "NVML_GPU_INSTANCE_PROFILE_1_SLICE_REV2",
            GiConst::Slice1Gfx => "NVML_GPU_INSTANCE_PROFILE_1_SLICE_GFX",
            GiConst::Slice2Gfx => "NVML_GPU_INSTANCE_PROFILE_2_SLICE_GFX",
            GiConst::Slice4Gfx => "NVML_GPU_INSTANCE_PROFILE_4_SLICE_GFX",
            GiConst::Slice1NoMe => "NVML_GPU_INSTANCE_PROFILE_1_SLICE_NO_ME",
            GiConst::Slice2NoMe => "NVML_GPU_INSTANCE_PROFILE_2_SLICE_NO_ME",
            GiConst::Slice1AllMe => "NVML_GPU_INSTANCE_PROFILE_1_SLICE_ALL_ME",
            GiConst::Slice2AllMe => "NVML_GPU_INSTANCE_PROFILE_2_SLICE_ALL_ME",
            GiConst::Slice3Gfx => "NVML_GPU_INSTANCE_PROFILE_3_SLICE_GFX",
        }
    }
    /// Compute slices of a profile behind this constant.
    pub const fn compute_slices(self) -> u8 {
        match self {
            GiConst::Slice1
            | GiConst::Slice1Rev1
            | GiConst::Slice1Rev2
            | GiConst::Slice1Gfx
            | GiConst::Slice1NoMe
            | GiConst::Slice1AllMe => 1,
            GiConst::Slice2
            | GiConst::Slice2Rev1
            | GiConst::Slice2Gfx
            | GiConst::Slice2NoMe
            | GiConst::Slice2AllMe => 2,
            GiConst::Slice3 | GiConst::Slice3Gfx => 3,
            GiConst::Slice4 | GiConst::Slice4Gfx => 4,
            GiConst::Slice6 => 6,
            GiConst::Slice7 => 7,
            GiConst::Slice8 => 8,
        }
    }
    /// The kind NVML's constant stands for. The name a driver prints does not say it:
    /// GB300's `1g.35gb` is a plain 1-slice profile, H200's `1g.35gb` the double-memory one.
    pub const fn kind(self) -> ProfileKind {
        match self {
            GiConst::Slice1Rev1 | GiConst::Slice2Rev1 => ProfileKind::MediaExtensions,
            GiConst::Slice1Rev2 => ProfileKind::DoubleMemory,
            GiConst::Slice1Gfx | GiConst::Slice2Gfx | GiConst::Slice3Gfx | GiConst::Slice4Gfx => {
                ProfileKind::Graphics
            }
            GiConst::Slice1NoMe | GiConst::Slice2NoMe => ProfileKind::NoMedia,
            GiConst::Slice1AllMe | GiConst::Slice2AllMe => ProfileKind::AllMedia,
            _ => ProfileKind::Plain,
        }
    }
    /// Looks a constant up by its `nvml.h` value.
    pub fn from_value(v: u32) -> Option<GiConst> {
        ALL_GI_CONSTS.iter().copied().find(|c| c.value() == v)
    }
    /// Every constant, in `nvml.h` order.
    pub fn all() -> &'static [GiConst] {
        &ALL_GI_CONSTS
    }
}

const ALL_GI_CONSTS: [GiConst; 18] = [
    GiConst::Slice1,
    GiConst::Slice2,
    GiConst::Slice3,
    GiConst::Slice4,
    GiConst::Slice7,
    GiConst::Slice8,
    GiConst::Slice6,
    GiConst::Slice1Rev1,
    GiConst::Slice2Rev1,
    GiConst::Slice1Rev2,
    GiConst::Slice1Gfx,
    GiConst::Slice2Gfx,
    GiConst::Slice4Gfx,
    GiConst::Slice1NoMe,
    GiConst::Slice2NoMe,
    GiConst::Slice1AllMe,
    GiConst::Slice2AllMe,
    GiConst::Slice3Gfx,
];

/// What kind of profile this is, beyond its size: the plain one, the media-extension
/// (`+me`, REV1) one, the double-memory 1-slice one (REV2, which the driver names only by
/// its larger `NNgb`), and the RTX PRO kinds: graphics-capable (`+gfx`), without media
/// engines (`-me`), and with all of the GPU's media engines (`+me.all`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileKind {
    Plain,
    MediaExtensions,
    DoubleMemory,
    Graphics,
    NoMedia,
    AllMedia,
}

impl ProfileKind {
    /// Whether an instance of this kind takes the GPU's one set of media extensions, so
    /// that no second such instance fits beside it. Documented for `+me` (one per GPU);
    /// assumed for `+me.all`, which takes every media engine.
    pub const fn claims_media(self) -> bool {
        matches!(self, ProfileKind::MediaExtensions | ProfileKind::AllMedia)
    }
}

/// An NVIDIA driver version, `R525.85.12`, `525.85.12` or `575.64`, compared component by
/// component. A `-suffix` (as the simulator's `550.54.15-sim`) is ignored.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DriverVersion(Vec<u32>);

impl DriverVersion {
    /// Parses a version; `None` for text that has no leading number.
    pub fn parse(text: &str) -> Option<DriverVersion> {
        let t = text.trim();
        let t = t
            .strip_prefix('R')
            .or_else(|| t.strip_prefix('r'))
            .unwrap_or(t);
        let t = t.split(['-', ' ']).next().unwrap_or("");
        let parts: Option<Vec<u32>> = t.split('.').map(|p| p.parse().ok()).collect();
        parts.filter(|p| !p.is_empty()).map(DriverVersion)
    }
    /// Whether this version is at least `floor` (a catalog string such as `R525.85.12`;
    /// an unparsable floor never refuses).
    pub fn at_least(&self, floor: &str) -> bool {
        DriverVersion::parse(floor).is_none_or(|f| *self >= f)
    }
}

impl fmt::Display for DriverVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|p| p.to_string()).collect();
        f.write_str(&parts.join("."))
    }
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
    /// Memory slices (a fraction of [`GpuModel::memory_slices`]).
    pub memory_slices: u8,
    /// Placement size in the model's NVML placement units (see
    /// [`GpuModel::placement_units`]): the memory slices on A100..B200, three units per
    /// memory slice on the RTX PRO 6000.
    pub placement_size: u8,
    /// Memory on the newest driver the catalog knows; see [`GiProfile::memory_on`].
    pub memory_mib: Fact<u32>,
    /// Where the size moved between drivers: `(first driver, MiB)`, oldest first, each
    /// size holding until the next entry's driver; the last equals `memory_mib`. Empty
    /// when no capture shows a change.
    pub memory_history: &'static [(&'static str, u32)],
    /// The first driver that offers this profile, where it is later than the model's.
    pub min_driver: Option<&'static str>,
    /// Other names drivers have printed for this profile (GB200's plain 1g is `1g.23gb` on
    /// some SKUs and drivers, `1g.24gb` on others).
    pub aliases: &'static [&'static str],
    pub sm_count: Fact<u32>,
    /// `instanceCount`: how many of this profile fit on an empty GPU.
    pub max_instances: u8,
    /// Valid placement starts, in the model's placement units.
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
        let size = (1u32 << self.placement_size.min(16)) - 1;
        size.checked_shl(u32::from(start)).unwrap_or(0) as u16
    }

    /// This profile, first offered by driver `floor` (later than its model's).
    pub const fn since(self, floor: &'static str) -> GiProfile {
        GiProfile {
            min_driver: Some(floor),
            ..self
        }
    }

    /// This profile, with the sizes its memory had per driver (see
    /// [`GiProfile::memory_history`]).
    pub const fn memory_by_driver(self, history: &'static [(&'static str, u32)]) -> GiProfile {
        GiProfile {
            memory_history: history,
            ..self
        }
    }

    /// This profile, also known by `aliases`.
    pub const fn also_named(self, aliases: &'static [&'static str]) -> GiProfile {
        GiProfile { aliases, ..self }
    }

    /// Whether `name` (a GI name, lower case) names this profile.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }

    /// The memory this profile has on `driver`: the history's size for the newest entry
    /// the driver has reached (the first entry for an older driver), else `memory_mib`.
    pub fn memory_on(&self, driver: &DriverVersion) -> Fact<u32> {
        let Some(first) = self.memory_history.first() else {
            return self.memory_mib;
        };
        let (_, mib) = self
            .memory_history
            .iter()
            .rev()
            .find(|(from, _)| driver.at_least(from))
            .unwrap_or(first);
        Fact {
            value: Some(*mib),
            source: self.memory_mib.source,
        }
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
    /// NVML placement units across the GPU: equal to `memory_slices` on A30..B200, 12 on
    /// the RTX PRO 6000, whose `-lgipp` places a 1-slice instance in 3 units.
    pub placement_units: u8,
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
        let Some((idx, gi)) = self.indexed_profiles().find(|(_, p)| p.is_named(&gi_name)) else {
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

    /// The first driver that offers profile `idx` on this model.
    pub fn profile_floor(&self, idx: ProfileIdx) -> &'static str {
        self.profile(idx).min_driver.unwrap_or(self.min_driver)
    }

    /// The first driver that allows these GPU instances together on one GPU, where later
    /// than each profile's own: a 4-slice beside a 3-slice instance (`4g@0 + 3g@4`) from
    /// R510 (MIG guide). `None`: any driver that offers the profiles.
    pub fn combination_floor(&self, profiles: &[ProfileIdx]) -> Option<&'static str> {
        let has = |c: u8| {
            profiles
                .iter()
                .any(|p| self.profile(*p).compute_slices == c)
        };
        (self.compute_slices == 7 && has(4) && has(3)).then_some("R510")
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

static MODELS: [&GpuModel; 17] = [
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
    &blackwell::GB200_186GB,
    &blackwell::B300_288GB,
    &blackwell::GB300_288GB,
    &blackwell::RTX_PRO_6000_96GB,
    &blackwell::RTX_PRO_5000_48GB,
    &blackwell::RTX_PRO_4500_32GB,
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
        _ => panic!("not a profile of a 7-slice GPU"),
    };
    GiProfile {
        name,
        kind,
        nvml,
        id,
        compute_slices: compute,
        memory_slices: memory,
        placement_size: memory,
        memory_mib,
        memory_history: &[],
        min_driver: None,
        aliases: &[],
        sm_count,
        max_instances: max,
        starts,
        starts_source,
        cis: ci_offers(compute),
    }
}

/// The seven profiles of a 7-slice GPU known by name only (no `-lgip` capture): in the
/// order 1g, 1g+me, double-memory 1g, 2g, 3g, 4g, 7g; driver ids assumed as on every
/// captured 7-slice GPU (19, 20, 15, 14, 9, 5, 0), placements assumed from H100, sizes and
/// SMs unknown.
const fn unmeasured_seven_slice(names: [&'static str; 7]) -> [GiProfile; 7] {
    const SHAPE: [(GiConst, u32); 7] = [
        (GiConst::Slice1, 19),
        (GiConst::Slice1Rev1, 20),
        (GiConst::Slice1Rev2, 15),
        (GiConst::Slice2, 14),
        (GiConst::Slice3, 9),
        (GiConst::Slice4, 5),
        (GiConst::Slice7, 0),
    ];
    let mut out = [seven_slice(
        "",
        GiConst::Slice7,
        Fact::unknown(),
        Fact::unknown(),
        Fact::unknown(),
        Source::Assumed,
    ); 7];
    let mut i = 0;
    while i < 7 {
        out[i] = seven_slice(
            names[i],
            SHAPE[i].0,
            Fact::assumed(SHAPE[i].1),
            Fact::unknown(),
            Fact::unknown(),
            Source::Assumed,
        );
        i += 1;
    }
    out
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
        placement_size: compute,
        memory_mib,
        memory_history: &[],
        min_driver: None,
        aliases: &[],
        sm_count,
        max_instances: max,
        starts,
        starts_source: Source::Measured,
        cis: ci_offers(compute),
    }
}

/// Builds a profile of the RTX PRO Blackwell class: `slices` compute and memory slices
/// (4 on the RTX PRO 6000, 2 on the 5000 and 4500), three NVML placement units per slice
/// (the RTX PRO 6000's `-lgipp`: 1g at {0,3,6,9} size 3, 2g at {0,6} size 6, 4g at {0} size
/// 12), one instance per GPU of the kinds that take the media extensions, otherwise as many
/// as fit. `starts_source` says whether that shape was captured on the model.
const fn rtx_pro(
    slices: u8,
    name: &'static str,
    nvml: GiConst,
    id: Fact<u32>,
    memory_mib: Fact<u32>,
    sm_count: Fact<u32>,
    starts_source: Source,
) -> GiProfile {
    let compute = nvml.compute_slices();
    let kind = nvml.kind();
    let starts: &'static [u8] = match (slices, compute) {
        (4, 1) => &[0, 3, 6, 9],
        (4, 2) => &[0, 6],
        (2, 1) => &[0, 3],
        (4, 4) | (2, 2) => &[0],
        _ => panic!("not a profile of an RTX PRO GPU"),
    };
    let max = if kind.claims_media() {
        1
    } else {
        slices / compute
    };
    GiProfile {
        name,
        kind,
        nvml,
        id,
        compute_slices: compute,
        memory_slices: compute,
        placement_size: 3 * compute,
        memory_mib,
        memory_history: &[],
        min_driver: None,
        aliases: &[],
        sm_count,
        max_instances: max,
        starts,
        starts_source,
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
    fn names_resolve_per_model_without_assuming_a_kind() {
        // The same name, different kinds: GB300's plain 1g against H200's double-memory 1g.
        let gb300 = find_model("0x31C210DE").unwrap();
        let h200 = find_model("H200").unwrap();
        let a = gb300.resolve("1g.35gb").unwrap();
        let b = h200.resolve("1g.35gb").unwrap();
        assert_eq!(gb300.profile(a.gi).kind, ProfileKind::Plain);
        assert_eq!(gb300.profile(a.gi).nvml, GiConst::Slice1);
        assert_eq!(h200.profile(b.gi).kind, ProfileKind::DoubleMemory);
        // RTX PRO kinds come from the NVML constant, and their names resolve.
        let rtx = find_model("0x2BB510DE").unwrap();
        for (name, kind, value) in [
            ("1g.24gb+gfx", ProfileKind::Graphics, 0xA),
            ("2g.48gb-me", ProfileKind::NoMedia, 0xE),
            ("1g.24gb+me.all", ProfileKind::AllMedia, 0xF),
            ("4g.96gb+gfx", ProfileKind::Graphics, 0xC),
        ] {
            let r = rtx.resolve(name).unwrap();
            let p = rtx.profile(r.gi);
            assert_eq!((p.kind, p.nvml.value()), (kind, value), "{name}");
        }
        // GB200's plain 1g goes by two names.
        let gb200 = find_model("0x2941").unwrap();
        assert_eq!(
            gb200.resolve("1g.24gb").unwrap().gi,
            gb200.resolve("1g.23gb").unwrap().gi
        );
        assert_eq!(find_model("0x2339").unwrap().name, "H100-NVL-94GB");
        for id in [0x2bb1, 0x2bb4, 0x2bb3, 0x2c31, 0x2c3a, 0x3182] {
            assert!(model_by_pci(id).is_some(), "{id:#x}");
        }
    }

    #[test]
    fn every_nvml_constant_round_trips() {
        assert_eq!(GiConst::all().len(), 0x12);
        for c in GiConst::all() {
            assert_eq!(GiConst::from_value(c.value()), Some(*c));
            assert!(c.c_name().starts_with("NVML_GPU_INSTANCE_PROFILE_"));
        }
        let mut values: Vec<u32> = GiConst::all().iter().map(|c| c.value()).collect();
        values.sort_unstable();
        assert_eq!(values, (0..0x12).collect::<Vec<u32>>());
    }

    #[test]
    fn driver_versions_compare_by_number_and_pick_the_memory_of_their_time() {
        let v = |s: &str| DriverVersion::parse(s).unwrap();
        assert!(v("575.64") > v("575.57.08"));
        assert!(v("550.54.15-sim").at_least("R525"));
        assert!(!v("515.86.01").at_least("R525"));
        assert!(!v("R470").at_least("470.57.02"));
        assert_eq!(DriverVersion::parse("n/a"), None);
        let h100 = find_model("H100-80GB").unwrap();
        let p = h100.profile(h100.resolve("1g.10gb").unwrap().gi);
        assert_eq!(p.memory_on(&v("525.85.12")).value, Some(9856));
        assert_eq!(p.memory_on(&v("550.54.15")).value, Some(9984));
        assert_eq!(
            p.memory_on(&v("470.1")).value,
            Some(9856),
            "older: the first"
        );
        let a100 = find_model("A100-40GB").unwrap();
        let dm = a100.resolve("1g.10gb").unwrap().gi;
        assert_eq!(a100.profile_floor(dm), "R525");
        let plain = a100.resolve("1g.5gb").unwrap().gi;
        assert_eq!(a100.profile_floor(plain), "R450.80.02");
        let g4 = a100.resolve("4g.20gb").unwrap().gi;
        let g3 = a100.resolve("3g.20gb").unwrap().gi;
        let g2 = a100.resolve("2g.10gb").unwrap().gi;
        assert_eq!(a100.combination_floor(&[g4, g3]), Some("R510"));
        assert_eq!(a100.combination_floor(&[g4, g2, plain]), None);
    }

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
            ("NVIDIA GB200", "GB200-186GB"),
            ("NVIDIA B300 SXM6 AC", "B300-288GB"),
            (
                "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition",
                "RTX-PRO-6000-96GB",
            ),
            ("NVIDIA RTX PRO 4500 Blackwell", "RTX-PRO-4500-32GB"),
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
