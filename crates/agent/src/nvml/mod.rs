//! One GPU host as NVML sees it: loading the library, reading each GPU's identity, MIG
//! mode, the driver's own profile table, instances and processes, and carrying out planned
//! operations. Decisions are `migfleet-mig`'s; this module only reads and executes.

mod raw;

use crate::error::{AgentError, Result};
use migfleet_mig::catalog::{
    DriverVersion, Fact, GiConst, GiProfile, GpuModel, ProfileIdx, ResolvedProfile, Source,
    model_by_pci,
};
use migfleet_mig::plan::{CurrentCi, CurrentGi, GiRef, Op};
use migfleet_proto as proto;
use nvml_wrapper::Nvml;
use nvml_wrapper::device::Device;
use nvml_wrapper::error::NvmlError;
use std::collections::BTreeMap;
use std::ffi::OsStr;

/// NVML GI profile index constants the agent asks the driver about: every one of the
/// newest `nvml.h` (0x0..=0x11, up to `3_SLICE_GFX`); an older driver answers
/// INVALID_ARGUMENT for those it does not know, which reads as "not offered".
const GI_INDICES: std::ops::Range<u32> = 0..0x12;

/// A loaded NVML library.
pub struct Session {
    pub nvml: Nvml,
    pub path: String,
}

impl Session {
    pub fn load(path: &str) -> Result<Session> {
        let nvml = Nvml::builder()
            .lib_path(OsStr::new(path))
            .init()
            .map_err(|e| AgentError::nvml(format!("cannot load NVML from `{path}`: {e}")))?;
        Ok(Session {
            nvml,
            path: path.to_string(),
        })
    }

    pub fn count(&self) -> Result<u32> {
        self.nvml
            .device_count()
            .map_err(|e| AgentError::nvml(format!("device count: {e}")))
    }

    pub fn device(&self, index: u32) -> Result<Device<'_>> {
        self.nvml
            .device_by_index(index)
            .map_err(|e| AgentError::nvml(format!("no GPU {index}: {e}")).on_gpu(index))
    }

    /// Resolves a request's GPU list: all GPUs when empty, each index checked.
    pub fn indices(&self, gpus: &[u32]) -> Result<Vec<u32>> {
        let count = self.count()?;
        if gpus.is_empty() {
            return Ok((0..count).collect());
        }
        for g in gpus {
            if *g >= count {
                return Err(AgentError::invalid(format!(
                    "GPU {g} does not exist; this host has {count} (0..{})",
                    count.saturating_sub(1)
                )));
            }
        }
        Ok(gpus.to_vec())
    }
}

fn nv(index: u32, what: &str) -> impl Fn(NvmlError) -> AgentError + '_ {
    move |e| AgentError::nvml(format!("{what}: {e}")).on_gpu(index)
}

/// What MIG looks like on one GPU right now.
pub struct MigState {
    pub current: bool,
    pub pending: bool,
}

/// Reads the MIG mode; `None` when the GPU cannot do MIG.
pub fn mig_mode(dev: &Device, index: u32) -> Result<Option<MigState>> {
    match dev.mig_mode() {
        Ok(m) => Ok(Some(MigState {
            current: m.current == 1,
            pending: m.pending == 1,
        })),
        Err(NvmlError::NotSupported) => Ok(None),
        Err(e) => Err(nv(index, "MIG mode")(e)),
    }
}

/// The GPU's model as its driver describes it: the catalog model's names and provenance,
/// with ids, counts, placements, memory and SMs replaced by what the driver reports. The
/// host's table wins; differences are returned as text for `facts`.
pub struct HostModel {
    pub model: &'static GpuModel,
    /// The catalog's model for this GPU's PCI id, if it has one.
    pub catalog: Option<&'static GpuModel>,
    /// The driver version as NVML reports it.
    pub driver: String,
    pub profiles: Vec<proto::HostProfile>,
    pub mismatches: Vec<String>,
    /// Driver profile id per catalog profile index.
    pub ids: Vec<u32>,
}

impl HostModel {
    /// Refuses a set of GPU instances this GPU's driver does not allow together.
    pub fn check_combination(&self, profiles: &[ProfileIdx]) -> std::result::Result<(), String> {
        let Some(floor) = self.model.combination_floor(profiles) else {
            return Ok(());
        };
        match DriverVersion::parse(&self.driver) {
            Some(d) if !d.at_least(floor) => {
                let names: Vec<&str> = profiles
                    .iter()
                    .map(|p| self.model.profile(*p).name)
                    .collect();
                Err(format!(
                    "{} on one GPU need driver {floor} or later; this GPU's driver is {}",
                    names.join(" + "),
                    self.driver
                ))
            }
            _ => Ok(()),
        }
    }

