//! The host as Lua sees it (`run`, `when` and policies get it as `host`/`ctx`): its name,
//! its variables, whether this is a check run, and each GPU's facts in the shape
//! `lua/types/migfleet.lua` documents. Pure: facts in, JSON out.

use migfleet_mig::catalog::{GiConst, ProfileKind};
use migfleet_proto::{Facts, GpuFacts};
use serde_json::{Map, Value, json};

/// `{host, vars, check_mode, gpus = {...}, demand}` (`demand`: the host's share of the
/// pending pods' demand, once a `k8s.demand` task read it).
pub fn view(
    host: &str,
    vars: &Map<String, Value>,
    facts: &Facts,
    check_mode: bool,
    demand: Option<&Value>,
) -> Value {
    let gpus: Vec<Value> = facts.gpus.iter().map(gpu).collect();
    json!({
        "host": host,
        "vars": vars,
        "check_mode": check_mode,
        "driver_version": facts.driver_version,
        "gpus": gpus,
        "demand": demand,
    })
}

/// One GPU as policies see it.
pub fn gpu(g: &GpuFacts) -> Value {
    let (enabled, pending, instances, profiles) = match &g.mig {
        None => (false, false, &[][..], &[][..]),
        Some(m) => (m.current, m.pending, &m.instances[..], &m.profiles[..]),
    };
    // Plain profiles are NVML's plain n-slice constants (1_SLICE .. 6_SLICE).
    let plain = |p: &&migfleet_proto::HostProfile| {
        GiConst::from_value(p.nvml).is_some_and(|c| c.kind() == ProfileKind::Plain)
    };
    let mut by_slices = vec![Value::Null; 8];
    for p in profiles.iter().filter(plain) {
        if let Some(slot) = by_slices.get_mut(usize::from(p.compute_slices).saturating_sub(1)) {
            *slot = Value::String(p.name.clone());
        }
    }
    while by_slices.last().is_some_and(Value::is_null) {
        by_slices.pop();
    }
    let busy_pids: Vec<u32> = instances
        .iter()
        .flat_map(|i| i.cis.iter().flat_map(|c| c.processes.iter().map(|p| p.pid)))
        .collect();
    json!({
        "index": g.index,
        "name": g.name,
        "model": g.model,
        "uuid": g.uuid,
        "memory_mib": g.memory_mib,
        "mig_capable": g.mig.is_some(),
        "mig_enabled": enabled,
        "mig_pending": pending,
        "busy": !busy_pids.is_empty() || !g.processes.is_empty(),
        "instances": instances.iter().map(|i| {
            let pids: Vec<u32> = i.cis.iter().flat_map(|c| c.processes.iter().map(|p| p.pid)).collect();
            json!({"gi_id": i.gi_id, "profile": i.profile, "start": i.start, "busy": !pids.is_empty(), "pids": pids})
        }).collect::<Vec<_>>(),
        "profiles": profiles.iter().map(|p| json!({
            "name": p.name, "plain": plain(&p), "kind": p.kind,
            "compute_slices": p.compute_slices, "memory_slices": p.memory_slices,
            "placement_size": p.placement_size, "memory_mib": p.memory_mib,
            "max_instances": p.max_instances, "starts": p.starts,
        })).collect::<Vec<_>>(),
        "profile_by_slices": by_slices,
        "pids": g.processes.iter().map(|p| p.pid).collect::<Vec<_>>(),
    })
}
