//! `facts`: every GPU's identity, memory, MIG mode, instances and processes, and the
//! driver's profile table next to the catalog's.

use crate::error::{AgentError, Result};
use crate::nvml::{self, Session};
use migfleet_mig::catalog::GiProfile;
use migfleet_proto as proto;

pub fn facts(session: &Session) -> Result<proto::Facts> {
    let driver_version = session
        .nvml
        .sys_driver_version()
        .map_err(|e| AgentError::nvml(format!("driver version: {e}")))?;
    let mut gpus = Vec::new();
    let mut catalog: Vec<proto::CatalogReport> = Vec::new();
    for index in 0..session.count()? {
        let (facts, differences) = gpu(session, index)?;
        if let (Some(model), false) = (&facts.model, differences.is_empty()) {
            // Same model, same driver, same differences: one report naming every GPU.
            match catalog
                .iter_mut()
                .find(|r| r.model == *model && r.differences == differences)
            {
                Some(r) => r.gpus.push(index),
                None => catalog.push(proto::CatalogReport {
                    model: model.clone(),
                    driver_version: driver_version.clone(),
                    gpus: vec![index],
                    differences,
                }),
            }
        }
        gpus.push(facts);
    }
    Ok(proto::Facts {
        driver_version,
        gpus,
        persisted: super::persist::read_target()?,
        catalog,
    })
}

/// One GPU's facts, and where its driver's profile table differs from the catalog.
pub fn gpu(session: &Session, index: u32) -> Result<(proto::GpuFacts, Vec<String>)> {
    let dev = session.device(index)?;
    let err = |what: &'static str| move |e| AgentError::nvml(format!("{what}: {e}")).on_gpu(index);
    let name = dev.name().map_err(err("name"))?;
    let uuid = dev.uuid().map_err(err("UUID"))?;
    let pci = dev.pci_info().map_err(err("PCI info"))?;
    let memory = dev.memory_info().map_err(err("memory info"))?;
    let device_id = (pci.pci_device_id >> 16) as u16;
    let sub = pci.pci_sub_system_id.unwrap_or(0);
    let pci_ids = proto::PciIds {
        bus_id: pci.bus_id.clone(),
        device_id,
        vendor_id: (pci.pci_device_id & 0xffff) as u16,
        subsystem_device_id: (sub >> 16) as u16,
        subsystem_vendor_id: (sub & 0xffff) as u16,
    };
    let model = migfleet_mig::model_by_pci(device_id).map(|m| m.name.to_string());
    let mut differences = Vec::new();
    let (mig, processes) = match nvml::mig_mode(&dev, index)? {
        None => {
            let procs = dev
                .running_compute_processes()
                .map_err(err("running processes"))?
                .into_iter()
                .map(|p| proto::Process {
                    pid: p.pid,
                    used_mib: match p.used_gpu_memory {
                        nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => b / (1024 * 1024),
                        nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => 0,
                    },
                })
                .collect();
            (None, procs)
        }
        Some(mode) => {
            let host = nvml::host_model(session, &dev, index, device_id)?;
            differences = host.mismatches.clone();
            let (gis, loose) = nvml::instances(session, &dev, index, &host)?;
            let instances = gis
                .iter()
                .map(|g| proto::GpuInstance {
                    gi_id: g.gi_id,
                    profile: host.model.profile(g.profile).name.to_string(),
                    profile_id: g.profile_id,
                    start: g.start,
                    size: g.size,
                    cis: g
                        .cis
                        .iter()
                        .map(|c| proto::ComputeInstance {
                            ci_id: c.ci_id,
                            profile: ci_name(host.model.profile(g.profile), c.slices),
                            slices: c.slices,
                            uuid: c.uuid.clone(),
                            processes: c.processes.clone(),
                        })
                        .collect(),
                })
                .collect();
            (
                Some(proto::MigFacts {
                    current: mode.current,
                    pending: mode.pending,
                    instances,
                    profiles: host.profiles,
                }),
                loose,
            )
        }
    };
    Ok((
        proto::GpuFacts {
            index,
            uuid,
            name,
            model,
            pci: pci_ids,
            memory_mib: memory.total / (1024 * 1024),
            mig,
            processes,
        },
        differences,
    ))
}

fn ci_name(p: &GiProfile, slices: u8) -> String {
    p.ci_profile(slices)
        .map_or_else(|| format!("{slices}c.{}", p.name), |c| c.name())
}
