//! The simulated driver's behaviour on a loaded `State`: MIG mode, GPU/compute instance
//! lifecycle, processes, reset and reboot. Pure functions of the state; no I/O.

use crate::codes::{
    Code, IN_USE, INSUFFICIENT_RESOURCES, INVALID_ARGUMENT, NOT_FOUND, NOT_SUPPORTED, SUCCESS,
    UNKNOWN,
};
use crate::hardware::{GiProfile, Model};
use crate::state::{ComputeInstance, Gpu, GpuInstance, Process, STATE_VERSION, State};
use crate::state::{random_hex, random_uuid};

/// PCI bus numbers handed out to the first GPUs (a DGX-like layout).
const BUS_NUMBERS: [u32; 8] = [0x07, 0x0F, 0x47, 0x4E, 0x87, 0x90, 0xB7, 0xBD];

/// Most GPUs a state may hold (handles encode the index in 8 bits).
pub const MAX_GPUS: usize = 64;

/// Parses `MODEL:COUNT[,MODEL:COUNT...]` (see `state::INIT_ENV`).
pub fn parse_init_spec(text: &str) -> Result<Vec<(&'static Model, u32)>, String> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (m, n) = part.trim().split_once(':').unwrap_or((part.trim(), "1"));
            let model = Model::by_key(m).ok_or_else(|| format!("unknown model {m:?}"))?;
            let count = n
                .parse::<u32>()
                .map_err(|_| format!("bad GPU count {n:?} for {m}"))?;
            Ok((model, count))
        })
        .collect()
}

