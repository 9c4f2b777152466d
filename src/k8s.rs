//! The Kubernetes leg, controller side, through kube-rs and the user's kubeconfig (or the
//! in-cluster config): one client per run, made when a task first needs it. A host's node
//! is its `k8s_node` variable, else its inventory name. What the `k8s.*` modules do to
//! nodes and pods lives here: cordon, label and annotate (merge patches, conflicts
//! retried), and drain through the Eviction API (DaemonSet and mirror pods left alone,
//! `429` from a PodDisruptionBudget retried until the timeout, then the blocking pods and
//! budgets named).

pub mod demand;
pub mod gpu_operator;

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::{Value, json};

/// `--kubeconfig` / `--context`.
#[derive(Clone, Debug, Default)]
pub struct K8sOptions {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

/// The run's Kubernetes client, made on first use (a run without `k8s.*` tasks never
/// reads a kubeconfig).
#[derive(Clone)]
pub struct K8s {
    opts: K8sOptions,
    client: Arc<tokio::sync::OnceCell<Result<Client, String>>>,
    /// ConfigMap keys read in this run, parsed, by (namespace, name, key): every host
    /// sees the same config.
    #[allow(clippy::type_complexity)]
    maps: Arc<
        tokio::sync::Mutex<
            HashMap<(String, String, String), Result<Arc<dyn Any + Send + Sync>, String>>,
        >,
    >,
}

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a conflicting patch is tried again.
const CONFLICT_RETRIES: u32 = 5;

impl K8s {
    pub fn new(opts: K8sOptions) -> K8s {
        K8s {
            opts,
            client: Arc::new(tokio::sync::OnceCell::new()),
            maps: Arc::new(tokio::sync::Mutex::new(HashMap::new())),
        }
    }

    /// A ConfigMap key, read and parsed by `parse` once per run.
    pub async fn config_map_cached<T: Send + Sync + 'static>(
        &self,
        client: &Client,
        namespace: &str,
        name: &str,
        key: &str,
        parse: impl FnOnce(&str) -> Result<Arc<T>, String>,
    ) -> Result<Arc<T>, String> {
        let mut maps = self.maps.lock().await;
        let slot = (namespace.to_string(), name.to_string(), key.to_string());
        if !maps.contains_key(&slot) {
            let read = config_map_key(client, namespace, name, key)
                .await
                .and_then(|text| parse(&text))
                .map(|v| v as Arc<dyn Any + Send + Sync>);
            maps.insert(slot.clone(), read);
        }
        match &maps[&slot] {
            Ok(v) => v
                .clone()
                .downcast::<T>()
                .map_err(|_| format!("ConfigMap {namespace}/{name}[{key}] read as another type")),
            Err(e) => Err(e.clone()),
        }
    }

    pub async fn client(&self) -> Result<Client, String> {
        self.client
            .get_or_init(|| async { make_client(&self.opts).await })
            .await
            .clone()
    }
}

async fn make_client(opts: &K8sOptions) -> Result<Client, String> {
    let kco = KubeConfigOptions {
        context: opts.context.clone(),
        ..KubeConfigOptions::default()
    };
    let mut config = match (&opts.kubeconfig, &opts.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &kco)
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&kco)
            .await
            .map_err(|e| format!("kubeconfig: {e}"))?,
        (None, None) => Config::infer().await.map_err(|e| {
            format!("no Kubernetes configuration (KUBECONFIG, ~/.kube/config or in-cluster): {e}")
        })?,
    };
    // migfleet decides how long a refused eviction is tried again (the task's timeout):
    // the client's own retries of 429 would hide it for tens of seconds per call.
    config.default_retry = false;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(REQUEST_TIMEOUT);
    config.write_timeout = Some(REQUEST_TIMEOUT);
    Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

/// The HTTP status of an API error, if it is one.
fn status(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn api_error(what: &str, e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => {
            format!("{what}: {} ({} {})", s.message, s.code, s.reason)
        }
        other => format!("{what}: {other}"),
    }
}

