//! The `k8s.*` modules, on the host's Kubernetes node (`k8s_node`, else the inventory
//! name): `k8s.cordon{}`, `k8s.uncordon{}`, `k8s.label{ set, remove }`,
//! `k8s.annotate{ set, remove }`, `k8s.drain{ pods, timeout, grace_period }`,
//! `k8s.gpu_operator{ state }`. Check mode reads the node and says what would change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;

use super::{Args, Lost, TaskCx};
use crate::fleet::TaskResult;
use crate::k8s::gpu_operator::{self, State};
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

pub const OPERATOR_KEYS: &[&str] = &[
    "state",
    "namespace",
    "timeout",
    "layout",
    "policy",
    "mig_parted",
];

/// `k8s.gpu_operator{ state = "pending" | "success" | "failed", namespace, timeout }`: the
/// GPU Operator's MIG protocol on the host's node (see [`crate::k8s::gpu_operator`]).
/// `pending` pauses the operands and waits for their pods to go; while it holds, a
/// reboot first sets `rebooting`, and a host that fails (or a run that stops) before a
/// `success` task gets `failed` with its operands restored: a node is never left pending.
#[derive(Clone, Debug)]
pub struct K8sGpuOperator {
    pub state: State,
    /// The GPU Operator's namespace (where its operand pods run).
    pub namespace: String,
    /// How long the operand pods may take to go.
    pub timeout: Duration,
    /// With `pending`: the config about to be applied. As the MIG manager does, a config
    /// that cannot be read or named sets the node `failed`, and one already in place sets
    /// it `success` without pausing anything (the task is then ok, not changed).
    pub target: Option<super::target::Target>,
}

/// A node this run set `pending`: what finishing it on the way out needs.
#[derive(Clone, Debug)]
pub struct OperatorMark {
    pub node: String,
    pub namespace: String,
}

impl K8sGpuOperator {
    pub fn parse(a: &Args<'_>) -> Result<K8sGpuOperator, String> {
        let state = match a.string("state")?.as_deref() {
            Some("pending") => State::Pending,
            Some("success") => State::Success,
            Some("failed") => State::Failed,
            Some(other) => {
                return Err(format!(
                    "k8s.gpu_operator: `state` must be \"pending\", \"success\" or \"failed\", got \"{other}\" (\"rebooting\" is set by the reboot itself)"
                ));
            }
            None => {
                return Err(
                    "k8s.gpu_operator needs state = \"pending\" (before the change), \"success\" or \"failed\" (after it)".into(),
                );
            }
        };
        Ok(K8sGpuOperator {
            state,
            namespace: a
                .string("namespace")?
                .unwrap_or_else(|| "gpu-operator".to_string()),
            timeout: a.seconds("timeout")?.unwrap_or(Duration::from_secs(300)),
            target: match super::target::Target::parse(a, false)? {
                Some(_) if state != State::Pending => {
                    return Err(
                        "k8s.gpu_operator: a config (mig_parted, layout or policy) goes with state = \"pending\" only".into(),
                    );
                }
                t => t,
            },
        })
    }