    /// Resolves a profile name on this GPU's driver table. A name the driver does not
    /// offer but the catalog knows from a later driver is refused with the version needed.
    pub fn resolve(&self, name: &str) -> std::result::Result<ResolvedProfile, String> {
        self.model.resolve(name).map_err(|e| {
            let too_old = self.catalog.and_then(|cat| {
                let r = cat.resolve(name).ok()?;
                let floor = cat.profile_floor(r.gi);
                let driver = DriverVersion::parse(&self.driver)?;
                (!driver.at_least(floor)).then(|| {
                    format!(
                        "profile `{name}` on {} needs driver {floor} or later; this GPU's driver is {}",
                        cat.name, self.driver
                    )
                })
            });
            too_old.unwrap_or_else(|| e.to_string())
        })
    }
}

pub fn host_model(
    session: &Session,
    dev: &Device,
    index: u32,
    pci_device: u16,
) -> Result<HostModel> {
    let nvml = &session.nvml;
    let handle = device_handle(dev);
    let catalog = model_by_pci(pci_device);
    let driver = nvml
        .sys_driver_version()
        .map_err(|e| AgentError::nvml(format!("driver version: {e}")).on_gpu(index))?;
    let driver_version = DriverVersion::parse(&driver);
    let mut profiles = Vec::new();
    let mut built: Vec<GiProfile> = Vec::new();
    let mut mismatches = Vec::new();
    for c in GI_INDICES {
        let Some(info) = raw::gi_profile(nvml, handle, c).map_err(|e| e.on_gpu(index))? else {
            continue;
        };
        let Some(nvml_const) = GiConst::from_value(c) else {
            continue;
        };
        let mut place = raw::placements(nvml, handle, info.id).map_err(|e| e.on_gpu(index))?;
        place.sort();
        let size = place.first().map_or(0, |p| p.1);
        let starts: Vec<u8> = place.iter().map(|p| p.0).collect();
        let from_catalog = catalog.and_then(|m| m.profiles.iter().find(|p| p.nvml == nvml_const));
        let name = raw::gi_profile_name(nvml, handle, c)
            .or_else(|| from_catalog.map(|p| p.name.to_string()))
            .unwrap_or_else(|| {
                format!(
                    "{}g.{}gb",
                    info.sliceCount,
                    info.memorySizeMB.div_ceil(1024)
                )
            });
        let kind = nvml_const.kind();
        if let Some(cat) = from_catalog {
            compare(
                cat,
                driver_version.as_ref(),
                &info,
                size,
                &starts,
                &mut mismatches,
            );
        } else if catalog.is_some() {
            mismatches.push(format!(
                "{name}: the driver offers it, the catalog does not"
            ));
        }
        let hp = proto::HostProfile {
            name: name.clone(),
            nvml: c,
            id: info.id,
            compute_slices: info.sliceCount as u8,
            memory_slices: from_catalog.map_or(size, |c| c.memory_slices),
            placement_size: size,
            memory_mib: info.memorySizeMB,
            sm_count: info.multiprocessorCount,
            max_instances: info.instanceCount as u8,
            starts: starts.clone(),
            kind: serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
        };
        built.push(GiProfile {
            name: leak(name),
            kind,
            nvml: nvml_const,
            id: Fact::measured(info.id),
            compute_slices: hp.compute_slices,
            memory_slices: from_catalog.map_or(size, |c| c.memory_slices),
            placement_size: size,
            memory_mib: Fact::measured(info.memorySizeMB as u32),
            memory_history: &[],
            min_driver: from_catalog.and_then(|c| c.min_driver),
            aliases: from_catalog.map_or(&[], |c| c.aliases),
            sm_count: Fact::measured(info.multiprocessorCount),
            max_instances: hp.max_instances,
            starts: Box::leak(starts.into_boxed_slice()),
            starts_source: Source::Measured,
            // What the driver offers inside this GI is the catalog's table (a profile the
            // catalog lacks gets the table for its size).
            cis: from_catalog.map_or_else(
                || migfleet_mig::catalog::ci_offers(hp.compute_slices),
                |c| c.cis,
            ),
        });
        profiles.push(hp);
    }
    if let Some(cat) = catalog {
        for (i, p) in cat.indexed_profiles() {
            // A profile the driver is too old for is absent as the catalog expects.
            let too_old = driver_version
                .as_ref()
                .is_some_and(|d| !d.at_least(cat.profile_floor(i)));
            if !too_old && !built.iter().any(|b| b.nvml == p.nvml) {
                mismatches.push(format!(
                    "{}: in the catalog, the driver does not offer it",
                    p.name
                ));
            }
        }
    }
    let compute = built.iter().map(|p| p.compute_slices).max().unwrap_or(0);
    let units = built
        .iter()
        .flat_map(|p| p.starts.iter().map(move |s| s + p.placement_size))
        .max()
        .unwrap_or(0);
    let ids = built.iter().map(|p| p.id.value.unwrap_or(0)).collect();
    // One model per GPU and per agent run: leaking keeps the planner's `&'static` API and
    // costs a few hundred bytes.
    let model: &'static GpuModel = Box::leak(Box::new(GpuModel {
        name: catalog.map_or("unknown", |m| m.name),
        generation: catalog.map_or(migfleet_mig::catalog::Generation::Hopper, |m| m.generation),
        pci: catalog.map_or(&[], |m| m.pci),
        aliases: &[],
        compute_slices: compute,
        memory_slices: catalog.map_or(units, |m| m.memory_slices),
        placement_units: units,
        profiles: Box::leak(built.into_boxed_slice()),
        min_driver: catalog.map_or("", |m| m.min_driver),
    }));
    Ok(HostModel {
        model,
        catalog,
        driver,
        profiles,
        mismatches,
        ids,
    })
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn compare(
    cat: &GiProfile,
    driver: Option<&DriverVersion>,
    info: &nvml_wrapper_sys::bindings::nvmlGpuInstanceProfileInfo_t,
    size: u8,
    starts: &[u8],
    out: &mut Vec<String>,
) {
    let mut diff = |what: &str, driver: String, catalog: String| {
        if driver != catalog {
            out.push(format!(
                "{}: {what} is {driver} on the driver, {catalog} in the catalog",
                cat.name
            ));
        }
    };
    if let Some(id) = cat.id.value {
        diff("profile id", info.id.to_string(), id.to_string());
    }
    diff(
        "max instances",
        info.instanceCount.to_string(),
        cat.max_instances.to_string(),
    );
    diff(
        "compute slices",
        info.sliceCount.to_string(),
        cat.compute_slices.to_string(),
    );
    diff(
        "placement size",
        size.to_string(),
        cat.placement_size.to_string(),
    );
    diff(
        "placement starts",
        format!("{starts:?}"),
        format!("{:?}", cat.starts),
    );
    let memory = driver.map_or(cat.memory_mib, |d| cat.memory_on(d));
    if let Some(mib) = memory.value {
        // Sizes move by a few MiB between driver versions; only a real difference counts.
        let d = info.memorySizeMB as i64 - i64::from(mib);
        if d.abs() * 100 > i64::from(mib) {
            diff("memory MiB", info.memorySizeMB.to_string(), mib.to_string());
        }
    }
    if let Some(sm) = cat.sm_count.value {
        diff(
            "SM count",
            info.multiprocessorCount.to_string(),
            sm.to_string(),
        );
    }
}

