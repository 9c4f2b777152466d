//! A fake Kubernetes API server, in process, over real HTTP: the REST paths and JSON of
//! the real one for what migfleet and `kubectl label/cordon/drain` use — discovery,
//! nodes (get, list, merge / strategic-merge / JSON patches, `resourceVersion`
//! conflicts), pods (list with field and label selectors, get, delete with a grace
//! period: the pod is marked and goes when it has passed), `pods/eviction` answering 201
//! (honouring the grace period and UID precondition of its delete options), or 429 while
//! a PodDisruptionBudget allows no disruption, PDB lists, DaemonSet and ConfigMap gets.
//! A node label change acts as a DaemonSet controller would: pods whose node selector
//! the node no longer matches are deleted, and come back when it matches again. It stands in for an API server, which cannot
//! be installed on these machines; `kubectl` is the check that it behaves like one.
#![allow(dead_code)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Cluster {
    pub nodes: BTreeMap<String, Value>,
    /// By (namespace, name).
    pub pods: BTreeMap<(String, String), Value>,
    pub pdbs: Vec<Value>,
    pub daemonsets: Vec<Value>,
    /// By (namespace, name).
    pub configmaps: BTreeMap<(String, String), Value>,
    /// DaemonSet pods whose node stopped matching their node selector: they come back
    /// (as a DaemonSet controller would start them again) when it matches again.
    pub parked: Vec<Value>,
    version: u64,
    /// `METHOD path` of every request that changed something, in order.
    pub changes: Vec<String>,
    /// Every label change of every node, in order: (node, key, value or None).
    pub label_log: Vec<(String, String, Option<String>)>,
}

impl Cluster {
    fn next_version(&mut self) -> String {
        self.version += 1;
        self.version.to_string()
    }

    pub fn add_node(&mut self, name: &str, labels: &[(&str, &str)]) {
        let rv = self.next_version();
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.nodes.insert(
            name.to_string(),
            json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": { "name": name, "uid": format!("uid-node-{name}"), "resourceVersion": rv,
                              "labels": labels, "annotations": {} },
                "spec": {},
                "status": { "conditions": [ { "type": "Ready", "status": "True" } ] },
            }),
        );
    }

    /// A pod on `node`; `gpu` makes it request `nvidia.com/gpu`; `owner` is
    /// `(kind, name)` of its controller (none: a bare pod).
    pub fn add_pod(
        &mut self,
        ns: &str,
        name: &str,
        node: &str,
        labels: &[(&str, &str)],
        gpu: bool,
        owner: Option<(&str, &str)>,
    ) {
        let rv = self.next_version();
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let resources = if gpu {
            json!({ "limits": { "nvidia.com/gpu": "1" }, "requests": { "nvidia.com/gpu": "1" } })
        } else {
            json!({})
        };
        let owners = owner
            .map(|(kind, n)| {
                json!([{ "apiVersion": "apps/v1", "kind": kind, "name": n, "uid": format!("uid-{n}"), "controller": true }])
            })
            .unwrap_or(json!([]));
        self.pods.insert(
            (ns.to_string(), name.to_string()),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": name, "namespace": ns, "uid": format!("uid-pod-{ns}-{name}"),
                              "resourceVersion": rv, "labels": labels, "ownerReferences": owners },
                "spec": { "nodeName": node, "containers": [ { "name": "main", "image": "x", "resources": resources } ] },
                "status": { "phase": "Running" },
            }),
        );
    }

    /// A budget over pods with `labels` that allows `allowed` disruptions.
    pub fn add_pdb(&mut self, ns: &str, name: &str, labels: &[(&str, &str)], allowed: u32) {
        let rv = self.next_version();
        let ml: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.pdbs.push(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": { "name": name, "namespace": ns, "resourceVersion": rv },
            "spec": { "selector": { "matchLabels": ml }, "minAvailable": 1 },
            "status": { "disruptionsAllowed": allowed, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1 },
        }));
    }

    pub fn add_daemonset(&mut self, ns: &str, name: &str) {
        self.daemonsets.push(json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": { "name": name, "namespace": ns, "uid": format!("uid-{name}") },
            "spec": {}, "status": {},
        }));
    }

    /// A GPU Operator operand pod on `node`: owned by DaemonSet `app`, labelled
    /// `app=<app>`, selecting nodes with `nvidia.com/gpu.deploy.<operand>=true`, taking
    /// `grace` seconds to terminate.
    pub fn add_operand_pod(&mut self, ns: &str, app: &str, node: &str, operand: &str, grace: u32) {
        let name = format!("{app}-{node}");
        self.add_pod(
            ns,
            &name,
            node,
            &[("app", app)],
            false,
            Some(("DaemonSet", app)),
        );
        let pod = self.pods.get_mut(&(ns.to_string(), name)).unwrap();
        pod["spec"]["nodeSelector"] = json!({ format!("nvidia.com/gpu.deploy.{operand}"): "true" });
        pod["spec"]["terminationGracePeriodSeconds"] = json!(grace);
    }

    /// A pending pod the scheduler could not place: it asks for `resources`
    /// (`nvidia.com/mig-1g.10gb` = 1), with a node selector and, if `products` is not
    /// empty, a required node affinity on `nvidia.com/gpu.product`.
    pub fn add_pending_pod(
        &mut self,
        ns: &str,
        name: &str,
        resources: &[(&str, u32)],
        node_selector: &[(&str, &str)],
        products: &[&str],
    ) {
        let rv = self.next_version();
        let req: serde_json::Map<String, Value> = resources
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_string())))
            .collect();
        let sel: serde_json::Map<String, Value> = node_selector
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let mut spec = json!({
            "containers": [ { "name": "main", "image": "x", "resources": { "requests": req.clone(), "limits": req } } ],
            "nodeSelector": sel,
        });
        if !products.is_empty() {
            spec["affinity"] = json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [ { "matchExpressions": [
                    { "key": "nvidia.com/gpu.product", "operator": "In", "values": products } ] } ] } } });
        }
        self.pods.insert(
            (ns.to_string(), name.to_string()),
            json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": name, "namespace": ns, "uid": format!("uid-pod-{ns}-{name}"),
                              "resourceVersion": rv, "labels": {}, "ownerReferences": [
                                  { "apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": format!("uid-job-{name}"), "controller": true } ] },
                "spec": spec,
                "status": { "phase": "Pending", "conditions": [
                    { "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                      "message": "0/3 nodes are available: insufficient resources." } ] },
            }),
        );
    }

    pub fn add_config_map(&mut self, ns: &str, name: &str, data: &[(&str, &str)]) {
        let rv = self.next_version();
        let d: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.configmaps.insert(
            (ns.to_string(), name.to_string()),
            json!({ "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": { "name": name, "namespace": ns, "resourceVersion": rv }, "data": d }),
        );
    }

    pub fn label(&self, node: &str, key: &str) -> Option<String> {
        self.nodes[node]["metadata"]["labels"][key]
            .as_str()
            .map(String::from)
    }

    pub fn unschedulable(&self, node: &str) -> bool {
        self.nodes[node]["spec"]["unschedulable"] == true
    }
}

