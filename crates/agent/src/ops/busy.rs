//! Instances in use standing in a plan's way, as the protocol reports them: the GPU is
//! left as it is and the reply names each instance, its GI and its processes.

use crate::nvml::GiRead;
use migfleet_mig::plan::Blocker;
use migfleet_proto::{Blocked, BusyInstance};
use std::collections::BTreeMap;

/// PIDs on each GI, by GI id.
pub type GiPids = BTreeMap<u32, Vec<u32>>;

/// The PIDs running on each GI read from NVML.
pub fn gi_pids(gis: &[GiRead]) -> GiPids {
    gis.iter()
        .map(|gi| {
            let pids = gi
                .cis
                .iter()
                .flat_map(|c| c.processes.iter().map(|p| p.pid));
            (gi.gi_id, pids.collect())
        })
        .collect()
}

/// `what: 3g.40gb@4 (GI 2) has processes 4242[: why]; ...` and the instances.
pub fn blocked(what: &str, blockers: &[Blocker], pids: &GiPids, with_reason: bool) -> Blocked {
    let instances: Vec<BusyInstance> = blockers
        .iter()
        .map(|b| BusyInstance {
            gi_id: b.gi_id,
            label: b.instance.clone(),
            pids: pids.get(&b.gi_id).cloned().unwrap_or_default(),
        })
        .collect();
    let named: Vec<String> = blockers
        .iter()
        .zip(&instances)
        .map(|(b, i)| {
            let pids: Vec<String> = i.pids.iter().map(u32::to_string).collect();
            let pids = if pids.is_empty() {
                "(PIDs not visible)".to_string()
            } else {
                pids.join(", ")
            };
            let why = if with_reason {
                format!(": {}", b.reason)
            } else {
                String::new()
            };
            format!("{} (GI {}) has processes {pids}{why}", b.instance, b.gi_id)
        })
        .collect();
    Blocked {
        message: format!("{what}: {}", named.join("; ")),
        instances,
    }
}