fn device_handle(dev: &Device) -> nvml_wrapper_sys::bindings::nvmlDevice_t {
    #[allow(unsafe_code)]
    // SAFETY: the raw handle is used only while `dev` (and its NVML session) is alive.
    unsafe {
        dev.handle()
    }
}

/// One CI as read from NVML, with its MIG device UUID and processes.
pub struct CiRead {
    pub ci_id: u32,
    pub slices: u8,
    pub uuid: Option<String>,
    pub processes: Vec<proto::Process>,
}

/// One GI as read from NVML.
pub struct GiRead {
    pub gi_id: u32,
    pub profile: ProfileIdx,
    pub profile_id: u32,
    pub start: u8,
    pub size: u8,
    pub cis: Vec<CiRead>,
}

/// Reads the GPU's instances and their processes. Processes outside any instance are
/// returned separately.
pub fn instances(
    session: &Session,
    dev: &Device,
    index: u32,
    host: &HostModel,
) -> Result<(Vec<GiRead>, Vec<proto::Process>)> {
    let nvml = &session.nvml;
    let handle = device_handle(dev);
    let mut gis = Vec::new();
    for (i, p) in host.model.indexed_profiles() {
        let id = host.ids[i.0 as usize];
        for gi in raw::gpu_instances(nvml, handle, id, u32::from(p.max_instances))
            .map_err(|e| e.on_gpu(index))?
        {
            let (gi_id, _, start, size) = raw::gi_info(nvml, gi).map_err(|e| e.on_gpu(index))?;
            let mut cis = Vec::new();
            for slices in p.ci_sizes() {
                let ci_index = ci_index(slices);
                let Some(ci_prof) =
                    raw::ci_profile(nvml, gi, ci_index).map_err(|e| e.on_gpu(index))?
                else {
                    continue;
                };
                for ci in raw::compute_instances(nvml, gi, ci_prof.id, ci_prof.instanceCount)
                    .map_err(|e| e.on_gpu(index))?
                {
                    let (ci_id, _) = raw::ci_info(nvml, ci).map_err(|e| e.on_gpu(index))?;
                    cis.push(CiRead {
                        ci_id,
                        slices,
                        uuid: None,
                        processes: Vec::new(),
                    });
                }
            }
            cis.sort_by_key(|c| c.ci_id);
            gis.push(GiRead {
                gi_id,
                profile: i,
                profile_id: id,
                start,
                size,
                cis,
            });
        }
    }
    gis.sort_by_key(|g| (g.start, g.gi_id));

    // MIG device UUIDs: walk the MIG device handles and match them by (GI, CI) id.
    let max = dev.mig_device_count().unwrap_or(0);
    for k in 0..max {
        let Ok(mig) = dev.mig_device_by_index(k) else {
            continue;
        };
        let (gi_id, ci_id) =
            raw::mig_ids(nvml, device_handle(&mig)).map_err(|e| e.on_gpu(index))?;
        if let Some(ci) = find_ci(&mut gis, gi_id, ci_id) {
            ci.uuid = mig.uuid().ok();
        }
    }

    let mut loose = Vec::new();
    let procs = match dev.running_compute_processes() {
        Ok(p) => p,
        Err(NvmlError::NotSupported) => Vec::new(),
        Err(e) => return Err(nv(index, "running processes")(e)),
    };
    for p in procs {
        let used = match p.used_gpu_memory {
            nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => b / (1024 * 1024),
            nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => 0,
        };
        let proc_ = proto::Process {
            pid: p.pid,
            used_mib: used,
        };
        match (p.gpu_instance_id, p.compute_instance_id) {
            (Some(g), Some(c)) => match find_ci(&mut gis, g, c) {
                Some(ci) => ci.processes.push(proc_),
                None => loose.push(proc_),
            },
            _ => loose.push(proc_),
        }
    }
    Ok((gis, loose))
}

