//! Demand from pending pods: the pods the scheduler could not place (`Pending`, no node,
//! `PodScheduled=False` with reason `Unschedulable` — or no verdict yet —, not
//! preempting, not a DaemonSet's or a static pod) that ask for MIG devices — `nvidia.com/mig-<profile>` (the device
//! plugin's mixed strategy; `.me` stands for `+me`), or `nvidia.com/gpu` on nodes of the
//! single strategy, whose product label names their one profile (`<model>-MIG-<profile>`).
//! Which nodes a pod could land on follows its node selector and required node affinity
//! (so `nvidia.com/gpu.product` affinity is honoured); taints and tolerations are not
//! read.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, Pod};
use kube::Client;
use kube::api::{Api, ListParams};

use migfleet_proto::Facts;
use serde_json::{Value, json};

use super::api_error;

/// A pending pod's MIG ask.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingPod {
    pub namespace: String,
    pub name: String,
    /// MIG profile (`1g.10gb`, `1g.5gb+me`) → devices, from `nvidia.com/mig-*`.
    pub mig: BTreeMap<String, u32>,
    /// `nvidia.com/gpu` devices (served on single-strategy nodes).
    pub gpus: u32,
    node_selector: BTreeMap<String, String>,
    /// Required node affinity: any term, each all of its expressions.
    terms: Vec<Vec<NodeSelectorRequirement>>,
}