/// The node, or an error that says the host has none in the cluster.
pub async fn node(client: &Client, name: &str) -> Result<Node, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    match nodes.get_opt(name).await {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Err(format!(
            "node `{name}` is not in the cluster (set k8s_node for this host if its node has another name)"
        )),
        Err(e) => Err(api_error(&format!("reading node `{name}`"), &e)),
    }
}

/// A label of the node (`None`: the node has no such label).
pub async fn node_label(client: &Client, name: &str, key: &str) -> Result<Option<String>, String> {
    let n = node(client, name).await?;
    Ok(n.metadata.labels.and_then(|mut l| l.remove(key)))
}

/// One key of a ConfigMap (`namespace/name`), as text.
pub async fn config_map_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<String, String> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = match maps.get_opt(name).await {
        Ok(Some(cm)) => cm,
        Ok(None) => return Err(format!("ConfigMap {namespace}/{name} does not exist")),
        Err(e) => {
            return Err(api_error(
                &format!("reading ConfigMap {namespace}/{name}"),
                &e,
            ));
        }
    };
    match cm.data.and_then(|mut d| d.remove(key)) {
        Some(text) => Ok(text),
        None => Err(format!("ConfigMap {namespace}/{name} has no key `{key}`")),
    }
}

/// Marks the node (un)schedulable; whether that changed it.
pub async fn set_unschedulable(client: &Client, name: &str, on: bool) -> Result<bool, String> {
    let n = node(client, name).await?;
    let now = n.spec.and_then(|s| s.unschedulable).unwrap_or(false);
    if now == on {
        return Ok(false);
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "spec": { "unschedulable": on } });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| api_error(&format!("patching node `{name}`"), &e))?;
    Ok(true)
}

/// Which metadata map of the node a patch is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    Labels,
    Annotations,
}

impl Meta {
    fn field(self) -> &'static str {
        match self {
            Meta::Labels => "labels",
            Meta::Annotations => "annotations",
        }
    }
}

/// Sets `set` and removes `remove` in the node's labels or annotations with a merge
/// patch, only when something differs; conflicts are tried again. Returns the keys that
/// changed.
pub async fn patch_meta(
    client: &Client,
    name: &str,
    which: Meta,
    set: &BTreeMap<String, String>,
    remove: &[String],
) -> Result<Vec<String>, String> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut attempt = 0;
    loop {
        let n = node(client, name).await?;
        let have = match which {
            Meta::Labels => n.metadata.labels.unwrap_or_default(),
            Meta::Annotations => n.metadata.annotations.unwrap_or_default(),
        };
        let mut changes = serde_json::Map::new();
        let mut changed = Vec::new();
        for (k, v) in set {
            if have.get(k) != Some(v) {
                changes.insert(k.clone(), Value::String(v.clone()));
                changed.push(k.clone());
            }
        }
        for k in remove {
            if have.contains_key(k) {
                changes.insert(k.clone(), Value::Null);
                changed.push(k.clone());
            }
        }
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        // The resourceVersion makes a concurrent change a conflict, not a lost update.
        let patch = json!({ "metadata": {
            which.field(): changes,
            "resourceVersion": n.metadata.resource_version,
        }});
        match nodes
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(changed),
            Err(e) if status(&e) == Some(409) && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
            }
            Err(e) => return Err(api_error(&format!("patching node `{name}`"), &e)),
        }
    }
}

/// Which pods a drain evicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainPods {
    /// Pods that request or limit an `nvidia.com/` resource (GPUs, MIG devices).
    Gpu,
    All,
}

/// A pod a drain would evict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// No controller (ReplicaSet, StatefulSet, Job, ...) would start it again elsewhere.
    pub unmanaged: bool,
}