fn find_ci(gis: &mut [GiRead], gi_id: u32, ci_id: u32) -> Option<&mut CiRead> {
    gis.iter_mut()
        .find(|g| g.gi_id == gi_id)
        .and_then(|g| g.cis.iter_mut().find(|c| c.ci_id == ci_id))
}

/// NVML's CI profile index for a CI of `slices` compute slices.
fn ci_index(slices: u8) -> u32 {
    match slices {
        1 => 0,
        2 => 1,
        3 => 2,
        4 => 3,
        7 => 4,
        8 => 5,
        _ => 6,
    }
}

/// The planner's view of the instances read.
pub fn current(gis: &[GiRead]) -> Vec<CurrentGi> {
    gis.iter()
        .map(|g| CurrentGi {
            gi_id: g.gi_id,
            profile: g.profile,
            start: g.start,
            cis: g
                .cis
                .iter()
                .map(|c| CurrentCi {
                    ci_id: c.ci_id,
                    slices: c.slices,
                    in_use: !c.processes.is_empty(),
                })
                .collect(),
        })
        .collect()
}

/// Carries out one planned operation. `new_ids` maps the plan's new-GI numbers to the ids
/// the driver gave them.
pub fn execute(
    session: &Session,
    dev: &Device,
    host: &HostModel,
    op: &Op,
    new_ids: &mut BTreeMap<u32, u32>,
) -> Result<()> {
    let nvml = &session.nvml;
    let handle = device_handle(dev);
    match op {
        Op::DestroyCi { gi_id, ci_id, .. } => {
            let gi = raw::gi_by_id(nvml, handle, *gi_id)?;
            let ci = raw::ci_by_id(nvml, gi, *ci_id)?;
            raw::destroy_ci(nvml, ci)
        }
        Op::DestroyGi { gi_id, .. } => {
            let gi = raw::gi_by_id(nvml, handle, *gi_id)?;
            raw::destroy_gi(nvml, gi)
        }
        Op::CreateGi {
            new_gi,
            nvml: c,
            start,
            size,
            profile,
        } => {
            let idx = host.model.profile_by_const(*c).ok_or_else(|| {
                AgentError::invalid(format!("the driver has no profile {profile}"))
            })?;
            let id = host.ids[idx.0 as usize];
            let gi_id = raw::create_gi(nvml, handle, id, *start, *size)?;
            new_ids.insert(*new_gi, gi_id);
            Ok(())
        }
        Op::CreateCi {
            gi,
            slices,
            profile,
        } => {
            let gi_id = match gi {
                GiRef::Existing(id) => *id,
                GiRef::New(n) => *new_ids.get(n).ok_or_else(|| {
                    AgentError::invalid(format!("plan refers to GI #{n} before creating it"))
                })?,
            };
            let gi_handle = raw::gi_by_id(nvml, handle, gi_id)?;
            let ci_prof =
                raw::ci_profile(nvml, gi_handle, ci_index(*slices))?.ok_or_else(|| {
                    AgentError::invalid(format!(
                        "GI {gi_id} has no compute instance profile {profile}"
                    ))
                })?;
            raw::create_ci(nvml, gi_handle, ci_prof.id).map(|_| ())
        }
    }
}