pub struct FakeApi {
    pub url: String,
    pub cluster: Arc<Mutex<Cluster>>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeApi {
    pub fn start(cluster: Cluster) -> FakeApi {
        let cluster = Arc::new(Mutex::new(cluster));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(handle).with_state(cluster.clone());
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi {
            url,
            cluster,
            _runtime: rt,
        }
    }

    /// A kubeconfig reaching this server (no credentials: it asks for none).
    pub fn kubeconfig(&self, path: &std::path::Path) -> std::path::PathBuf {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\ncurrent-context: fake\nusers:\n- name: nobody\n  user: {{}}\n",
                self.url
            ),
        )
        .unwrap();
        path.to_path_buf()
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.cluster.lock().unwrap())
    }
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response {
    (
        code,
        [("content-type", "application/json")],
        json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code.as_u16() })
        .to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn list(kind: &str, items: Vec<Value>, rv: u64) -> Response {
    ok(
        json!({ "kind": kind, "apiVersion": "v1", "metadata": { "resourceVersion": rv.to_string() }, "items": items }),
    )
}

fn resources(group_version: &str, list: &[(&str, &str, bool, &[&str])]) -> Response {
    let resources: Vec<Value> = list
        .iter()
        .map(|(name, kind, namespaced, verbs)| {
            let mut r = json!({ "name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs });
            // As the real server says it: evictions are policy/v1 objects.
            if *kind == "Eviction" {
                r["group"] = json!("policy");
                r["version"] = json!("v1");
            }
            r
        })
        .collect();
    ok(
        json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources }),
    )
}