impl PodRef {
    pub fn shown(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn uses_nvidia(p: &Pod) -> bool {
    let Some(spec) = &p.spec else { return false };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter_map(|c| c.resources.as_ref())
        .flat_map(|r| {
            r.requests
                .iter()
                .flatten()
                .chain(r.limits.iter().flatten())
                .map(|(k, _)| k)
        })
        .any(|k| k.starts_with("nvidia.com/"))
}

fn skipped_by_drain(p: &Pod) -> bool {
    let daemonset = p
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DaemonSet");
    let mirror = p
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("kubernetes.io/config.mirror"));
    let finished = p
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|ph| ph == "Succeeded" || ph == "Failed");
    daemonset || mirror || finished
}

/// The pods on `node` a drain of `which` evicts: DaemonSet pods, mirror (static) pods and
/// finished pods are left alone, as `kubectl drain` leaves them.
pub async fn pods_to_evict(
    client: &Client,
    node: &str,
    which: DrainPods,
) -> Result<Vec<PodRef>, String> {
    Ok(pods_on(client, node, None, None)
        .await?
        .into_iter()
        .filter(|p| !skipped_by_drain(p))
        .filter(|p| which == DrainPods::All || uses_nvidia(p))
        .map(|p| PodRef {
            namespace: p.metadata.namespace.clone().unwrap_or_default(),
            name: p.metadata.name.clone().unwrap_or_default(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            labels: p.metadata.labels.clone().unwrap_or_default(),
            unmanaged: !p
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true)),
        })
        .collect())
}

/// The pods on `node` (of `namespace`, with labels matching `labels`, if given). The
/// node is asked of the server as a field selector and checked again here, so a server
/// that ignores the selector cannot make migfleet act on another node's pods.
pub async fn pods_on(
    client: &Client,
    node: &str,
    namespace: Option<&str>,
    labels: Option<&str>,
) -> Result<Vec<Pod>, String> {
    let pods: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut lp = ListParams::default().fields(&format!("spec.nodeName={node}"));
    if let Some(l) = labels {
        lp = lp.labels(l);
    }
    let list = pods
        .list(&lp)
        .await
        .map_err(|e| api_error(&format!("listing the pods of node `{node}`"), &e))?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
        .collect())
}

/// The budgets of `pod`'s namespace whose selector picks it.
async fn budgets_of(client: &Client, pod: &PodRef) -> Vec<String> {
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &pod.namespace);
    let Ok(list) = pdbs.list(&ListParams::default()).await else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|b| {
            b.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|sel| selects(sel, &pod.labels))
        })
        .map(|b| format!("{}/{}", pod.namespace, b.metadata.name.unwrap_or_default()))
        .collect()
}

/// One requirement of a label or node selector (`In`, `NotIn`, `Exists`,
/// `DoesNotExist`, and node selectors' `Gt` / `Lt` on integers) against labels.
pub fn requirement_holds(
    key: &str,
    operator: &str,
    values: &[String],
    labels: &BTreeMap<String, String>,
) -> bool {
    let have = labels.get(key);
    match operator {
        "In" => have.is_some_and(|v| values.contains(v)),
        "NotIn" => have.is_none_or(|v| !values.contains(v)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(h), Some(v)) = (
                have.and_then(|h| h.parse::<i64>().ok()),
                values.first().and_then(|v| v.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if operator == "Gt" { h > v } else { h < v }
        }
        _ => false,
    }
}

/// A label selector (matchLabels and matchExpressions) against labels.
fn selects(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &BTreeMap<String, String>,
) -> bool {
    let by_label = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expr = sel.match_expressions.iter().flatten().all(|e| {
        requirement_holds(
            &e.key,
            &e.operator,
            e.values.as_deref().unwrap_or(&[]),
            labels,
        )
    });
    by_label && by_expr
}

/// Asks the Eviction API to evict `pod`. The body is written here, not by
/// `Api::evict`, which sends its delete options under a key the API server ignores (the
/// grace period would be silently dropped); the pod's UID is a precondition, so a pod of
/// the same name started since is not evicted by mistake.
async fn evict(
    client: &Client,
    pod: &PodRef,
    grace_period: Option<u32>,
) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
    let mut delete_options = json!({ "preconditions": { "uid": pod.uid } });
    if let Some(g) = grace_period {
        delete_options["gracePeriodSeconds"] = json!(g);
    }
    let body = json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": { "name": pod.name, "namespace": pod.namespace },
        "deleteOptions": delete_options,
    });
    api.create_subresource::<_, Value>("eviction", &pod.name, &PostParams::default(), &body)
        .await
        .map(|_| ())
}