/// Builds a fresh host with `count` GPUs of each model, in order.
pub fn new_state(spec: &[(&'static Model, u32)]) -> Result<State, String> {
    let total: u64 = spec.iter().map(|(_, n)| u64::from(*n)).sum();
    if total == 0 {
        return Err("at least one GPU is required".into());
    }
    if total > MAX_GPUS as u64 {
        return Err(format!(
            "at most {MAX_GPUS} GPUs are supported, got {total}"
        ));
    }
    let mut used_bus = Vec::new();
    let mut gpus = Vec::new();
    for (model, n) in spec {
        for _ in 0..*n {
            let i = gpus.len();
            let bus = match BUS_NUMBERS.get(i) {
                Some(b) => *b,
                None => (0x10..0x100u32)
                    .find(|b| !used_bus.contains(b))
                    .ok_or_else(|| "ran out of PCI bus numbers".to_string())?,
            };
            used_bus.push(bus);
            gpus.push(Gpu {
                index: u32::try_from(i).map_err(|e| e.to_string())?,
                model: model.key.to_string(),
                uuid: random_uuid("GPU"),
                pci_bus_id: format!("00000000:{bus:02X}:00.0"),
                mig_mode_current: 0,
                mig_mode_pending: 0,
                gpu_instances: Vec::new(),
                processes: Vec::new(),
            });
        }
    }
    Ok(State {
        version: STATE_VERSION,
        boot_id: random_hex(16),
        gpus,
        injections: Vec::new(),
        driver_version: None,
    })
}

/// Parses a PCI bus id in any of NVML's spellings (`00000000:07:00.0`, `0000:07:00.0`,
/// `07:00.0`) into (domain, bus, device, function).
pub fn parse_bus_id(s: &str) -> Option<(u32, u32, u32, u32)> {
    let s = s.trim();
    let (rest, func) = s.rsplit_once('.')?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, dev) = match parts.as_slice() {
        [d, b, v] => (*d, *b, *v),
        [b, v] => ("0", *b, *v),
        _ => return None,
    };
    let h = |x: &str| u32::from_str_radix(x, 16).ok();
    Some((h(domain)?, h(bus)?, h(dev)?, h(func)?))
}

impl State {
    /// GPU by NVML index.
    pub fn gpu(&self, index: u32) -> Option<&Gpu> {
        self.gpus.get(usize::try_from(index).ok()?)
    }

    /// Mutable GPU by NVML index.
    pub fn gpu_mut(&mut self, index: u32) -> Option<&mut Gpu> {
        self.gpus.get_mut(usize::try_from(index).ok()?)
    }

    /// GPU index by PCI bus id (any spelling `parse_bus_id` accepts).
    pub fn gpu_by_bus_id(&self, bus_id: &str) -> Option<u32> {
        let want = parse_bus_id(bus_id)?;
        self.gpus
            .iter()
            .find(|g| parse_bus_id(&g.pci_bus_id) == Some(want))
            .map(|g| g.index)
    }

    /// Simulated host reboot: new boot id; processes and instances gone; Ampere's pending
    /// mode becomes current (unless `pending_stays`, a fault), Hopper/Blackwell lose MIG
    /// mode.
    pub fn reboot(&mut self, pending_stays: bool) {
        self.boot_id = random_hex(16);
        for g in &mut self.gpus {
            g.processes.clear();
            g.gpu_instances.clear();
            let keeps = g
                .model()
                .map(|m| m.generation.mode_survives_reboot())
                .unwrap_or(false);
            if keeps {
                if !pending_stays {
                    g.mig_mode_current = g.mig_mode_pending;
                }
            } else {
                g.mig_mode_current = 0;
                g.mig_mode_pending = 0;
            }
        }
    }

    /// Adds a process; it must not already exist, and its GI/CI must exist.
    pub fn add_process(
        &mut self,
        gpu: u32,
        place: Option<(u32, u32)>,
        pid: u32,
        mem_mib: u64,
    ) -> Result<(), String> {
        if let Some(g) = self
            .gpus
            .iter()
            .find(|g| g.processes.iter().any(|p| p.pid == pid))
        {
            return Err(format!("pid {pid} is already running on GPU {}", g.index));
        }
        let g = self
            .gpu_mut(gpu)
            .ok_or_else(|| format!("no GPU with index {gpu}"))?;
        if let Some((gi, ci)) = place {
            let inst = g
                .gi(gi)
                .ok_or_else(|| format!("GPU {gpu} has no GPU instance {gi}"))?;
            if inst.ci(ci).is_none() {
                return Err(format!(
                    "GPU {gpu} GPU instance {gi} has no compute instance {ci}"
                ));
            }
        }
        g.processes.push(Process {
            pid,
            used_memory_mib: mem_mib,
            live: false,
            gpu_instance_id: place.map(|p| p.0),
            compute_instance_id: place.map(|p| p.1),
        });
        Ok(())
    }

    /// Removes a process by pid.
    pub fn remove_process(&mut self, pid: u32) -> Result<(), String> {
        for g in &mut self.gpus {
            if let Some(pos) = g.processes.iter().position(|p| p.pid == pid) {
                g.processes.remove(pos);
                return Ok(());
            }
        }
        Err(format!("no process with pid {pid}"))
    }
}

impl GpuInstance {
    /// CI by id.
    pub fn ci(&self, id: u32) -> Option<&ComputeInstance> {
        self.compute_instances.iter().find(|c| c.id == id)
    }
}

/// A `(gi_id, ci_id)` pair naming one MIG device.
pub type MigDevice = (u32, u32);

impl Gpu {
    /// The hardware model; `UNKNOWN` for an unknown key in a hand-edited state.
    pub fn model(&self) -> Result<&'static Model, Code> {
        Model::by_key(&self.model).ok_or(UNKNOWN)
    }

    /// The model, requiring MIG support (`NOT_SUPPORTED` otherwise).
    pub fn mig_model(&self) -> Result<&'static Model, Code> {
        let m = self.model()?;
        if m.mig_capable() {
            Ok(m)
        } else {
            Err(NOT_SUPPORTED)
        }
    }

    /// The model, requiring MIG to be currently enabled (`NOT_SUPPORTED` otherwise).
    pub fn mig_enabled_model(&self) -> Result<&'static Model, Code> {
        let m = self.mig_model()?;
        if self.mig_mode_current == 1 {
            Ok(m)
        } else {
            Err(NOT_SUPPORTED)
        }
    }

    /// GI by id.
    pub fn gi(&self, id: u32) -> Option<&GpuInstance> {
        self.gpu_instances.iter().find(|g| g.id == id)
    }

    fn gi_mut(&mut self, id: u32) -> Option<&mut GpuInstance> {
        self.gpu_instances.iter_mut().find(|g| g.id == id)
    }

    /// The profile of an existing GI.
    pub fn gi_profile(&self, gi: &GpuInstance) -> Result<&'static GiProfile, Code> {
        self.model()?.profile_by_id(gi.profile_id).ok_or(UNKNOWN)
    }

    /// Whether a MIG device (GI, CI) currently exists (MIG enabled, GI and CI present).
    pub fn mig_device_exists(&self, gi: u32, ci: u32) -> bool {
        self.mig_mode_current == 1 && self.gi(gi).and_then(|g| g.ci(ci)).is_some()
    }

    /// All MIG devices ordered by GI id then CI id.
    pub fn mig_devices(&self) -> Vec<MigDevice> {
        if self.mig_mode_current != 1 {
            return Vec::new();
        }
        let mut out: Vec<MigDevice> = self
            .gpu_instances
            .iter()
            .flat_map(|g| g.compute_instances.iter().map(move |c| (g.id, c.id)))
            .collect();
        out.sort_unstable();
        out
    }

    /// Whether the placement `start` of `profile` could be created now; the error is the
    /// NVML code creation would return.
    fn check_gi(&self, model: &Model, profile: &GiProfile, start: u32) -> Result<(), Code> {
        if !profile.starts.contains(&start) {
            return Err(INVALID_ARGUMENT);
        }
        let mut same = 0;
        let mut slices = 0;
        for gi in &self.gpu_instances {
            let p = self.gi_profile(gi)?;
            if p.id == profile.id {
                same += 1;
            }
            if profile.media_extensions && p.media_extensions {
                return Err(INSUFFICIENT_RESOURCES);
            }
            slices += p.slices;
            let overlap = start < gi.start + gi.size && gi.start < start + profile.mem_slices;
            if overlap {
                return Err(INSUFFICIENT_RESOURCES);
            }
        }
        if same >= profile.instance_count || slices + profile.slices > model.compute_slices {
            return Err(INSUFFICIENT_RESOURCES);
        }
        Ok(())
    }

    /// Creates a GI of driver profile id `profile_id`, at `placement` (start, size) or, when
    /// `None`, at the highest free valid start. Returns the new GI id.
    pub fn create_gi(
        &mut self,
        profile_id: u32,
        placement: Option<(u32, u32)>,
    ) -> Result<u32, Code> {
        let model = self.mig_enabled_model()?;
        let profile = model.profile_by_id(profile_id).ok_or(INVALID_ARGUMENT)?;
        let start = match placement {
            Some((start, size)) => {
                if size != profile.mem_slices {
                    return Err(INVALID_ARGUMENT);
                }
                self.check_gi(model, profile, start)?;
                start
            }
            None => {
                let mut chosen = None;
                let mut last_err = INSUFFICIENT_RESOURCES;
                for s in profile.starts.iter().rev() {
                    match self.check_gi(model, profile, *s) {
                        Ok(()) => {
                            chosen = Some(*s);
                            break;
                        }
                        Err(e) => last_err = e,
                    }
                }
                chosen.ok_or(last_err)?
            }
        };
        let id = (1..)
            .find(|i| self.gi(*i).is_none())
            .ok_or(INSUFFICIENT_RESOURCES)?;
        self.gpu_instances.push(GpuInstance {
            id,
            profile_id,
            start,
            size: profile.mem_slices,
            compute_instances: Vec::new(),
        });
        Ok(id)
    }

    /// How many more GIs of `profile_id` could be created now.
    pub fn gi_remaining_capacity(&self, profile_id: u32) -> Result<u32, Code> {
        let model = self.mig_enabled_model()?;
        model.profile_by_id(profile_id).ok_or(INVALID_ARGUMENT)?;
        let mut scratch = self.clone();
        let mut n = 0;
        while scratch.create_gi(profile_id, None).is_ok() {
            n += 1;
        }
        Ok(n)
    }

    fn has_processes_on(&self, gi: u32, ci: Option<u32>) -> bool {
        self.processes
            .iter()
            .any(|p| p.gpu_instance_id == Some(gi) && (ci.is_none() || p.compute_instance_id == ci))
    }

    /// Destroys a GI: `IN_USE` while it has CIs or processes.
    pub fn destroy_gi(&mut self, gi: u32) -> Result<(), Code> {
        self.mig_enabled_model()?;
        let inst = self.gi(gi).ok_or(NOT_FOUND)?;
        if !inst.compute_instances.is_empty() || self.has_processes_on(gi, None) {
            return Err(IN_USE);
        }
        self.gpu_instances.retain(|g| g.id != gi);
        Ok(())
    }

    /// The CI placement a new CI of `slices` would get in `gi` (highest free aligned start).
    fn free_ci_start(&self, gi: &GpuInstance, profile: &GiProfile, slices: u32) -> Option<u32> {
        profile.ci_starts(slices).into_iter().rev().find(|s| {
            gi.compute_instances
                .iter()
                .all(|c| !(*s < c.start + c.size && c.start < s + slices))
        })
    }

    /// Checks that a CI of `ci_profile` could be created in `gi_id`, returning its start.
    fn check_ci(&self, gi_id: u32, ci_profile: u32) -> Result<u32, Code> {
        self.mig_enabled_model()?;
        let gi = self.gi(gi_id).ok_or(NOT_FOUND)?;
        let gp = self.gi_profile(gi)?;
        let cp = gp.ci_profile(ci_profile).ok_or(INVALID_ARGUMENT)?;
        let same = gi
            .compute_instances
            .iter()
            .filter(|c| c.profile_id == ci_profile)
            .count();
        if same >= cp.instance_count as usize {
            return Err(INSUFFICIENT_RESOURCES);
        }
        self.free_ci_start(gi, gp, cp.slices)
            .ok_or(INSUFFICIENT_RESOURCES)
    }

    /// Creates a CI of CI profile id `ci_profile` in GI `gi_id`; returns the new CI id.
    pub fn create_ci(&mut self, gi_id: u32, ci_profile: u32) -> Result<u32, Code> {
        let start = self.check_ci(gi_id, ci_profile)?;
        let gi = self.gi_mut(gi_id).ok_or(NOT_FOUND)?;
        let id = (0..)
            .find(|i| gi.ci(*i).is_none())
            .ok_or(INSUFFICIENT_RESOURCES)?;
        let slices = [1, 2, 3, 4, 7]
            .get(ci_profile as usize)
            .copied()
            .ok_or(INVALID_ARGUMENT)?;
        gi.compute_instances.push(ComputeInstance {
            id,
            profile_id: ci_profile,
            start,
            size: slices,
            uuid: random_uuid("MIG"),
        });
        Ok(id)
    }

    /// How many more CIs of `ci_profile` could be created in `gi_id`.
    pub fn ci_remaining_capacity(&self, gi_id: u32, ci_profile: u32) -> Result<u32, Code> {
        self.mig_enabled_model()?;
        let gi = self.gi(gi_id).ok_or(NOT_FOUND)?;
        self.gi_profile(gi)?
            .ci_profile(ci_profile)
            .ok_or(INVALID_ARGUMENT)?;
        let mut scratch = self.clone();
        let mut n = 0;
        while scratch.create_ci(gi_id, ci_profile).is_ok() {
            n += 1;
        }
        Ok(n)
    }

    /// Destroys a CI: `IN_USE` while processes run on it.
    pub fn destroy_ci(&mut self, gi_id: u32, ci_id: u32) -> Result<(), Code> {
        self.mig_enabled_model()?;
        if self.gi(gi_id).is_none_or(|g| g.ci(ci_id).is_none()) {
            return Err(NOT_FOUND);
        }
        if self.has_processes_on(gi_id, Some(ci_id)) {
            return Err(IN_USE);
        }
        let gi = self.gi_mut(gi_id).ok_or(NOT_FOUND)?;
        gi.compute_instances.retain(|c| c.id != ci_id);
        Ok(())
    }

    /// `nvmlDeviceSetMigMode`: returns the activation status on success.
    pub fn set_mig_mode(&mut self, mode: u32) -> Result<Code, Code> {
        let model = self.mig_model()?;
        if mode > 1 {
            return Err(INVALID_ARGUMENT);
        }
        if mode == 0 && !self.gpu_instances.is_empty() {
            return Err(IN_USE);
        }
        if model.generation.mode_change_needs_reset() {
            self.mig_mode_pending = mode;
            return Ok(SUCCESS);
        }
        self.mig_mode_pending = mode;
        if self.processes.is_empty() || self.mig_mode_current == mode {
            self.mig_mode_current = mode;
            Ok(SUCCESS)
        } else {
            Ok(IN_USE)
        }
    }

    /// GPU reset: refused (with the blocking pids) while processes run; otherwise the
    /// pending mode becomes current and all instances vanish.
    pub fn reset(&mut self) -> Result<(), Vec<u32>> {
        if !self.processes.is_empty() {
            return Err(self.processes.iter().map(|p| p.pid).collect());
        }
        self.mig_mode_current = self.mig_mode_pending;
        self.gpu_instances.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(model: &str) -> State {
        let mut s = new_state(&[(Model::by_key(model).unwrap(), 1)]).unwrap();
        s.gpus[0].mig_mode_current = 1;
        s.gpus[0].mig_mode_pending = 1;
        s
    }

    #[test]
    fn auto_placement_packs_from_top() {
        let mut s = one("A100-40GB");
        let g = &mut s.gpus[0];
        let a = g.create_gi(19, None).unwrap();
        let b = g.create_gi(14, None).unwrap();
        let c = g.create_gi(5, None).unwrap();
        let starts: Vec<u32> = [a, b, c].iter().map(|i| g.gi(*i).unwrap().start).collect();
        assert_eq!(starts, vec![6, 4, 0]);
        assert_eq!(g.create_gi(19, None), Err(INSUFFICIENT_RESOURCES));
    }

    #[test]
    fn seven_1g_then_full() {
        let mut s = one("H100-80GB");
        let g = &mut s.gpus[0];
        for _ in 0..7 {
            g.create_gi(19, None).unwrap();
        }
        assert_eq!(g.gi_remaining_capacity(19), Ok(0));
        assert_eq!(g.create_gi(19, None), Err(INSUFFICIENT_RESOURCES));
    }

    #[test]
    fn placement_errors() {
        let mut s = one("A100-40GB");
        let g = &mut s.gpus[0];
        assert_eq!(g.create_gi(9, Some((1, 4))), Err(INVALID_ARGUMENT));
        assert_eq!(g.create_gi(9, Some((0, 2))), Err(INVALID_ARGUMENT));
        assert_eq!(g.create_gi(9, Some((0, 4))), Ok(1));
        assert_eq!(g.create_gi(14, Some((2, 2))), Err(INSUFFICIENT_RESOURCES));
        assert_eq!(g.create_gi(20, Some((4, 1))), Ok(2));
        assert_eq!(g.create_gi(20, Some((5, 1))), Err(INSUFFICIENT_RESOURCES));
        assert_eq!(g.create_gi(12345, None), Err(INVALID_ARGUMENT));
        assert_eq!(g.gi_remaining_capacity(19), Ok(2));
        // 3g + 3g would be 6 compute slices + the +me 1g = 7: a second 3g does not fit in memory.
        assert_eq!(g.create_gi(9, None), Err(INSUFFICIENT_RESOURCES));
    }

    #[test]
    fn a30_one_me_per_gpu() {
        let mut s = one("A30-24GB");
        let g = &mut s.gpus[0];
        assert_eq!(g.create_gi(21, None), Ok(1));
        assert_eq!(g.gi(1).unwrap().start, 3);
        assert_eq!(g.create_gi(6, None), Err(INSUFFICIENT_RESOURCES));
        assert_eq!(g.create_gi(5, None), Ok(2));
    }

    #[test]
    fn ci_lifecycle_and_mode() {
        let mut s = one("H100-80GB");
        let g = &mut s.gpus[0];
        let gi = g.create_gi(9, None).unwrap();
        assert_eq!(g.ci_remaining_capacity(gi, 0), Ok(3));
        assert_eq!(g.create_ci(gi, 0), Ok(0));
        assert_eq!(g.create_ci(gi, 1), Ok(1));
        assert_eq!(g.create_ci(gi, 0), Err(INSUFFICIENT_RESOURCES));
        assert_eq!(g.mig_devices(), vec![(gi, 0), (gi, 1)]);
        assert_eq!(g.destroy_gi(gi), Err(IN_USE));
        assert_eq!(g.set_mig_mode(0), Err(IN_USE));
        s.add_process(0, Some((gi, 1)), 42, 100).unwrap();
        let g = &mut s.gpus[0];
        assert_eq!(g.destroy_ci(gi, 1), Err(IN_USE));
        assert_eq!(g.destroy_ci(gi, 0), Ok(()));
        assert_eq!(g.reset(), Err(vec![42]));
        s.remove_process(42).unwrap();
        let g = &mut s.gpus[0];
        assert_eq!(g.destroy_ci(gi, 1), Ok(()));
        assert_eq!(g.destroy_gi(gi), Ok(()));
        assert_eq!(g.set_mig_mode(0), Ok(SUCCESS));
        assert_eq!(g.mig_mode_current, 0);
        s.add_process(0, None, 7, 1).unwrap();
        let g = &mut s.gpus[0];
        assert_eq!(g.set_mig_mode(0), Ok(SUCCESS), "no change needed");
        assert_eq!(g.set_mig_mode(1), Ok(IN_USE));
        assert_eq!((g.mig_mode_current, g.mig_mode_pending), (0, 1));
        assert_eq!(g.reset(), Err(vec![7]));
    }

    #[test]
    fn bus_ids() {
        let s = new_state(&[(Model::by_key("L4").unwrap(), 10)]).unwrap();
        assert_eq!(s.gpus[0].pci_bus_id, "00000000:07:00.0");
        assert_eq!(s.gpu_by_bus_id("0000:0f:00.0"), Some(1));
        let mut ids: Vec<&str> = s.gpus.iter().map(|g| g.pci_bus_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 10);
    }
}
