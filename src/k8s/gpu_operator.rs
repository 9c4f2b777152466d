//! The GPU Operator's MIG protocol on a node, as its MIG manager speaks it, so migfleet can
//! stand in for the manager: `nvidia.com/mig.config.state` goes `pending` → (`rebooting`)
//! → `success` or `failed`; while pending, the GPU operands are paused
//! (`nvidia.com/gpu.deploy.<operand>` = `paused-for-mig-change`, except where an admin set
//! `false`), their pods awaited gone, and afterwards restored (`paused-for-mig-change`
//! back to `true`). Restoring needs nothing remembered: the paused value says which
//! labels migfleet (or a MIG manager) paused, so a run that died midway is repaired by
//! the next one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams};

use super::{Meta, api_error, node, patch_meta};

pub const STATE_LABEL: &str = "nvidia.com/mig.config.state";
pub const CONFIG_LABEL: &str = "nvidia.com/mig.config";
pub const PAUSED: &str = "paused-for-mig-change";

/// The operands the MIG manager pauses (`client` only where its label exists).
pub const OPERANDS: [&str; 6] = [
    "device-plugin",
    "gpu-feature-discovery",
    "dcgm-exporter",
    "dcgm",
    "nvsm",
    "client",
];

/// The operand pods awaited gone, by their `app` label in the operator's namespace (NVSM
/// is paused but not awaited, as the MIG manager does).
const AWAITED_APPS: [&str; 4] = [
    "nvidia-device-plugin-daemonset",
    "gpu-feature-discovery",
    "nvidia-dcgm-exporter",
    "nvidia-dcgm",
];

/// Validator pods deleted once the operands are down (they hold GPU handles).
const VALIDATORS_BEFORE: [&str; 2] = ["nvidia-cuda-validator", "nvidia-device-plugin-validator"];

/// Deleted before the operands come back, so every validation runs again.
const VALIDATOR_AFTER: &str = "nvidia-operator-validator";

fn deploy_label(operand: &str) -> String {
    format!("nvidia.com/gpu.deploy.{operand}")
}

/// The states migfleet writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Pending,
    Rebooting,
    Success,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Rebooting => "rebooting",
            State::Success => "success",
            State::Failed => "failed",
        }
    }
}

/// What pausing did: the operands it paused, and whether anything changed on the node.
#[derive(Debug, Default)]
pub struct Paused {
    pub operands: Vec<String>,
    pub changed: bool,
}

/// Sets the state to `pending` and pauses the operands, in one patch.
pub async fn pause(client: &Client, name: &str) -> Result<Paused, String> {
    let n = node(client, name).await?;
    let labels = n.metadata.labels.unwrap_or_default();
    let mut set = BTreeMap::new();
    set.insert(STATE_LABEL.to_string(), State::Pending.as_str().to_string());
    let mut operands = Vec::new();
    for op in OPERANDS {
        let key = deploy_label(op);
        match labels.get(&key).map(String::as_str) {
            Some("false") => {}
            None if op == "client" => {}
            _ => {
                set.insert(key, PAUSED.to_string());
                operands.push(op.to_string());
            }
        }
    }
    let changed = patch_meta(client, name, Meta::Labels, &set, &[]).await?;
    Ok(Paused {
        operands,
        changed: !changed.is_empty(),
    })
}

/// Sets the state label alone (`rebooting`).
pub async fn set_state(client: &Client, name: &str, state: State) -> Result<bool, String> {
    let set = BTreeMap::from([(STATE_LABEL.to_string(), state.as_str().to_string())]);
    Ok(!patch_meta(client, name, Meta::Labels, &set, &[])
        .await?
        .is_empty())
}

/// Restores every paused operand (`paused-for-mig-change` → `true`; `false` stays) and
/// sets the final state, in one patch; after a change that paused operands, the
/// operator's validator pod is deleted first so every validation runs again. Returns the operands restored, and whether the
/// node changed.
pub async fn finish(
    client: &Client,
    name: &str,
    namespace: &str,
    state: State,
) -> Result<(Vec<String>, bool), String> {
    let n = node(client, name).await?;
    let labels = n.metadata.labels.unwrap_or_default();
    let mut set = BTreeMap::new();
    let mut restored = Vec::new();
    for op in OPERANDS {
        if labels.get(&deploy_label(op)).map(String::as_str) == Some(PAUSED) {
            set.insert(deploy_label(op), "true".to_string());
            restored.push(op.to_string());
        }
    }
    set.insert(STATE_LABEL.to_string(), state.as_str().to_string());
    if state == State::Success && !restored.is_empty() {
        delete_pods(client, name, namespace, &[VALIDATOR_AFTER]).await?;
    }
    let changed = patch_meta(client, name, Meta::Labels, &set, &[]).await?;
    Ok((restored, !changed.is_empty()))
}

/// The node's pods that belong to a paused operand: the awaited operand apps in the
/// operator's namespace, and, in any namespace, pods whose node selector asks for a
/// paused operand's deploy label (third-party GPU clients select on
/// `nvidia.com/gpu.deploy.client`). Finished pods do not count.
async fn operand_pods(
    client: &Client,
    name: &str,
    namespace: &str,
    paused: &[String],
) -> Result<Vec<String>, String> {
    let keys: Vec<String> = paused.iter().map(|o| deploy_label(o)).collect();
    Ok(super::pods_on(client, name, None, None)
        .await?
        .into_iter()
        .filter(|p| {
            !p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|ph| ph == "Succeeded" || ph == "Failed")
        })
        .filter(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap_or("");
            let app = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str)
                .unwrap_or("");
            let by_app = ns == namespace && AWAITED_APPS.contains(&app);
            let by_selector = p
                .spec
                .as_ref()
                .and_then(|s| s.node_selector.as_ref())
                .is_some_and(|sel| sel.keys().any(|k| keys.contains(k)));
            by_app || by_selector
        })
        .map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default()
            )
        })
        .collect())
}

/// Waits (polling every second, at most `timeout`) until the paused operands' pods are
/// gone from the node, then deletes the validator pods that hold GPU handles.
pub async fn await_operands_gone(
    client: &Client,
    name: &str,
    namespace: &str,
    paused: &[String],
    timeout: Duration,
    progress: &(dyn Fn(String) + Send + Sync),
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = operand_pods(client, name, namespace, paused).await?;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "GPU operand pods still on node {name} {} s after they were paused: {}",
                timeout.as_secs(),
                left.join(", ")
            ));
        }
        progress(format!(
            "waiting for {} GPU operand pod(s) to go",
            left.len()
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    delete_pods(client, name, namespace, &VALIDATORS_BEFORE).await
}

/// Deletes the pods of the node with these `app` labels in `namespace`.
async fn delete_pods(
    client: &Client,
    name: &str,
    namespace: &str,
    apps: &[&str],
) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    for app in apps {
        let selector = format!("app={app}");
        let on = super::pods_on(client, name, Some(namespace), Some(&selector)).await?;
        for p in on.into_iter().filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str)
                == Some(*app)
        }) {
            let pod = p.metadata.name.unwrap_or_default();
            match pods.delete(&pod, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(api_error(&format!("deleting pod {namespace}/{pod}"), &e));
                }
            }
        }
    }
    Ok(())
}