/// RFC 7386 merge patch (also what a strategic merge patch does to the fields used here).
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn pointer_parts(path: &str) -> Vec<String> {
    path.trim_start_matches('/')
        .split('/')
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// RFC 6902 JSON patch: add, replace, remove, test.
fn json_patch(target: &mut Value, ops: &[Value]) -> Result<(), String> {
    for op in ops {
        let path = pointer_parts(op["path"].as_str().unwrap_or(""));
        let (last, parents) = path.split_last().ok_or("empty path")?;
        let mut cur = &mut *target;
        for p in parents {
            cur = cur
                .get_mut(p.as_str())
                .ok_or_else(|| format!("no {p} in path"))?;
        }
        let obj = cur.as_object_mut().ok_or("not an object")?;
        match op["op"].as_str() {
            Some("add" | "replace") => {
                obj.insert(last.clone(), op["value"].clone());
            }
            Some("remove") => {
                obj.remove(last)
                    .ok_or_else(|| format!("no {last} to remove"))?;
            }
            Some("test") => {
                if obj.get(last) != Some(&op["value"]) {
                    return Err(format!("test failed at {last}"));
                }
            }
            other => return Err(format!("unsupported op {other:?}")),
        }
    }
    Ok(())
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<BTreeMap<String, String>>()
        })
        .unwrap_or_default()
}