impl PendingPod {
    pub fn shown(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod may run on a node with these labels.
    pub fn fits(&self, labels: &BTreeMap<String, String>) -> bool {
        let selector = self
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        let affinity = self.terms.is_empty()
            || self
                .terms
                .iter()
                .any(|t| t.iter().all(|r| holds(r, labels)));
        selector && affinity
    }

    /// What the pod asks of a node with these labels: profile → devices. `nvidia.com/gpu`
    /// counts on single-strategy nodes as the node's one profile.
    pub fn asks_on(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, u32> {
        let mut out = self.mig.clone();
        if self.gpus > 0
            && labels.get("nvidia.com/mig.strategy").map(String::as_str) == Some("single")
            && let Some(profile) = labels
                .get("nvidia.com/gpu.product")
                .and_then(|p| p.rsplit_once("-MIG-"))
                .map(|(_, prof)| prof.to_string())
                .filter(|p| p != "INVALID")
        {
            *out.entry(profile).or_default() += self.gpus;
        }
        out
    }
}

fn holds(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    super::requirement_holds(
        &r.key,
        &r.operator,
        r.values.as_deref().unwrap_or(&[]),
        labels,
    )
}

/// `nvidia.com/mig-1g.5gb.me` → `1g.5gb+me`.
pub fn profile_of_resource(resource: &str) -> Option<String> {
    let p = resource.strip_prefix("nvidia.com/mig-")?;
    Some(match p.strip_suffix(".me") {
        Some(base) => format!("{base}+me"),
        None => p.to_string(),
    })
}

/// Devices a pod asks for, by resource: what its containers request (limits where no
/// request is given, as for extended resources they must be equal), or an init
/// container's, if larger.
fn requests(p: &Pod) -> BTreeMap<String, u32> {
    let Some(spec) = &p.spec else {
        return BTreeMap::new();
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| -> BTreeMap<String, u32> {
        let mut m = BTreeMap::new();
        if let Some(r) = &c.resources {
            for (k, q) in r.limits.iter().flatten().chain(r.requests.iter().flatten()) {
                if let Ok(n) = q.0.parse::<u32>() {
                    m.insert(k.clone(), n);
                }
            }
        }
        m
    };
    let mut total: BTreeMap<String, u32> = BTreeMap::new();
    for c in &spec.containers {
        for (k, n) in of(c) {
            *total.entry(k).or_default() += n;
        }
    }
    for c in spec.init_containers.iter().flatten() {
        for (k, n) in of(c) {
            let t = total.entry(k).or_default();
            *t = (*t).max(n);
        }
    }
    total
}

fn unschedulable(p: &Pod) -> bool {
    let Some(status) = &p.status else {
        return false;
    };
    let unplaced = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    // The scheduler's verdict when there is one: `PodScheduled=False` for want of
    // resources (not, say, `SchedulingGated`). A pending pod it has not looked at yet
    // counts too.
    let verdict = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled");
    let wanting = verdict.is_none_or(|c| {
        c.status == "False" && c.reason.as_deref().is_none_or(|r| r == "Unschedulable")
    });
    unplaced
        && status.phase.as_deref() == Some("Pending")
        && status
            .nominated_node_name
            .as_deref()
            .unwrap_or("")
            .is_empty()
        && wanting
}

/// The pending, unschedulable pods that ask for MIG devices or GPUs, in namespace and
/// name order (`namespaces` empty: all).
pub async fn pending(client: &Client, namespaces: &[String]) -> Result<Vec<PendingPod>, String> {
    let pods: Api<Pod> = Api::all(client.clone());
    let lp = ListParams::default().fields("spec.nodeName=,status.phase=Pending");
    let list = pods
        .list(&lp)
        .await
        .map_err(|e| api_error("listing pending pods", &e))?;
    let mut out: Vec<PendingPod> = list
        .items
        .into_iter()
        .filter(unschedulable)
        .filter(|p| {
            !p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "DaemonSet" || o.kind == "Node")
        })
        .filter(|p| {
            namespaces.is_empty()
                || namespaces.contains(p.metadata.namespace.as_ref().unwrap_or(&String::new()))
        })
        .filter_map(|p| {
            let req = requests(&p);
            let mig: BTreeMap<String, u32> = req
                .iter()
                .filter_map(|(k, n)| profile_of_resource(k).map(|prof| (prof, *n)))
                .filter(|(_, n)| *n > 0)
                .collect();
            let gpus = req.get("nvidia.com/gpu").copied().unwrap_or(0);
            if mig.is_empty() && gpus == 0 {
                return None;
            }
            let spec = p.spec.clone().unwrap_or_default();
            let terms = spec
                .affinity
                .and_then(|a| a.node_affinity)
                .and_then(|n| n.required_during_scheduling_ignored_during_execution)
                .map(|s| {
                    s.node_selector_terms
                        .into_iter()
                        .map(|t| t.match_expressions.unwrap_or_default())
                        .collect()
                })
                .unwrap_or_default();
            Some(PendingPod {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                mig,
                gpus,
                node_selector: spec.node_selector.unwrap_or_default(),
                terms,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// MIG devices the running pods on `node` hold, by profile: instances that must stay
/// whether or not a process runs on them now.
pub async fn held_on(client: &Client, node: &str) -> Result<BTreeMap<String, u32>, String> {
    let mut out = BTreeMap::new();
    for p in super::pods_on(client, node, None, None)
        .await?
        .iter()
        .filter(|p| {
            !p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
        })
    {
        for (k, n) in requests(p) {
            if let Some(prof) = profile_of_resource(&k) {
                *out.entry(prof).or_default() += n;
            }
        }
    }
    Ok(out)
}

/// One host of a demand plan: its node and its facts as they are now.
pub struct HostNow {
    pub host: String,
    pub node: String,
    pub facts: Facts,
}

/// A host's share of the demand: what its GPUs are to serve (profile → instances), the
/// pods that is for, and its idle instances that running pods hold (GPU index → starts).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Share {
    pub profiles: BTreeMap<String, u32>,
    pub pods: Vec<String>,
    pub keep: BTreeMap<u32, Vec<u8>>,
}

impl Share {
    /// As Lua sees it: `ctx.demand`.
    pub fn to_json(&self, unserved: &[String]) -> Value {
        json!({
            "profiles": self.profiles,
            "pods": self.pods,
            "keep": self.keep.iter().map(|(g, s)| (g.to_string(), json!(s))).collect::<serde_json::Map<_, _>>(),
            "unserved": unserved,
        })
    }
}

/// The demand plan of a set of hosts: each host's share (or why it has none), and the
/// pods no host can serve.
pub struct Plan {
    pub shares: BTreeMap<String, Result<Share, String>>,
    pub unserved: Vec<String>,
    pub exact: bool,
}

/// Reads the pending pods' demand and packs it onto the MIG-enabled GPUs of `hosts`
/// with [`migfleet_mig::demand::pack`]: the most demand served, no instance in use (by a
/// process, or held by a running pod) destroyed, the fewest idle ones destroyed.
pub async fn plan(
    client: &Client,
    hosts: &[HostNow],
    namespaces: &[String],
) -> Result<Plan, String> {
    use migfleet_mig::demand::{Ask, GpuNow, pack};
    let pods = pending(client, namespaces).await?;
    let mut shares: BTreeMap<String, Result<Share, String>> = BTreeMap::new();
    // (host index, labels) of hosts whose node is there; GPUs as (host index, GPU index).
    let mut nodes: Vec<(usize, BTreeMap<String, String>)> = Vec::new();
    let mut gpus: Vec<GpuNow> = Vec::new();
    let mut owner: Vec<(usize, u32)> = Vec::new();
    for (hi, h) in hosts.iter().enumerate() {
        let n = match super::node(client, &h.node).await {
            Ok(n) => n,
            Err(e) => {
                shares.insert(h.host.clone(), Err(e));
                continue;
            }
        };
        let held = held_on(client, &h.node).await?;
        let labels = n.metadata.labels.unwrap_or_default();
        // Idle instances running pods hold, chosen in GPU and placement order: as many
        // per profile as the pods hold beyond the instances busy with processes.
        let mut keep: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for (profile, n) in &held {
            let insts = h
                .facts
                .gpus
                .iter()
                .filter_map(|g| g.mig.as_ref().map(|m| (g.index, m)));
            let busy = insts
                .clone()
                .flat_map(|(_, m)| m.instances.iter())
                .filter(|i| &i.profile == profile && i.cis.iter().any(|c| !c.processes.is_empty()))
                .count() as u32;
            let mut more = n.saturating_sub(busy);
            for (gi, m) in insts {
                let mut idle: Vec<u8> = m
                    .instances
                    .iter()
                    .filter(|i| {
                        &i.profile == profile && i.cis.iter().all(|c| c.processes.is_empty())
                    })
                    .map(|i| i.start)
                    .collect();
                idle.sort_unstable();
                for s in idle {
                    if more == 0 {
                        break;
                    }
                    keep.entry(gi).or_default().push(s);
                    more -= 1;
                }
            }
        }
        for g in &h.facts.gpus {
            let Some(m) = g.mig.as_ref().filter(|m| m.current) else {
                continue;
            };
            let Some(model) = g
                .model
                .as_deref()
                .and_then(|n| migfleet_mig::find_model(n).ok())
            else {
                continue;
            };
            let kept = keep.get(&g.index).cloned().unwrap_or_default();
            let instances = m
                .instances
                .iter()
                .filter_map(|i| {
                    let p = model.resolve(&i.profile).ok()?.gi;
                    let busy = i.cis.iter().any(|c| !c.processes.is_empty());
                    Some((p, i.start, busy || kept.contains(&i.start)))
                })
                .collect();
            gpus.push(GpuNow { model, instances });
            owner.push((hi, g.index));
        }
        shares.insert(
            h.host.clone(),
            Ok(Share {
                keep,
                ..Share::default()
            }),
        );
        nodes.push((hi, labels));
    }
    // Asks: pods grouped by profile and the GPUs they may use.
    let mut asks: Vec<Ask> = Vec::new();
    let mut ask_pods: Vec<Vec<(String, u32)>> = Vec::new();
    let mut unserved_pods: Vec<String> = Vec::new();
    for pod in &pods {
        let mut by_profile: BTreeMap<String, (u32, Vec<bool>)> = BTreeMap::new();
        for (hi, labels) in &nodes {
            if !pod.fits(labels) {
                continue;
            }
            for (profile, n) in pod.asks_on(labels) {
                let e = by_profile
                    .entry(profile)
                    .or_insert_with(|| (n, vec![false; gpus.len()]));
                for (k, (h, _)) in owner.iter().enumerate() {
                    if h == hi {
                        e.1[k] = true;
                    }
                }
            }
        }
        if by_profile.is_empty() {
            unserved_pods.push(pod.shown());
        }
        for (profile, (n, eligible)) in by_profile {
            match asks
                .iter()
                .position(|a| a.profile == profile && a.eligible == eligible)
            {
                Some(i) => {
                    asks[i].count += n;
                    ask_pods[i].push((pod.shown(), n));
                }
                None => {
                    asks.push(Ask {
                        profile,
                        count: n,
                        eligible,
                    });
                    ask_pods.push(vec![(pod.shown(), n)]);
                }
            }
        }
    }
    let packed = pack(&gpus, &asks);
    // Hand each ask's pods out to the GPUs serving it, in order.
    let mut cursor: Vec<(usize, u32)> = vec![(0, 0); asks.len()];
    for (k, served) in packed.served.iter().enumerate() {
        let host = &hosts[owner[k].0].host;
        for (i, n) in served.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            if let Some(Ok(share)) = shares.get_mut(host) {
                *share.profiles.entry(asks[i].profile.clone()).or_default() += n;
                let mut left = *n;
                while left > 0 && cursor[i].0 < ask_pods[i].len() {
                    let (pod, want) = &ask_pods[i][cursor[i].0];
                    let take = left.min(want - cursor[i].1);
                    left -= take;
                    cursor[i].1 += take;
                    if !share.pods.contains(pod) {
                        share.pods.push(pod.clone());
                    }
                    if cursor[i].1 == *want {
                        cursor[i] = (cursor[i].0 + 1, 0);
                    }
                }
            }
        }
    }
    for (i, c) in cursor.iter().enumerate() {
        for (pod, _) in ask_pods[i].iter().skip(c.0 + usize::from(c.1 > 0)) {
            if !unserved_pods.contains(pod) {
                unserved_pods.push(pod.clone());
            }
        }
    }
    unserved_pods.sort();
    Ok(Plan {
        shares,
        unserved: unserved_pods,
        exact: packed.exact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_count_as_waiting_until_the_scheduler_places_or_gates_them() {
        let pod = |v: serde_json::Value| -> Pod { serde_json::from_value(v).unwrap() };
        let cond = |status: &str, reason: &str| json!({ "phase": "Pending", "conditions": [ { "type": "PodScheduled", "status": status, "reason": reason } ] });
        assert!(unschedulable(&pod(
            json!({ "spec": { "containers": [] }, "status": cond("False", "Unschedulable") })
        )));
        // Not looked at by the scheduler yet.
        assert!(unschedulable(&pod(
            json!({ "spec": { "containers": [] }, "status": { "phase": "Pending" } })
        )));
        assert!(!unschedulable(&pod(
            json!({ "spec": { "containers": [] }, "status": cond("False", "SchedulingGated") })
        )));
        assert!(!unschedulable(&pod(
            json!({ "spec": { "containers": [], "nodeName": "n1" }, "status": cond("False", "Unschedulable") })
        )));
        assert!(!unschedulable(&pod(
            json!({ "spec": { "containers": [] }, "status": { "phase": "Pending", "nominatedNodeName": "n2" } })
        )));
        assert!(!unschedulable(&pod(
            json!({ "spec": { "containers": [] }, "status": { "phase": "Running" } })
        )));
    }

    #[test]
    fn device_plugin_resource_names_become_profiles() {
        assert_eq!(
            profile_of_resource("nvidia.com/mig-1g.10gb").as_deref(),
            Some("1g.10gb")
        );
        assert_eq!(
            profile_of_resource("nvidia.com/mig-1g.5gb.me").as_deref(),
            Some("1g.5gb+me")
        );
        assert_eq!(profile_of_resource("nvidia.com/gpu"), None);
    }

    #[test]
    fn selectors_and_affinity_decide_where_a_pod_fits() {
        let labels: BTreeMap<String, String> = [
            (
                "nvidia.com/gpu.product",
                "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb",
            ),
            ("nvidia.com/mig.strategy", "single"),
            ("pool", "infer"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let req = |k: &str, op: &str, v: &[&str]| NodeSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: Some(v.iter().map(|s| s.to_string()).collect()),
        };
        let mut p = PendingPod {
            namespace: "ml".into(),
            name: "a".into(),
            mig: BTreeMap::new(),
            gpus: 2,
            node_selector: [("pool".to_string(), "infer".to_string())].into(),
            terms: vec![],
        };
        assert!(p.fits(&labels));
        assert_eq!(p.asks_on(&labels), [("1g.10gb".to_string(), 2)].into());
        p.terms = vec![
            vec![req("nvidia.com/gpu.product", "In", &["A100"])],
            vec![req("pool", "Exists", &[])],
        ];
        assert!(p.fits(&labels), "any term");
        p.terms = vec![vec![
            req("pool", "Exists", &[]),
            req(
                "nvidia.com/gpu.product",
                "NotIn",
                &["NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"],
            ),
        ]];
        assert!(!p.fits(&labels), "all expressions of a term");
        p.node_selector.insert("pool".into(), "train".into());
        p.terms.clear();
        assert!(!p.fits(&labels));
    }
}