/// How a drain ended.
pub struct Drained {
    pub evicted: Vec<String>,
}

/// Evicts `pods` (each through the Eviction API; a `429` — a budget that allows no
/// disruption now — is tried again with backoff) and waits until they are gone, all within
/// `timeout`. The error names the pods still there and the budgets that hold them.
pub async fn evict_and_wait(
    client: &Client,
    pods: &[PodRef],
    grace_period: Option<u32>,
    timeout: Duration,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<Drained, String> {
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<&PodRef> = pods.iter().collect();
    let mut evicted = Vec::new();
    let mut backoff = Duration::from_millis(200);
    let mut blocked: Vec<&PodRef> = Vec::new();
    while !pending.is_empty() {
        blocked.clear();
        for p in std::mem::take(&mut pending) {
            match evict(client, p, grace_period).await {
                Ok(_) => evicted.push(p),
                Err(e) if status(&e) == Some(404) => {}
                Err(e) if status(&e) == Some(429) => blocked.push(p),
                Err(e) => return Err(api_error(&format!("evicting pod {}", p.shown()), &e)),
            }
        }
        if blocked.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let mut budgets = Vec::new();
            for p in &blocked {
                for b in budgets_of(client, p).await {
                    if !budgets.contains(&b) {
                        budgets.push(b);
                    }
                }
            }
            let names: Vec<String> = blocked.iter().map(|p| p.shown()).collect();
            return Err(format!(
                "eviction refused for {} s (429: a PodDisruptionBudget allows no disruption now): pods {}{}",
                timeout.as_secs(),
                names.join(", "),
                if budgets.is_empty() {
                    String::new()
                } else {
                    format!("; budgets {}", budgets.join(", "))
                }
            ));
        }
        progress(format!(
            "eviction of {} pod(s) refused by a disruption budget; trying again",
            blocked.len()
        ));
        tokio::time::sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
        pending = blocked.clone();
    }
    // Evicted pods take their grace period to go.
    loop {
        let mut left = Vec::new();
        for p in &evicted {
            let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace);
            match api.get_opt(&p.name).await {
                Ok(Some(now)) if now.metadata.uid.as_deref() == Some(p.uid.as_str()) => {
                    left.push(p.shown())
                }
                Ok(_) => {}
                Err(e) => return Err(api_error(&format!("reading pod {}", p.shown()), &e)),
            }
        }
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "evicted pods still there after {} s: {}",
                timeout.as_secs(),
                left.join(", ")
            ));
        }
        progress(format!("waiting for {} evicted pod(s) to go", left.len()));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Drained {
        evicted: evicted.iter().map(|p| p.shown()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    #[test]
    fn selectors_match_as_kubernetes_matches_them() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "infer".to_string())].into();
        let sel = |ml: &[(&str, &str)], ex: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: Some(
                ml.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            match_expressions: Some(ex),
        };
        let req = |k: &str, op: &str, v: &[&str]| LabelSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: Some(v.iter().map(|s| s.to_string()).collect()),
        };
        assert!(selects(&sel(&[("app", "infer")], vec![]), &labels));
        assert!(!selects(&sel(&[("app", "train")], vec![]), &labels));
        assert!(selects(
            &sel(&[], vec![req("app", "In", &["infer", "x"])]),
            &labels
        ));
        assert!(!selects(
            &sel(&[], vec![req("app", "NotIn", &["infer"])]),
            &labels
        ));
        assert!(selects(
            &sel(&[], vec![req("tier", "DoesNotExist", &[])]),
            &labels
        ));
        assert!(!selects(
            &sel(&[], vec![req("tier", "Exists", &[])]),
            &labels
        ));
    }
}
