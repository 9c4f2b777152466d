//! Kubernetes over real HTTP: the fake API server (support::kube_api) checked with the
//! real `kubectl`, then migfleet's `k8s.*` modules against it, over simulated GPU hosts.

use crate::support::kube_api::{Cluster, FakeApi};
use crate::support::migfleet;
use crate::support::sim::{SimHost, write_inventory};
use crate::support::testhost::TempDir;
use std::path::Path;
use std::process::{Command, Output};

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("kubectl not found: install Debian's kubernetes-client (apt-get install -y kubernetes-client)")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One GPU node with a GPU pod under a budget that allows no disruption, and a DaemonSet
/// pod.
fn cluster() -> Cluster {
    let mut c = Cluster::default();
    c.add_node(
        "gpu-1",
        &[("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3")],
    );
    c.add_pod(
        "ml",
        "train-0",
        "gpu-1",
        &[("app", "train")],
        true,
        Some(("StatefulSet", "train")),
    );
    c.add_pod(
        "ml",
        "web-0",
        "gpu-1",
        &[("app", "web")],
        false,
        Some(("ReplicaSet", "web-5d9f")),
    );
    c.add_pod(
        "gpu-operator",
        "dcgm-exporter-x",
        "gpu-1",
        &[],
        true,
        Some(("DaemonSet", "dcgm-exporter")),
    );
    c.add_daemonset("gpu-operator", "dcgm-exporter");
    c.add_pdb("ml", "train-pdb", &[("app", "train")], 0);
    c
}

