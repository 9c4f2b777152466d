//! The `k8s.*` modules, on the host's Kubernetes node (`k8s_node`, else the inventory
//! name): `k8s.cordon{}`, `k8s.uncordon{}`, `k8s.label{ set, remove }`,
//! `k8s.annotate{ set, remove }`, `k8s.drain{ pods, timeout, grace_period }`. Check mode
//! reads the node and says what would change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

use super::{Args, Lost, TaskCx};
use crate::fleet::TaskResult;
use crate::k8s::{self, DrainPods, Meta};

pub const CORDON_KEYS: &[&str] = &[];
pub const META_KEYS: &[&str] = &["set", "remove"];
pub const DRAIN_KEYS: &[&str] = &["pods", "timeout", "grace_period", "force"];

/// `k8s.cordon{}` (`on`) and `k8s.uncordon{}`.
#[derive(Clone, Debug)]
pub struct K8sCordon {
    pub on: bool,
}

/// `k8s.label{}` and `k8s.annotate{}`.
#[derive(Clone, Debug)]
pub struct K8sMeta {
    pub which: Meta,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct K8sDrain {
    pub pods: DrainPods,
    pub timeout: Duration,
    pub grace_period: Option<u32>,
    /// Evict pods that no controller would start again (as `kubectl drain --force`).
    pub force: bool,
}

/// The node's name and a client, or the task's failure.
async fn reach(cx: &mut TaskCx<'_>) -> Result<(kube::Client, String), TaskResult> {
    let node = cx
        .conn
        .k8s_node
        .clone()
        .unwrap_or_else(|| cx.host.to_string());
    let k8s: &crate::k8s::K8s = cx.k8s;
    match k8s.client().await {
        Ok(c) => Ok((c, node)),
        Err(e) => Err(TaskResult::failed(e)),
    }
}

impl K8sCordon {
    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let (client, node) = match reach(cx).await {
            Ok(r) => r,
            Err(f) => return Ok(f),
        };
        let verb = if self.on { "cordoned" } else { "uncordoned" };
        if cx.check {
            return Ok(match k8s::node(&client, &node).await {
                Ok(n)
                    if n.spec
                        .as_ref()
                        .and_then(|s| s.unschedulable)
                        .unwrap_or(false)
                        == self.on =>
                {
                    TaskResult::ok(format!("node {node} already {verb}"))
                }
                Ok(_) => TaskResult::changed(format!("check mode: node {node} would be {verb}")),
                Err(e) => TaskResult::failed(e),
            });
        }
        Ok(
            match k8s::set_unschedulable(&client, &node, self.on).await {
                Ok(true) => TaskResult::changed(format!("node {node} {verb}")),
                Ok(false) => TaskResult::ok(format!("node {node} already {verb}")),
                Err(e) => TaskResult::failed(e),
            },
        )
    }
}

/// A label key as Kubernetes takes it: `[prefix/]name`, the name at most 63 characters of
/// `[A-Za-z0-9._-]` starting and ending alphanumeric, the prefix a DNS subdomain.
pub fn label_key_ok(key: &str) -> bool {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    prefix_ok && label_value_ok(name) && !name.is_empty()
}

/// A label value: empty, or at most 63 characters of `[A-Za-z0-9._-]` starting and ending
/// alphanumeric.
pub fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