    /// Whether the host's GPUs already match the config (`None`: no config given, or it
    /// cannot be read).
    async fn in_place(&self, cx: &mut TaskCx<'_>) -> Result<Option<bool>, Lost> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        let Ok(target) = target.bind(cx).await else {
            return Ok(None);
        };
        Ok(Some(matches(cx, target).await?))
    }

    /// `Some(result)` when the node needs no change: the config is already in place
    /// (`success`), or it cannot be read (`failed`).
    async fn settled(
        &self,
        cx: &mut TaskCx<'_>,
        client: &kube::Client,
        node: &str,
    ) -> Result<Option<TaskResult>, Lost> {
        let Some(target) = &self.target else {
            return Ok(None);
        };
        let target = match target.bind(cx).await {
            Ok(t) => t,
            Err(e) => {
                let set = gpu_operator::finish(client, node, &self.namespace, State::Failed).await;
                return Ok(Some(TaskResult::failed(match set {
                    Ok((restored, _)) => format!(
                        "{e}; node {node}: {}=failed{}",
                        gpu_operator::STATE_LABEL,
                        restored_text(&restored)
                    ),
                    Err(b) => format!("{e}; setting node {node} failed did not work either: {b}"),
                })));
            }
        };
        if !matches(cx, target).await? {
            return Ok(None);
        }
        Ok(Some(
            match gpu_operator::finish(client, node, &self.namespace, State::Success).await {
                Ok((restored, _)) => TaskResult::ok(format!(
                    "node {node}: its config is already in place; {}=success{}",
                    gpu_operator::STATE_LABEL,
                    restored_text(&restored)
                )),
                Err(e) => TaskResult::failed(e),
            },
        ))
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let (client, node) = match reach(cx).await {
            Ok(r) => r,
            Err(f) => return Ok(f),
        };
        if cx.check && self.state == State::Pending && self.in_place(cx).await? == Some(true) {
            return Ok(TaskResult::ok(format!(
                "check mode: node {node}: its config is already in place; {} would be success",
                gpu_operator::STATE_LABEL
            )));
        }
        if cx.check {
            return Ok(
                match k8s::node_label(&client, &node, gpu_operator::STATE_LABEL).await {
                    Ok(Some(s)) if s == self.state.as_str() => TaskResult::ok(format!(
                        "node {node}: {} already {s}",
                        gpu_operator::STATE_LABEL
                    )),
                    Ok(_) => TaskResult::changed(format!(
                        "check mode: node {node} would get {}={}{}",
                        gpu_operator::STATE_LABEL,
                        self.state.as_str(),
                        if self.state == State::Pending {
                            ", its GPU operands paused"
                        } else {
                            ", its paused GPU operands restored"
                        }
                    )),
                    Err(e) => TaskResult::failed(e),
                },
            );
        }
        if self.state != State::Pending {
            let r = gpu_operator::finish(&client, &node, &self.namespace, self.state).await;
            *cx.operator = None;
            return Ok(match r {
                Ok((restored, false)) if restored.is_empty() => TaskResult::ok(format!(
                    "node {node}: {} already {}",
                    gpu_operator::STATE_LABEL,
                    self.state.as_str()
                )),
                Ok((restored, _)) => TaskResult::changed(format!(
                    "node {node}: {}={}{}",
                    gpu_operator::STATE_LABEL,
                    self.state.as_str(),
                    restored_text(&restored)
                )),
                Err(e) => TaskResult::failed(e),
            });
        }
        if let Some(done) = self.settled(cx, &client, &node).await? {
            return Ok(done);
        }
        let paused = match gpu_operator::pause(&client, &node).await {
            Ok(p) => p,
            Err(e) => {
                // Whatever part of the patch landed is taken back.
                let back = gpu_operator::finish(&client, &node, &self.namespace, State::Failed)
                    .await
                    .err();
                return Ok(TaskResult::failed(format!(
                    "{e}{}",
                    back.map(|b| format!("; setting it failed did not work either: {b}"))
                        .unwrap_or_default()
                )));
            }
        };
        *cx.operator = Some(OperatorMark {
            node: node.clone(),
            namespace: self.namespace.clone(),
        });
        let (events, host) = (cx.events.clone(), cx.host.to_string());
        let progress = move |m: String| events.progress(&host, m);
        if let Err(e) = gpu_operator::await_operands_gone(
            &client,
            &node,
            &self.namespace,
            &paused.operands,
            self.timeout,
            &progress,
        )
        .await
        {
            *cx.operator = None;
            let back = gpu_operator::finish(&client, &node, &self.namespace, State::Failed).await;
            return Ok(TaskResult::failed(match back {
                Ok((restored, _)) => format!(
                    "{e}; node {node}: {}=failed{}",
                    gpu_operator::STATE_LABEL,
                    restored_text(&restored)
                ),
                Err(b) => format!("{e}; and setting the node failed did not work: {b}"),
            }));
        }
        let what = if paused.operands.is_empty() {
            "no operand to pause".to_string()
        } else {
            format!("paused {}", paused.operands.join(", "))
        };
        Ok(if paused.changed {
            TaskResult::changed(format!(
                "node {node}: {}=pending; {what}",
                gpu_operator::STATE_LABEL
            ))
        } else {
            TaskResult::ok(format!("node {node}: already pending; {what}",))
        })
    }
}