#[test]
fn kubectl_labels_cordons_and_drains_against_the_fake_api_server_as_against_a_cluster() {
    let dir = TempDir::new("kubectl");
    let api = FakeApi::start(cluster());
    let kc = api.kubeconfig(&dir.path().join("kubeconfig"));

    let o = kubectl(
        &kc,
        &[
            "label",
            "node",
            "gpu-1",
            "nvidia.com/mig.config=all-1g.10gb",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        api.with(|c| c.label("gpu-1", "nvidia.com/mig.config")),
        Some("all-1g.10gb".to_string())
    );
    let o = kubectl(&kc, &["cordon", "gpu-1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(api.with(|c| c.unschedulable("gpu-1")));

    // The budget allows no disruption: kubectl drain waits, then times out.
    let o = kubectl(
        &kc,
        &["drain", "gpu-1", "--ignore-daemonsets", "--timeout=3s"],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("disruption budget"),
        "{}",
        text(&o)
    );
    assert!(api.with(|c| c.pods.contains_key(&("ml".into(), "train-0".into()))));

    // With the budget relaxed the drain goes through; the DaemonSet pod stays.
    api.with(|c| c.pdbs[0]["status"]["disruptionsAllowed"] = serde_json::json!(1));
    let o = kubectl(
        &kc,
        &["drain", "gpu-1", "--ignore-daemonsets", "--timeout=20s"],
    );
    assert!(o.status.success(), "{}", text(&o));
    api.with(|c| {
        assert!(!c.pods.contains_key(&("ml".into(), "train-0".into())));
        assert!(!c.pods.contains_key(&("ml".into(), "web-0".into())));
        assert!(
            c.pods
                .contains_key(&("gpu-operator".into(), "dcgm-exporter-x".into()))
        );
    });
    let o = kubectl(&kc, &["uncordon", "gpu-1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!api.with(|c| c.unschedulable("gpu-1")));
}

/// Local simulated hosts: `n0` is node `gpu-1` (k8s_node), `n1` has no node.
fn fleet(tag: &str) -> (TempDir, std::path::PathBuf) {
    let dir = TempDir::new(tag);
    let hosts = vec![
        SimHost::local(dir.path(), "n0", &[("H100-80GB", 1)]),
        SimHost::local(dir.path(), "n1", &[("H100-80GB", 1)]),
    ];
    let inv = write_inventory(&dir.path().join("inventory.yml"), &hosts);
    let text = std::fs::read_to_string(&inv).unwrap().replacen(
        "    n0:\n",
        "    n0:\n      k8s_node: gpu-1\n",
        1,
    );
    std::fs::write(&inv, text).unwrap();
    (dir, inv)
}

fn run(dir: &Path, inv: &Path, kc: &Path, body: &str) -> crate::support::Run {
    let pb = dir.join("site.lua");
    std::fs::write(&pb, body).unwrap();
    migfleet(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--kubeconfig",
        kc.to_str().unwrap(),
    ])
}

#[test]
fn the_k8s_modules_cordon_label_drain_and_uncordon_a_hosts_node() {
    let (dir, inv) = fleet("k8sflow");
    let mut c = cluster();
    c.pdbs.clear();
    let api = FakeApi::start(c);
    let kc = api.kubeconfig(&dir.path().join("kubeconfig"));
    let r = run(
        dir.path(),
        &inv,
        &kc,
        r#"return { hosts = "all", tasks = {
            { name = "pending", k8s.label{ set = { ["nvidia.com/mig.config.state"] = "pending" } } },
            { name = "evict GPU pods", k8s.drain{ timeout = 20 } },
            { name = "MIG on", mig.mode{ enabled = true } },
            { name = "done", k8s.label{ set = { ["nvidia.com/mig.config.state"] = "success" } } },
            { name = "note", k8s.annotate{ set = { ["migfleet.io/applied"] = "yes" } } },
            { name = "uncordon", k8s.uncordon{} },
        } }"#,
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout
            .contains("node `n1` is not in the cluster (set k8s_node"),
        "{}",
        r.shown
    );
    assert!(r.recap("n0").contains("changed=6"), "{}", r.shown);
    assert!(r.stdout.contains("evicted ml/train-0"), "{}", r.shown);
    api.with(|c| {
        let states: Vec<Option<String>> = c
            .label_log
            .iter()
            .filter(|(n, k, _)| n == "gpu-1" && k == "nvidia.com/mig.config.state")
            .map(|(_, _, v)| v.clone())
            .collect();
        assert_eq!(states, [Some("pending".into()), Some("success".into())]);
        assert!(!c.unschedulable("gpu-1"));
        assert!(!c.pods.contains_key(&("ml".into(), "train-0".into())));
        // Not a GPU pod; not evicted by pods = "gpu". The DaemonSet pod stays too.
        assert!(c.pods.contains_key(&("ml".into(), "web-0".into())));
        assert!(
            c.pods
                .contains_key(&("gpu-operator".into(), "dcgm-exporter-x".into()))
        );
        assert_eq!(
            c.nodes["gpu-1"]["metadata"]["annotations"]["migfleet.io/applied"],
            "yes"
        );
    });
    // Again: the labels are as asked, nothing to change there.
    let r = run(
        dir.path(),
        &inv,
        &kc,
        r#"return { hosts = "n0", tasks = {
            { name = "done", k8s.label{ set = { ["nvidia.com/mig.config.state"] = "success" } } },
        } }"#,
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(r.recap("n0").contains("changed=0"), "{}", r.shown);
}

#[test]
fn a_budget_that_allows_no_disruption_fails_the_drain_in_its_timeout_naming_pod_and_budget() {
    let (dir, inv) = fleet("k8spdb");
    let api = FakeApi::start(cluster());
    let kc = api.kubeconfig(&dir.path().join("kubeconfig"));
    let r = run(
        dir.path(),
        &inv,
        &kc,
        r#"return { hosts = "n0", tasks = {
            { name = "evict GPU pods", k8s.drain{ timeout = 2 } },
            { name = "MIG on", mig.mode{ enabled = true } },
        } }"#,
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(r.stdout.contains("pods ml/train-0"), "{}", r.shown);
    assert!(r.stdout.contains("budgets ml/train-pdb"), "{}", r.shown);
    assert!(!r.stdout.contains("TASK [MIG on]"), "{}", r.shown);
    api.with(|c| {
        assert!(c.pods.contains_key(&("ml".into(), "train-0".into())));
        let refused = c
            .changes
            .iter()
            .filter(|l| l.ends_with("eviction 429"))
            .count();
        assert!(
            refused >= 2,
            "the eviction was not tried again: {:?}",
            c.changes
        );
    });
}