impl K8sMeta {
    pub fn parse(a: &Args<'_>, which: Meta) -> Result<K8sMeta, String> {
        let m = a.name();
        let mut set = BTreeMap::new();
        match a.json("set")? {
            None => {}
            Some(Json::Object(o)) => {
                for (k, v) in o {
                    let v = match v {
                        Json::String(s) => s,
                        Json::Number(n) => n.to_string(),
                        Json::Bool(b) => b.to_string(),
                        other => {
                            return Err(format!(
                                "{m}: `set.{k}` must be a string, number or boolean, got {other}"
                            ));
                        }
                    };
                    set.insert(k, v);
                }
            }
            Some(other) => {
                return Err(format!(
                    "{m}: `set` must be a table of key = value, got {other}"
                ));
            }
        }
        let remove = a.strings("remove", true)?.unwrap_or_default();
        if set.is_empty() && remove.is_empty() {
            return Err(format!(
                "{m} needs `set = {{ key = value }}` or `remove = {{ key }}`"
            ));
        }
        if which == Meta::Labels {
            for (k, v) in &set {
                if !label_key_ok(k) {
                    return Err(format!(
                        "{m}: `{k}` is not a valid label key ([prefix/]name, the name at most 63 characters of letters, digits, `-`, `_`, `.`)"
                    ));
                }
                if !label_value_ok(v) {
                    return Err(format!(
                        "{m}: `{v}` (for `{k}`) is not a valid label value (at most 63 characters of letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit)"
                    ));
                }
            }
        }
        for k in &remove {
            if set.contains_key(k) {
                return Err(format!("{m}: `{k}` is both set and removed"));
            }
        }
        Ok(K8sMeta { which, set, remove })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let (client, node) = match reach(cx).await {
            Ok(r) => r,
            Err(f) => return Ok(f),
        };
        let what = match self.which {
            Meta::Labels => "labels",
            Meta::Annotations => "annotations",
        };
        if cx.check {
            let n = match k8s::node(&client, &node).await {
                Ok(n) => n,
                Err(e) => return Ok(TaskResult::failed(e)),
            };
            let have = match self.which {
                Meta::Labels => n.metadata.labels.unwrap_or_default(),
                Meta::Annotations => n.metadata.annotations.unwrap_or_default(),
            };
            let mut would: Vec<String> = self
                .set
                .iter()
                .filter(|(k, v)| have.get(*k) != Some(*v))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            would.extend(
                self.remove
                    .iter()
                    .filter(|k| have.contains_key(*k))
                    .map(|k| format!("{k}-")),
            );
            return Ok(if would.is_empty() {
                TaskResult::ok(format!("node {node}: {what} already so"))
            } else {
                TaskResult::changed(format!(
                    "check mode: node {node} {what} would change: {}",
                    would.join(", ")
                ))
            });
        }
        Ok(
            match k8s::patch_meta(&client, &node, self.which, &self.set, &self.remove).await {
                Ok(changed) if changed.is_empty() => {
                    TaskResult::ok(format!("node {node}: {what} already so"))
                }
                Ok(changed) => {
                    let shown: Vec<String> = changed
                        .iter()
                        .map(|k| match self.set.get(k) {
                            Some(v) => format!("{k}={v}"),
                            None => format!("{k}-"),
                        })
                        .collect();
                    TaskResult::changed(format!("node {node} {what}: {}", shown.join(", ")))
                }
                Err(e) => TaskResult::failed(e),
            },
        )
    }
}

impl K8sDrain {
    pub fn parse(a: &Args<'_>) -> Result<K8sDrain, String> {
        let pods = match a.string("pods")?.as_deref() {
            None | Some("gpu") => DrainPods::Gpu,
            Some("all") => DrainPods::All,
            Some(other) => {
                return Err(format!(
                    "k8s.drain: `pods` must be \"gpu\" or \"all\", got \"{other}\""
                ));
            }
        };
        let grace_period = a
            .delay("grace_period")?
            .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        Ok(K8sDrain {
            pods,
            timeout: a.seconds("timeout")?.unwrap_or(Duration::from_secs(300)),
            grace_period,
            force: a.bool("force")?.unwrap_or(false),
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let (client, node) = match reach(cx).await {
            Ok(r) => r,
            Err(f) => return Ok(f),
        };
        let pods = match k8s::pods_to_evict(&client, &node, self.pods).await {
            Ok(p) => p,
            Err(e) => return Ok(TaskResult::failed(e)),
        };
        let names: Vec<String> = pods.iter().map(k8s::PodRef::shown).collect();
        let bare: Vec<String> = pods
            .iter()
            .filter(|p| p.unmanaged)
            .map(k8s::PodRef::shown)
            .collect();
        if !bare.is_empty() && !self.force {
            return Ok(TaskResult::failed(format!(
                "k8s.drain of node {node}: pods without a controller would be gone for good: {}",
                bare.join(", ")
            ))
            .hint("force = true evicts them anyway (as kubectl drain --force)"));
        }
        if cx.check {
            return Ok(if names.is_empty() {
                TaskResult::ok(format!("node {node}: nothing to evict"))
            } else {
                TaskResult::changed(format!(
                    "check mode: node {node} would be cordoned and {} evicted",
                    names.join(", ")
                ))
            });
        }
        // As kubectl drain: nothing new lands on the node while it is drained.
        let cordoned = match k8s::set_unschedulable(&client, &node, true).await {
            Ok(c) => c,
            Err(e) => return Ok(TaskResult::failed(e)),
        };
        let (events, host) = (cx.events.clone(), cx.host.to_string());
        let progress = move |m: String| events.progress(&host, m);
        Ok(
            match k8s::evict_and_wait(&client, &pods, self.grace_period, self.timeout, &progress)
                .await
            {
                Ok(d) if d.evicted.is_empty() && !cordoned => {
                    TaskResult::ok(format!("node {node}: cordoned, nothing to evict"))
                }
                Ok(d) if d.evicted.is_empty() => {
                    TaskResult::changed(format!("node {node} cordoned; nothing to evict"))
                }
                Ok(d) => TaskResult::changed(format!(
                    "node {node} cordoned; evicted {}",
                    d.evicted.join(", ")
                )),
                Err(e) if e.contains("(429") => {
                    TaskResult::failed(format!("k8s.drain of node {node}: {e}")).hint(
                        "a PodDisruptionBudget that allows no disruption holds its pods: scale the workload up, relax the budget, or raise `timeout`",
                    )
                }
                Err(e) => TaskResult::failed(format!("k8s.drain of node {node}: {e}")),
            },
        )
    }
}