/// Whether the host's GPUs are as `target` asks (what `mig.assert` says).
async fn matches(cx: &mut TaskCx<'_>, target: super::target::Target) -> Result<bool, Lost> {
    let assert = super::mig_assert::MigAssert {
        enabled: None,
        target: Some(target),
        gpus: None,
    };
    Ok(assert.run(cx).await?.status == crate::fleet::Status::Ok)
}

fn restored_text(restored: &[String]) -> String {
    if restored.is_empty() {
        String::new()
    } else {
        format!("; restored {}", restored.join(", "))
    }
}

/// Finishes a node this run left pending: `failed`, operands restored. For hosts that
/// failed, became unreachable or were stopped after `k8s.gpu_operator{ state = "pending" }`.
pub async fn fail_on_the_way_out(k8s: &crate::k8s::K8s, mark: &OperatorMark) -> TaskResult {
    let client = match k8s.client().await {
        Ok(c) => c,
        Err(e) => return TaskResult::failed(e),
    };
    match gpu_operator::finish(&client, &mark.node, &mark.namespace, State::Failed).await {
        Ok((restored, _)) => TaskResult::changed(format!(
            "on the way out: node {}: {}=failed{}",
            mark.node,
            gpu_operator::STATE_LABEL,
            restored_text(&restored)
        )),
        Err(e) => TaskResult::failed(format!(
            "on the way out: node {} could not be set failed: {e}",
            mark.node
        ))
        .hint("the node is left pending with its GPU operands paused: set nvidia.com/mig.config.state=failed and every nvidia.com/gpu.deploy.* label that says paused-for-mig-change back to true"),
    }
}

pub const DEMAND_KEYS: &[&str] = &["namespaces"];

/// `k8s.demand{ namespaces }`: the pending pods' MIG demand, packed onto the MIG-enabled
/// GPUs of the hosts running the task (all of them at once, before the task runs: see
/// [`crate::k8s::demand::plan`]); each host's share becomes `ctx.demand` for the tasks
/// after it (the `demand` policy serves it). Changes nothing.
#[derive(Clone, Debug)]
pub struct K8sDemand {
    pub namespaces: Vec<String>,
}

impl K8sDemand {
    pub fn parse(a: &Args<'_>) -> Result<K8sDemand, String> {
        Ok(K8sDemand {
            namespaces: a.strings("namespaces", true)?.unwrap_or_default(),
        })
    }

    pub async fn run(&self, cx: &mut TaskCx<'_>) -> Result<TaskResult, Lost> {
        let node = cx
            .conn
            .k8s_node
            .clone()
            .unwrap_or_else(|| cx.host.to_string());
        let share = match cx.demand {
            Some(Ok(v)) => v.clone(),
            Some(Err(e)) => return Ok(TaskResult::failed(format!("k8s.demand: {e}"))),
            None => {
                return Ok(TaskResult::failed(
                    "k8s.demand: no demand was read for this host",
                ));
            }
        };
        let profiles: Vec<String> = share["profiles"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(p, n)| format!("{}×{p}", n.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let pods: Vec<&str> = share["pods"]
            .as_array()
            .map(|a| a.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let unserved = share["unserved"].as_array().map_or(0, Vec::len);
        let mut r = if profiles.is_empty() {
            TaskResult::ok(format!(
                "node {node}: none of the pending pods' MIG demand is for this host"
            ))
        } else {
            TaskResult::ok(format!(
                "node {node}: to serve {} for {}",
                profiles.join(", "),
                pods.join(", ")
            ))
        };
        if unserved > 0 {
            r = r.hint(format!(
                "{unserved} pending pod(s) get no instance from these hosts (no room, or no node they may run on): {}",
                share["unserved"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(Json::as_str)
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ));
        }
        Ok(r)
    }
}