/// A mig-parted file as the GPU Operator's ConfigMap holds it.
const PARTED: &str = r#"version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false
  a100-balanced:
    - devices: all
      mig-enabled: true
      mig-devices: { "1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1 }
  h100-balanced:
    - devices: all
      mig-enabled: true
      mig-devices: { "1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1 }
  h100-small:
    - devices: all
      mig-enabled: true
      mig-devices: { "1g.10gb": 4, "3g.40gb": 1 }
"#;

const OP_NS: &str = "gpu-operator";

/// A GPU Operator cluster: per node its `nvidia.com/mig.config`, operands deployed
/// (device plugin and GFD on, DCGM exporter switched off by an admin), their pods (the
/// device plugin takes a second to stop), validator pods, and one GPU workload pod;
/// the operator's mig-parted ConfigMap.
fn operator_cluster(nodes: &[(&str, &str)]) -> Cluster {
    let mut c = Cluster::default();
    for (node, config) in nodes {
        c.add_node(
            node,
            &[
                ("nvidia.com/mig.config", config),
                ("nvidia.com/gpu.deploy.device-plugin", "true"),
                ("nvidia.com/gpu.deploy.gpu-feature-discovery", "true"),
                ("nvidia.com/gpu.deploy.dcgm-exporter", "false"),
            ],
        );
        c.add_operand_pod(
            OP_NS,
            "nvidia-device-plugin-daemonset",
            node,
            "device-plugin",
            1,
        );
        c.add_operand_pod(
            OP_NS,
            "gpu-feature-discovery",
            node,
            "gpu-feature-discovery",
            0,
        );
        for app in ["nvidia-cuda-validator", "nvidia-operator-validator"] {
            c.add_pod(
                OP_NS,
                &format!("{app}-{node}"),
                node,
                &[("app", app)],
                false,
                Some(("Job", app)),
            );
        }
        c.add_pod(
            "ml",
            &format!("work-{node}"),
            node,
            &[("app", "work")],
            true,
            Some(("StatefulSet", "work")),
        );
        // Evicted, it takes a second to stop: the drain waits for it.
        c.pods
            .get_mut(&("ml".to_string(), format!("work-{node}")))
            .unwrap()["spec"]["terminationGracePeriodSeconds"] = serde_json::json!(1);
    }
    c.add_config_map(
        OP_NS,
        "default-mig-parted-config",
        &[("config.yaml", PARTED)],
    );
    c
}

fn k8s_mig() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks/k8s-mig.lua")
        .display()
        .to_string()
}

/// The values a node's label took, in order.
fn label_history(c: &Cluster, node: &str, key: &str) -> Vec<Option<String>> {
    c.label_log
        .iter()
        .filter(|(n, k, _)| n == node && k == key)
        .map(|(_, _, v)| v.clone())
        .collect()
}

fn has_pod(c: &Cluster, ns: &str, name: &str) -> bool {
    c.pods.contains_key(&(ns.to_string(), name.to_string()))
}

fn gi_profiles(s: &serde_json::Value, gpu: usize) -> Vec<u64> {
    let mut v: Vec<u64> = s["gpus"][gpu]["gpu_instances"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| g["profile_id"].as_u64().unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn k8s_mig_stands_in_for_the_mig_manager_pending_rebooting_success_and_a_rerun_disturbs_nothing() {
    // An A100 that cannot be reset (the mode change takes a reboot) and an H100.
    let lab = crate::support::lab::Lab::new("kmig", &[&[("A100-40GB", 1)], &[("H100-80GB", 2)]]);
    lab.forbid_resets();
    let (a, h) = (lab.hosts[0].tag.clone(), lab.hosts[1].tag.clone());
    let api = FakeApi::start(operator_cluster(&[
        (&a, "a100-balanced"),
        (&h, "h100-balanced"),
    ]));
    let kc = api.kubeconfig(&lab.hosts[0].dir().join("kubeconfig"));
    let kc = kc.to_str().unwrap();
    let r = lab.run(&k8s_mig(), &["--kubeconfig", kc, "--no-retry-file"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(lab.sim(0).reboots(), 1, "{}", r.shown);
    assert_eq!(lab.sim(1).reboots(), 0, "{}", r.shown);
    // A100-40GB: 3g.20gb 9, 2g.10gb 14, 1g.5gb 19; H100-80GB: 3g.40gb 9, 2g.20gb 14, 1g.10gb 19.
    assert_eq!(
        gi_profiles(&lab.state(0), 0),
        [9, 14, 19, 19],
        "{}",
        r.shown
    );
    for gpu in 0..2 {
        assert_eq!(
            gi_profiles(&lab.state(1), gpu),
            [9, 14, 19, 19],
            "{}",
            r.shown
        );
    }
    api.with(|c| {
        let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert_eq!(
            label_history(c, &a, "nvidia.com/mig.config.state"),
            s(&["pending", "rebooting", "success"]),
            "{}",
            r.shown
        );
        assert_eq!(
            label_history(c, &h, "nvidia.com/mig.config.state"),
            s(&["pending", "success"]),
            "{}",
            r.shown
        );
        for node in [&a, &h] {
            for op in ["device-plugin", "gpu-feature-discovery"] {
                assert_eq!(
                    label_history(c, node, &format!("nvidia.com/gpu.deploy.{op}")),
                    s(&["paused-for-mig-change", "true"]),
                    "{op} on {node}"
                );
            }
            // An admin's `false` is left alone.
            assert_eq!(
                c.label(node, "nvidia.com/gpu.deploy.dcgm-exporter")
                    .as_deref(),
                Some("false")
            );
            assert!(label_history(c, node, "nvidia.com/gpu.deploy.dcgm-exporter").is_empty());
            assert!(!c.unschedulable(node), "{node} left cordoned");
            // The GPU workload was evicted; the operands came back; the validators that
            // hold GPU handles were deleted, and the operator's to validate again.
            assert!(!has_pod(c, "ml", &format!("work-{node}")));
            assert!(has_pod(
                c,
                OP_NS,
                &format!("nvidia-device-plugin-daemonset-{node}")
            ));
            assert!(has_pod(c, OP_NS, &format!("gpu-feature-discovery-{node}")));
            assert!(!has_pod(c, OP_NS, &format!("nvidia-cuda-validator-{node}")));
            assert!(!has_pod(
                c,
                OP_NS,
                &format!("nvidia-operator-validator-{node}")
            ));
        }
        // The operand pods were gone before the GPUs changed: their deletions come before
        // the workload's eviction.
        let at = |what: &str| c.changes.iter().position(|l| l.contains(what)).unwrap();
        assert!(at("nvidia-cuda-validator") < at(&format!("work-{a}/eviction")));
    });

    // Again, with a new GPU workload running: every config is in place, so nothing is
    // paused, drained or changed.
    let before = api.with(|c| {
        c.add_pod(
            "ml",
            "work-2",
            &h,
            &[("app", "work")],
            true,
            Some(("StatefulSet", "work")),
        );
        c.label_log.len()
    });
    let r = lab.run(&k8s_mig(), &["--kubeconfig", kc, "--no-retry-file"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    for host in [&a, &h] {
        assert!(r.recap(host).contains("changed=0"), "{}", r.shown);
    }
    api.with(|c| {
        assert_eq!(c.label_log.len(), before, "{:?}", &c.label_log[before..]);
        assert!(has_pod(c, "ml", "work-2"));
    });
    assert_eq!(lab.sim(0).reboots(), 1);
}

#[test]
fn a_budget_blocking_the_drain_fails_the_host_with_state_failed_and_operands_restored() {
    let lab = crate::support::lab::Lab::new("kpdb", &[&[("H100-80GB", 1)]]);
    let node = lab.hosts[0].tag.clone();
    let mut cluster = operator_cluster(&[(&node, "h100-balanced")]);
    cluster.add_pdb("ml", "work-pdb", &[("app", "work")], 0);
    let api = FakeApi::start(cluster);
    let kc = api.kubeconfig(&lab.hosts[0].dir().join("kubeconfig"));
    let r = lab.run(
        &k8s_mig(),
        &[
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--no-retry-file",
            "-e",
            "drain_timeout=2",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(r.stdout.contains("budgets ml/work-pdb"), "{}", r.shown);
    assert!(
        r.stdout.contains("nvidia.com/mig.config.state=failed"),
        "{}",
        r.shown
    );
    // Nothing on the GPUs changed.
    assert!(gi_profiles(&lab.state(0), 0).is_empty(), "{}", r.shown);
    api.with(|c| {
        let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert_eq!(
            label_history(c, &node, "nvidia.com/mig.config.state"),
            s(&["pending", "failed"])
        );
        assert_eq!(
            c.label(&node, "nvidia.com/gpu.deploy.device-plugin")
                .as_deref(),
            Some("true")
        );
        assert_eq!(
            c.label(&node, "nvidia.com/gpu.deploy.dcgm-exporter")
                .as_deref(),
            Some("false")
        );
        assert!(has_pod(c, "ml", &format!("work-{node}")));
        // As kubectl drain leaves it: still cordoned, for someone to look at.
        assert!(c.unschedulable(&node));
    });
}

#[test]
fn configs_from_the_configmap_and_node_labels_change_only_what_the_new_config_drops() {
    let lab = crate::support::lab::Lab::new("kcfg", &[&[("H100-80GB", 1)]]);
    let node = lab.hosts[0].tag.clone();
    let api = FakeApi::start(operator_cluster(&[(&node, "h100-balanced")]));
    let kc = api.kubeconfig(&lab.hosts[0].dir().join("kubeconfig"));
    let kc = kc.to_str().unwrap();
    let r = lab.run(&k8s_mig(), &["--kubeconfig", kc, "--no-retry-file"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    // A job runs on the 3g.40gb instance; the label names a config that keeps it.
    let (gi3, _) = lab.busy_where(0, 0, 4242, |g| g["profile_id"] == 9);
    api.with(|c| {
        let n = c.nodes.get_mut(&node).unwrap();
        n["metadata"]["labels"]["nvidia.com/mig.config"] = serde_json::json!("h100-small");
    });
    let (destroys, creates) = (
        lab.calls(0, "nvmlGpuInstanceDestroy"),
        lab.calls(0, "CreateGpuInstance"),
    );
    let r = lab.run(&k8s_mig(), &["--kubeconfig", kc, "--no-retry-file"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    assert_eq!(
        gi_profiles(&lab.state(0), 0),
        [9, 19, 19, 19, 19],
        "{}",
        r.shown
    );
    // 2×1g + 2g + 3g → 4×1g + 3g: only the 2g goes, two 1g come; the busy 3g and the
    // two 1g it had stay.
    assert_eq!(
        lab.calls(0, "nvmlGpuInstanceDestroy") - destroys,
        1,
        "{}",
        r.shown
    );
    assert_eq!(
        lab.calls(0, "CreateGpuInstance") - creates,
        2,
        "{}",
        r.shown
    );
    assert!(
        lab.state(0)["gpus"][0]["gpu_instances"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["id"] == gi3)
    );
    api.with(|c| {
        assert_eq!(
            c.label(&node, "nvidia.com/mig.config.state").as_deref(),
            Some("success")
        );
    });
}

fn gi_of(s: &serde_json::Value, gpu: usize, profile_id: u64) -> Vec<(u64, u64)> {
    s["gpus"][gpu]["gpu_instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["profile_id"] == profile_id)
        .map(|g| (g["id"].as_u64().unwrap(), g["start"].as_u64().unwrap()))
        .collect()
}

#[test]
fn pending_pods_demand_makes_their_profiles_appear_while_busy_and_held_instances_stay() {
    let lab = crate::support::lab::Lab::new("kdem", &[&[("H100-80GB", 1)], &[("A100-40GB", 1)]]);
    let (h, a) = (lab.hosts[0].tag.clone(), lab.hosts[1].tag.clone());
    let setup = lab.playbook(
        "setup.lua",
        r#"return { hosts = "all", tasks = {
            { name = "MIG on", mig.mode{ enabled = true } },
            { name = "layout", mig.apply{ layout = {
                ["H100-80GB"] = "2g.20gb@0, 2g.20gb@2, 3g.40gb@4",
                ["A100-40GB"] = "4g.20gb@0" } } },
        } }"#,
    );
    let r = lab.run(&setup, &[]);
    assert_eq!(r.code, 0, "{}", r.shown);
    // H100-80GB: 3g.40gb 9, 2g.20gb 14; A100-40GB: 4g.20gb 5, 1g.10gb 15.
    let (busy_gi, _) = lab.busy_where(0, 0, 4242, |g| g["profile_id"] == 9);
    let (held_gi, _) = gi_of(&lab.state(1), 0, 5)[0];

    let mut c = Cluster::default();
    c.add_node(&h, &[("nvidia.com/gpu.product", "NVIDIA-H100-80GB-HBM3")]);
    c.add_node(&a, &[("nvidia.com/gpu.product", "NVIDIA-A100-SXM4-40GB")]);
    // A running pod holds the A100's idle 4g.20gb: no process on it now, still in use.
    c.add_pod("ml", "held", &a, &[], false, Some(("ReplicaSet", "held")));
    c.pods.get_mut(&("ml".into(), "held".into())).unwrap()["spec"]["containers"][0]["resources"] =
        serde_json::json!({ "limits": { "nvidia.com/mig-4g.20gb": "1" } });
    for p in ["a1", "a2", "a3"] {
        c.add_pending_pod("ml", p, &[("nvidia.com/mig-1g.10gb", 1)], &[], &[]);
    }
    c.add_pending_pod(
        "ml",
        "b",
        &[("nvidia.com/mig-3g.40gb", 1)],
        &[],
        &["NVIDIA-H100-80GB-HBM3"],
    );
    // Cannot fit while the H100 is busy; asks for a node nobody has.
    c.add_pending_pod("ml", "d", &[("nvidia.com/mig-7g.80gb", 1)], &[], &[]);
    c.add_pending_pod(
        "ml",
        "e",
        &[("nvidia.com/mig-1g.10gb", 1)],
        &[("pool", "nowhere")],
        &[],
    );
    let api = FakeApi::start(c);
    let kc = api.kubeconfig(&lab.hosts[0].dir().join("kubeconfig"));
    let kc = kc.to_str().unwrap();
    let demand = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("playbooks/k8s-demand.lua")
        .display()
        .to_string();
    let r = lab.run(&demand, &["--kubeconfig", kc, "--no-retry-file"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    // The H100's 3g.40gb for pod b replaces its two idle 2g.20gb; the A100 serves two of
    // the 1g.10gb around the held 4g.20gb; the third 1g.10gb and pods d, e wait.
    let s0 = lab.state(0);
    assert_eq!(gi_profiles(&s0, 0), [9, 9], "{}", r.shown);
    assert!(gi_of(&s0, 0, 9).contains(&(busy_gi, 4)), "{}", r.shown);
    let s1 = lab.state(1);
    assert_eq!(gi_of(&s1, 0, 5), [(held_gi, 0)], "{}", r.shown);
    assert_eq!(gi_of(&s1, 0, 15).len(), 2, "{}", r.shown);
    assert!(
        r.stdout.contains("to serve 1×3g.40gb for ml/b"),
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains("to serve 2×1g.10gb for ml/a1, ml/a2"),
        "{}",
        r.shown
    );
    assert!(r.stdout.contains("ml/a3, ml/d, ml/e"), "{}", r.shown);

    // The same demand again: what serves it is there; nothing changes.
    let r = lab.run(&demand, &["--kubeconfig", kc, "--no-retry-file"]);
    assert_eq!(r.code, 0, "{}", r.shown);
    for host in [&h, &a] {
        assert!(r.recap(host).contains("changed=0"), "{}", r.shown);
    }
}

#[test]
fn a_run_that_ends_with_a_node_still_pending_sets_it_failed_and_restores_its_operands() {
    let (dir, inv) = fleet("k8sleft");
    let api = FakeApi::start(operator_cluster(&[("gpu-1", "h100-balanced")]));
    let kc = api.kubeconfig(&dir.path().join("kubeconfig"));
    // The playbook forgets the success step: the run itself finishes the node, and says
    // the host failed.
    let r = run(
        dir.path(),
        &inv,
        &kc,
        r#"return { hosts = "n0", tasks = {
            { name = "pending", k8s.gpu_operator{ state = "pending" } },
            { name = "MIG on", mig.mode{ enabled = true } },
        } }"#,
    );
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stdout.contains("was still pending when the run ended"),
        "{}",
        r.shown
    );
    assert!(r.recap("n0").contains("failed=1"), "{}", r.shown);
    assert!(
        r.stdout
            .contains("GPU Operator: nodes still pending set failed, operands restored"),
        "{}",
        r.shown
    );
    api.with(|c| {
        let s = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        assert_eq!(
            label_history(c, "gpu-1", "nvidia.com/mig.config.state"),
            s(&["pending", "failed"])
        );
        assert_eq!(
            label_history(c, "gpu-1", "nvidia.com/gpu.deploy.device-plugin"),
            s(&["paused-for-mig-change", "true"])
        );
    });
}

#[test]
fn k8s_mig_in_check_mode_says_what_it_would_do_and_changes_nothing() {
    let lab = crate::support::lab::Lab::new("kchk", &[&[("H100-80GB", 1)]]);
    let node = lab.hosts[0].tag.clone();
    let api = FakeApi::start(operator_cluster(&[(&node, "h100-balanced")]));
    let kc = api.kubeconfig(&lab.hosts[0].dir().join("kubeconfig"));
    let r = lab.run(
        &k8s_mig(),
        &[
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--no-retry-file",
            "--check",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout
            .contains("would get nvidia.com/mig.config.state=pending"),
        "{}",
        r.shown
    );
    assert!(
        r.stdout.contains("would be cordoned and ml/work-"),
        "{}",
        r.shown
    );
    assert!(gi_profiles(&lab.state(0), 0).is_empty(), "{}", r.shown);
    api.with(|c| {
        assert!(c.changes.is_empty(), "{:?}", c.changes);
        assert!(has_pod(c, "ml", &format!("work-{node}")));
    });
    // Once the config is in place, check mode says so and would touch nothing.
    let r = lab.run(
        &k8s_mig(),
        &["--kubeconfig", kc.to_str().unwrap(), "--no-retry-file"],
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    let r = lab.run(
        &k8s_mig(),
        &[
            "--kubeconfig",
            kc.to_str().unwrap(),
            "--no-retry-file",
            "--check",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.shown);
    assert!(
        r.stdout.contains("its config is already in place"),
        "{}",
        r.shown
    );
    assert!(r.recap(&node).contains("changed=0"), "{}", r.shown);
}