fn url_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(h, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=b,c!=d,e` against labels (equality, inequality and existence: what kubectl sends).
fn label_selector_matches(sel: &str, labels: &Value) -> bool {
    sel.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k].as_str() != Some(v)
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k.trim_end_matches('=')].as_str() == Some(v)
        } else if let Some(k) = term.strip_prefix('!') {
            labels.get(k).is_none()
        } else {
            labels.get(term).is_some()
        }
    })
}

fn field_selector_matches(sel: &str, pod: &Value) -> bool {
    sel.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v, neg) = match term.split_once("!=") {
            Some((k, v)) => (k, v, true),
            None => match term.split_once('=') {
                Some((k, v)) => (k.trim_end_matches('='), v, false),
                None => return true,
            },
        };
        let have = match k {
            "spec.nodeName" => pod["spec"]["nodeName"].as_str().unwrap_or(""),
            "metadata.name" => pod["metadata"]["name"].as_str().unwrap_or(""),
            "metadata.namespace" => pod["metadata"]["namespace"].as_str().unwrap_or(""),
            "status.phase" => pod["status"]["phase"].as_str().unwrap_or(""),
            _ => return true,
        };
        (have == v) != neg
    })
}

fn pdb_blocks(c: &Cluster, pod: &Value) -> Option<String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("");
    c.pdbs
        .iter()
        .filter(|b| b["metadata"]["namespace"] == ns)
        .find(|b| {
            let sel = &b["spec"]["selector"]["matchLabels"];
            sel.as_object()
                .is_some_and(|m| m.iter().all(|(k, v)| pod["metadata"]["labels"][k] == *v))
                && b["status"]["disruptionsAllowed"].as_u64() == Some(0)
        })
        .map(|b| b["metadata"]["name"].as_str().unwrap_or("").to_string())
}

/// Deletes a pod as the API server does: at once with no grace period, else marked
/// (`deletionTimestamp`) and gone when the grace period has passed.
fn delete_pod(
    c: &mut Cluster,
    shared: &Arc<Mutex<Cluster>>,
    key: &(String, String),
    grace: Option<u64>,
) -> Option<Value> {
    let pod = c.pods.get(key)?.clone();
    let grace = grace
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_u64())
        .unwrap_or(0);
    if grace == 0 {
        return c.pods.remove(key);
    }
    if pod["metadata"].get("deletionTimestamp").is_some() {
        return Some(pod);
    }
    let p = c.pods.get_mut(key).unwrap();
    p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    let uid = pod["metadata"]["uid"].clone();
    let (shared, key) = (shared.clone(), key.clone());
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(grace)).await;
        let mut c = shared.lock().unwrap();
        if c.pods
            .get(&key)
            .is_some_and(|p| p["metadata"]["uid"] == uid)
        {
            c.pods.remove(&key);
        }
    });
    Some(pod)
}

/// What a DaemonSet controller does when a node's labels change: its pods on a node that
/// no longer matches their node selector are deleted (parked), and started again (a new
/// UID) when the node matches again.
fn reconcile_daemonsets(c: &mut Cluster, shared: &Arc<Mutex<Cluster>>, node: &str) {
    let labels = c.nodes[node]["metadata"]["labels"].clone();
    let fits = |p: &Value| {
        p["spec"]["nodeSelector"]
            .as_object()
            .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
    };
    let gone: Vec<(String, String)> = c
        .pods
        .iter()
        .filter(|(_, p)| p["spec"]["nodeName"] == node)
        .filter(|(_, p)| {
            p["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"))
        })
        .filter(|(_, p)| !fits(p))
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        if let Some(p) = c.pods.get(&key).cloned()
            && p["metadata"].get("deletionTimestamp").is_none()
        {
            c.parked.push(p);
            delete_pod(c, shared, &key, None);
        }
    }
    let (back, keep): (Vec<Value>, Vec<Value>) = std::mem::take(&mut c.parked)
        .into_iter()
        .partition(|p| p["spec"]["nodeName"] == node && fits(p));
    c.parked = keep;
    for mut p in back {
        let key = (
            p["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            p["metadata"]["name"].as_str().unwrap_or("").to_string(),
        );
        if c.pods.contains_key(&key) {
            continue;
        }
        let rv = c.next_version();
        p["metadata"]["uid"] = json!(format!(
            "{}-r{rv}",
            p["metadata"]["uid"].as_str().unwrap_or("")
        ));
        p["metadata"]["resourceVersion"] = json!(rv);
        c.pods.insert(key, p);
    }
}

async fn handle(
    State(cluster): State<Arc<Mutex<Cluster>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let shared = cluster.clone();
    let mut c = cluster.lock().unwrap();
    let path = uri.path().trim_end_matches('/').to_string();
    let q = query(&uri);
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let ctype = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match (method.clone(), parts.as_slice()) {
        (Method::GET, ["version"]) => ok(json!({
            "major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64",
            "goVersion": "go1.22", "compiler": "gc", "buildDate": "2024-08-13T00:00:00Z",
            "gitCommit": "fake", "gitTreeState": "clean"
        })),
        (Method::GET, ["api"]) => ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [ { "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" } ]
        })),
        (Method::GET, ["apis"]) => ok(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": [
                { "name": "apps", "versions": [ { "groupVersion": "apps/v1", "version": "v1" } ],
                  "preferredVersion": { "groupVersion": "apps/v1", "version": "v1" } },
                { "name": "policy", "versions": [ { "groupVersion": "policy/v1", "version": "v1" } ],
                  "preferredVersion": { "groupVersion": "policy/v1", "version": "v1" } },
            ]
        })),
        (Method::GET, ["api", "v1"]) => resources(
            "v1",
            &[
                ("nodes", "Node", false, &["get", "list", "patch", "update"]),
                ("pods", "Pod", true, &["get", "list", "delete"]),
                ("pods/eviction", "Eviction", true, &["create"]),
                ("configmaps", "ConfigMap", true, &["get"]),
            ],
        ),
        (Method::GET, ["apis", "policy", "v1"]) => resources(
            "policy/v1",
            &[(
                "poddisruptionbudgets",
                "PodDisruptionBudget",
                true,
                &["get", "list"],
            )],
        ),
        (Method::GET, ["apis", "apps", "v1"]) => resources(
            "apps/v1",
            &[("daemonsets", "DaemonSet", true, &["get", "list"])],
        ),
        (Method::GET, ["api", "v1", "nodes"]) => {
            let sel = q.get("labelSelector").cloned().unwrap_or_default();
            let items = c
                .nodes
                .values()
                .filter(|n| label_selector_matches(&sel, &n["metadata"]["labels"]))
                .cloned()
                .collect();
            list("NodeList", items, c.version)
        }
        (Method::GET, ["api", "v1", "nodes", name]) => match c.nodes.get(*name) {
            Some(n) => ok(n.clone()),
            None => status(
                StatusCode::NOT_FOUND,
                "NotFound",
                &format!("nodes \"{name}\" not found"),
            ),
        },
        (Method::PATCH, ["api", "v1", "nodes", name]) => {
            let Some(mut node) = c.nodes.get(*name).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("nodes \"{name}\" not found"),
                );
            };
            let before_labels = node["metadata"]["labels"].clone();
            if ctype.starts_with("application/json-patch+json") {
                let ops = body_json.as_array().cloned().unwrap_or_default();
                if let Err(e) = json_patch(&mut node, &ops) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", &e);
                }
            } else if ctype.starts_with("application/merge-patch+json")
                || ctype.starts_with("application/strategic-merge-patch+json")
            {
                if let Some(rv) = body_json["metadata"]["resourceVersion"].as_str()
                    && node["metadata"]["resourceVersion"].as_str() != Some(rv)
                {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        &format!(
                            "Operation cannot be fulfilled on nodes \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                        ),
                    );
                }
                let mut patch = body_json.clone();
                if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                merge(&mut node, &patch);
            } else {
                return status(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "UnsupportedMediaType",
                    &format!("the body of the request was in an unknown format: {ctype}"),
                );
            }
            let rv = c.next_version();
            node["metadata"]["resourceVersion"] = json!(rv);
            let after = node["metadata"]["labels"].clone();
            let keys: std::collections::BTreeSet<String> = before_labels
                .as_object()
                .into_iter()
                .chain(after.as_object())
                .flat_map(|m| m.keys().cloned())
                .collect();
            for k in keys {
                if before_labels.get(&k) != after.get(&k) {
                    let v = after.get(&k).and_then(Value::as_str).map(String::from);
                    c.label_log.push((name.to_string(), k, v));
                }
            }
            c.changes.push(format!("PATCH {path}"));
            c.nodes.insert(name.to_string(), node.clone());
            reconcile_daemonsets(&mut c, &shared, name);
            ok(node)
        }
        (Method::GET, ["api", "v1", "pods"])
        | (Method::GET, ["api", "v1", "namespaces", _, "pods"]) => {
            let ns = if parts.len() == 5 {
                Some(parts[3])
            } else {
                None
            };
            let fsel = q.get("fieldSelector").cloned().unwrap_or_default();
            let lsel = q.get("labelSelector").cloned().unwrap_or_default();
            let items = c
                .pods
                .iter()
                .filter(|((pns, _), _)| ns.is_none_or(|n| n == pns))
                .map(|(_, p)| p)
                .filter(|p| field_selector_matches(&fsel, p))
                .filter(|p| label_selector_matches(&lsel, &p["metadata"]["labels"]))
                .cloned()
                .collect();
            list("PodList", items, c.version)
        }
        (Method::GET, ["api", "v1", "namespaces", ns, "pods", name]) => {
            match c.pods.get(&(ns.to_string(), name.to_string())) {
                Some(p) => ok(p.clone()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                ),
            }
        }
        (Method::DELETE, ["api", "v1", "namespaces", ns, "pods", name]) => {
            let grace = body_json["gracePeriodSeconds"]
                .as_u64()
                .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok()));
            match delete_pod(&mut c, &shared, &(ns.to_string(), name.to_string()), grace) {
                Some(p) => {
                    c.changes.push(format!("DELETE {path}"));
                    ok(p)
                }
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                ),
            }
        }
        (Method::POST, ["api", "v1", "namespaces", ns, "pods", name, "eviction"]) => {
            let key = (ns.to_string(), name.to_string());
            let Some(pod) = c.pods.get(&key).cloned() else {
                return status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("pods \"{name}\" not found"),
                );
            };
            if let Some(pdb) = pdb_blocks(&c, &pod) {
                c.changes.push(format!("POST {path} 429"));
                return status(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    &format!(
                        "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget {pdb} needs 1 healthy pods and has 1 currently"
                    ),
                );
            }
            let options = &body_json["deleteOptions"];
            if let Some(uid) = options["preconditions"]["uid"].as_str()
                && pod["metadata"]["uid"].as_str() != Some(uid)
            {
                return status(
                    StatusCode::CONFLICT,
                    "Conflict",
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        pod["metadata"]["uid"]
                    ),
                );
            }
            delete_pod(
                &mut c,
                &shared,
                &key,
                options["gracePeriodSeconds"].as_u64(),
            );
            c.changes.push(format!("POST {path}"));
            (
                StatusCode::CREATED,
                [("content-type", "application/json")],
                json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201 }).to_string(),
            )
                .into_response()
        }
        (Method::GET, ["api", "v1", "namespaces", ns, "configmaps", name]) => {
            match c.configmaps.get(&(ns.to_string(), name.to_string())) {
                Some(m) => ok(m.clone()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("configmaps \"{name}\" not found"),
                ),
            }
        }
        (Method::GET, ["apis", "policy", "v1", "poddisruptionbudgets"])
        | (
            Method::GET,
            [
                "apis",
                "policy",
                "v1",
                "namespaces",
                _,
                "poddisruptionbudgets",
            ],
        ) => {
            let ns = if parts.len() == 6 {
                Some(parts[4])
            } else {
                None
            };
            let items = c
                .pdbs
                .iter()
                .filter(|b| ns.is_none_or(|n| b["metadata"]["namespace"] == n))
                .cloned()
                .collect();
            list("PodDisruptionBudgetList", items, c.version)
        }
        (Method::GET, ["apis", "apps", "v1", "namespaces", ns, "daemonsets", name]) => {
            match c
                .daemonsets
                .iter()
                .find(|d| d["metadata"]["namespace"] == *ns && d["metadata"]["name"] == *name)
            {
                Some(d) => ok(d.clone()),
                None => status(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    &format!("daemonsets.apps \"{name}\" not found"),
                ),
            }
        }
        _ => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the server could not find the requested resource ({method} {path})"),
        ),
    }
}
