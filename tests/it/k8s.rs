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
