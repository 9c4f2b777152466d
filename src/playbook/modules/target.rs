//! What `mig.apply` and `mig.assert` aim each GPU at: a `layout`, a `policy` (a Lua
//! function or a named one, called per GPU), or a `mig_parted` config (read and checked
//! when the playbook loads, resolved per host). mig-parted's `mig-devices` are counts, so
//! they become instances without a placement: the planner then keeps whatever instances
//! already match.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use migfleet_mig::spec::v1::{Config, SpecError};
use migfleet_mig::spec::{self, GpuTarget, HostGpu};
use migfleet_mig::{find_model, model_by_pci};
use migfleet_proto::{Facts, GpuFacts, WantedInstance};
use serde_json::Value as Json;

use super::Args;
use crate::playbook::convert::{from_lua_value, to_lua_value};
use crate::playbook::host_view;
use crate::playbook::layout::LayoutSpec;
use crate::playbook::play::FnRef;
use crate::playbook::policy;

/// The target keys; a module takes at most one of them.
pub const KEYS: [&str; 3] = ["layout", "policy", "mig_parted"];

/// mig-parted files read during a run, by path: each is read and parsed once.
#[derive(Debug, Default)]
pub struct ConfigFiles(Mutex<HashMap<PathBuf, Result<Arc<Config>, String>>>);

impl ConfigFiles {
    fn load(&self, path: &Path) -> Result<Arc<Config>, String> {
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let text = crate::input::read_text(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                spec::v1::parse(&text)
                    .map(Arc::new)
                    .map_err(|errs| show(path, &errs))
            })
            .clone()
    }
}

fn show(path: &Path, errs: &[SpecError]) -> String {
    errs.iter()
        .map(|e| format!("{}:{e}", path.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[derive(Clone, Debug)]
pub enum Target {
    Layout(LayoutSpec),
    /// `name` for a named policy (for messages); the function is this Lua state's.
    Policy {
        name: Option<String>,
        func: FnRef,
    },
    MigParted(MigParted),
    /// A mig-parted config known only on the host's turn: from a ConfigMap, or named by
    /// a label of the host's node ([`Target::bind`] makes it a [`Target::MigParted`]).
    Deferred(Deferred),
}

/// Where a mig-parted file comes from.
#[derive(Clone, Debug)]
pub enum PartedSource {
    File {
        path: PathBuf,
        config: Arc<Config>,
    },
    /// `namespace/name` and the key holding the file (the GPU Operator's is
    /// `gpu-operator/default-mig-parted-config`, key `config.yaml`).
    ConfigMap {
        namespace: String,
        name: String,
        key: String,
    },
}

/// Which config of the file a host takes.
#[derive(Clone, Debug)]
pub enum PartedName {
    Fixed(Option<String>),
    /// The value of this label of the host's node (`nvidia.com/mig.config`).
    Label(String),
}

#[derive(Clone, Debug)]
pub struct Deferred {
    pub source: PartedSource,
    pub name: PartedName,
}

/// A named config of a mig-parted file.
#[derive(Clone, Debug)]
pub struct MigParted {
    pub path: PathBuf,
    pub config: Arc<Config>,
    /// Index of the named config in `config.configs`.
    pub index: usize,
}

impl MigParted {
    /// The config `name` of the file (`None`: its only one), or why there is none such.
    fn named(path: PathBuf, config: Arc<Config>, name: Option<&str>) -> Result<MigParted, String> {
        let named = spec::select(&config, name).map_err(|e| show(&path, &[e]))?;
        let index = config
            .configs
            .iter()
            .position(|c| std::ptr::eq(c, named))
            .unwrap_or(0);
        Ok(MigParted {
            path,
            config,
            index,
        })
    }

    pub fn name(&self) -> &str {
        self.config
            .configs
            .get(self.index)
            .map_or("", |c| c.name.value.as_str())
    }
}

/// What a target asks of one GPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// Leave it as it is.
    Leave,
    /// MIG on, with these instances.
    Layout(Vec<WantedInstance>),
    /// MIG off (a mig-parted entry with `mig-enabled: false`).
    MigOff,
}

impl Target {
    /// The target among a module's arguments; exactly one of them when `required`.
    pub fn parse(a: &Args<'_>, required: bool) -> Result<Option<Target>, String> {
        let given: Vec<&str> = KEYS.iter().copied().filter(|k| a.has(k)).collect();
        match given.as_slice() {
            [] if required => {
                return Err(format!(
                    "{}: give one of layout = {{...}}, policy = \"name\" or a function, or mig_parted = {{ file = ..., config = ... }}",
                    a.name()
                ));
            }
            [] => return Ok(None),
            [_] => {}
            _ => {
                return Err(format!(
                    "{}: give only one of {} (found {})",
                    a.name(),
                    KEYS.join(", "),
                    given.join(" and ")
                ));
            }
        }
        if a.has("layout") {
            let v = a.json("layout")?.unwrap_or(Json::Null);
            let spec = LayoutSpec::parse(&v).map_err(|e| format!("{}: layout: {e}", a.name()))?;
            // `layout = nil` is absent; anything parsed is a layout.
            return Ok(spec.map(Target::Layout));
        }
        if a.has("policy") {
            if let Some(func) = a.function("policy")? {
                return Ok(Some(Target::Policy { name: None, func }));
            }
            let Some(name) = a.string("policy").map_err(|_| {
                format!(
                    "{}: `policy` must be a policy name or a function(gpu, ctx)",
                    a.name()
                )
            })?
            else {
                return Ok(None);
            };
            // A named policy is found and compiled now, so a missing or broken one
            // fails the load (and --syntax-check), not a host halfway through a run.
            let func = policy::load(a.cx.lua, a.cx.policies, &name)
                .map_err(|e| format!("{}: policy: {e}", a.name()))?;
            return Ok(Some(Target::Policy {
                name: Some(name),
                func: FnRef::new(func),
            }));
        }
        parse_mig_parted(a).map(Some)
    }

    /// A target ready for [`Target::resolve`] on this host: a deferred mig-parted config
    /// is read (a ConfigMap once per run) and named (from the node's label) now.
    pub fn bind(
        &self,
        cx: &super::TaskCx<'_>,
    ) -> impl std::future::Future<Output = Result<Target, String>> + Send + 'static {
        let this = self.clone();
        let node = cx
            .conn
            .k8s_node
            .clone()
            .unwrap_or_else(|| cx.host.to_string());
        let k8s = cx.k8s.clone();
        async move { this.bind_node(&k8s, &node).await }
    }

    async fn bind_node(&self, k8s: &crate::k8s::K8s, node: &str) -> Result<Target, String> {
        let Target::Deferred(d) = self else {
            return Ok(self.clone());
        };
        let (path, config) = match &d.source {
            PartedSource::File { path, config } => (path.clone(), config.clone()),
            PartedSource::ConfigMap {
                namespace,
                name,
                key,
            } => {
                let client = k8s.client().await?;
                let shown = PathBuf::from(format!("configmap {namespace}/{name}[{key}]"));
                let config = k8s
                    .config_map_cached(&client, namespace, name, key, |text| {
                        spec::v1::parse(text)
                            .map(Arc::new)
                            .map_err(|errs| show(&shown, &errs))
                    })
                    .await?;
                (shown, config)
            }
        };
        let name = match &d.name {
            PartedName::Fixed(n) => n.clone(),
            PartedName::Label(key) => {
                let client = k8s.client().await?;
                match crate::k8s::node_label(&client, node, key).await? {
                    Some(v) if !v.is_empty() => Some(v),
                    _ => {
                        return Err(format!(
                            "node {node} has no `{key}` label naming its mig-parted config"
                        ));
                    }
                }
            }
        };
        MigParted::named(path, config, name.as_deref()).map(Target::MigParted)
    }

    /// What the target asks of each of `gpus` on a host with `facts` (policies see the
    /// host as `view`, and their errors point at their own `file:line`).
    pub fn resolve(
        &self,
        lua: &mlua::Lua,
        facts: &Facts,
        view: &Json,
        gpus: &[&GpuFacts],
    ) -> Result<Vec<(u32, Wanted)>, String> {
        match self {
            Target::Layout(spec) => Ok(gpus
                .iter()
                .map(|g| {
                    let w = match spec.for_gpu(g.model.as_deref()) {
                        Some(l) => Wanted::Layout(l.to_vec()),
                        None => Wanted::Leave,
                    };
                    (g.index, w)
                })
                .collect()),
            Target::Policy { name, func } => {
                let mut out = Vec::new();
                for g in gpus {
                    let which = match name {
                        Some(n) => format!("policy '{n}'"),
                        None => format!("policy at {}", func.pos),
                    };
                    let lv = |v: &Json| to_lua_value(lua, v).map_err(|e| e.to_string());
                    let ret: mlua::Value = func
                        .call(lua, (lv(&host_view::gpu(g))?, lv(view)?))
                        .map_err(|e| format!("{which} for GPU {}: {e}", g.index))?;
                    let v = from_lua_value(ret)
                        .map_err(|e| format!("{which} for GPU {} returned {e}", g.index))?;
                    let spec = LayoutSpec::parse(&v)
                        .map_err(|e| format!("{which} for GPU {} returned {e}", g.index))?;
                    let w = match spec.as_ref().and_then(|s| s.for_gpu(g.model.as_deref())) {
                        Some(l) => Wanted::Layout(l.to_vec()),
                        None => Wanted::Leave,
                    };
                    out.push((g.index, w));
                }
                Ok(out)
            }
            Target::MigParted(mp) => mp.resolve(facts, gpus),
            Target::Deferred(_) => Err("the mig-parted config was not read for this host".into()),
        }
    }

    /// [`Target::resolve`] for a task: a policy runs off the async workers, bounded (a
    /// policy stuck where its budget cannot reach is given up on: `Err`).
    pub fn resolve_for(
        &self,
        cx: &super::TaskCx<'_>,
        facts: &Facts,
        view: &Json,
        gpus: &[&GpuFacts],
    ) -> impl std::future::Future<
        Output = Result<Result<Vec<(u32, Wanted)>, String>, crate::playbook::offload::Stuck>,
    > + Send
    + 'static {
        let inline = (!matches!(self, Target::Policy { .. }))
            .then(|| self.resolve(cx.lua, facts, view, gpus));
        let (target, lua, facts, view) =
            (self.clone(), cx.lua.clone(), facts.clone(), view.clone());
        let indices: Vec<u32> = gpus.iter().map(|g| g.index).collect();
        let limit = crate::playbook::offload::deadline(cx.limits, indices.len());
        async move {
            if let Some(r) = inline {
                return Ok(r);
            }
            Self::resolve_offloaded(target, lua, facts, view, indices, limit).await
        }
    }

    async fn resolve_offloaded(
        target: Target,
        lua: mlua::Lua,
        facts: Facts,
        view: Json,
        indices: Vec<u32>,
        limit: std::time::Duration,
    ) -> Result<Result<Vec<(u32, Wanted)>, String>, crate::playbook::offload::Stuck> {
        let r = crate::playbook::offload::run(limit, move || {
            let gpus: Vec<&GpuFacts> = facts
                .gpus
                .iter()
                .filter(|g| indices.contains(&g.index))
                .collect();
            target.resolve(&lua, &facts, &view, &gpus)
        })
        .await?;
        Ok(r.and_then(|r| r))
    }

    /// `mig_parted` targets turn MIG on and off themselves; the others need it on.
    pub fn sets_mode(&self) -> bool {
        matches!(self, Target::MigParted(_) | Target::Deferred(_))
    }
}

const PARTED_KEYS: [&str; 5] = ["file", "configmap", "key", "config", "label"];

fn parse_mig_parted(a: &Args<'_>) -> Result<Target, String> {
    let usage = "`mig_parted` must be a table { file = \"path\" or configmap = \"namespace/name\", config = \"name\" or label = \"nvidia.com/mig.config\" }";
    let v = a.json("mig_parted")?;
    let Some(Json::Object(m)) = v else {
        return Err(format!("{}: {usage}", a.name()));
    };
    for k in m.keys() {
        if !PARTED_KEYS.contains(&k.as_str()) {
            let hint = super::closest(k, PARTED_KEYS)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "{}: unknown key `{k}` in mig_parted{hint}; keys: {}",
                a.name(),
                PARTED_KEYS.join(", ")
            ));
        }
    }
    let text = |k: &str| -> Result<Option<&str>, String> {
        match m.get(k) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(s)) if !s.is_empty() => Ok(Some(s.as_str())),
            Some(_) => Err(format!(
                "{}: mig_parted.{k} must be a non-empty string",
                a.name()
            )),
        }
    };
    let source = match (text("file")?, text("configmap")?) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{}: mig_parted takes file or configmap, not both",
                a.name()
            ));
        }
        (None, None) => {
            return Err(format!(
                "{}: mig_parted needs file = \"path\" or configmap = \"namespace/name\"",
                a.name()
            ));
        }
        (Some(file), None) => {
            if text("key")?.is_some() {
                return Err(format!(
                    "{}: mig_parted.key is the ConfigMap's key; it goes with configmap",
                    a.name()
                ));
            }
            let path = {
                let p = PathBuf::from(file);
                let beside = a.cx.base_dir.join(&p);
                if p.is_absolute() || p.exists() || !beside.exists() {
                    p
                } else {
                    beside
                }
            };
            let config = a.cx.configs.load(&path)?;
            PartedSource::File { path, config }
        }
        (None, Some(cm)) => {
            let Some((namespace, name)) = cm
                .split_once('/')
                .filter(|(n, c)| !n.is_empty() && !c.is_empty() && !c.contains('/'))
            else {
                return Err(format!(
                    "{}: mig_parted.configmap is \"namespace/name\" (e.g. \"gpu-operator/default-mig-parted-config\"), got \"{cm}\"",
                    a.name()
                ));
            };
            PartedSource::ConfigMap {
                namespace: namespace.to_string(),
                name: name.to_string(),
                key: text("key")?.unwrap_or("config.yaml").to_string(),
            }
        }
    };
    let name = match (text("config")?, text("label")?) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "{}: mig_parted takes config (a name) or label (the node label naming it), not both",
                a.name()
            ));
        }
        (Some(c), None) => PartedName::Fixed(Some(c.to_string())),
        (None, Some(l)) => {
            if !super::k8s::label_key_ok(l) {
                return Err(format!(
                    "{}: mig_parted.label `{l}` is not a valid label key",
                    a.name()
                ));
            }
            PartedName::Label(l.to_string())
        }
        (None, None) => PartedName::Fixed(None),
    };
    match (source, name) {
        // Known now: checked now, so a wrong name fails the load, not a host.
        (PartedSource::File { path, config }, PartedName::Fixed(name)) => {
            MigParted::named(path, config, name.as_deref()).map(Target::MigParted)
        }
        (source, name) => Ok(Target::Deferred(Deferred { source, name })),
    }
}

impl MigParted {
    /// mig-parted's rules for one host: the last matching entry decides each GPU; its
    /// `mig-devices` are counts (no placements: instances that already match stay).
    fn resolve(&self, facts: &Facts, gpus: &[&GpuFacts]) -> Result<Vec<(u32, Wanted)>, String> {
        let Some(named) = self.config.configs.get(self.index) else {
            return Err("the mig-parted config went missing".into());
        };
        let host: Vec<HostGpu> = facts
            .gpus
            .iter()
            .map(|g| HostGpu {
                index: g.index,
                device_id: g.pci.device_id,
                vendor_id: g.pci.vendor_id,
                subsystem: Some((g.pci.subsystem_device_id, g.pci.subsystem_vendor_id)),
                model: model_by_pci(g.pci.device_id).filter(|_| g.mig.is_some()),
            })
            .collect();
        let resolved = spec::resolve(named, &host).map_err(|errs| show(&self.path, &errs))?;
        let mut out = Vec::new();
        for r in resolved {
            if !gpus.iter().any(|g| g.index == r.index) {
                continue;
            }
            let w = match &r.target {
                GpuTarget::Untouched => Wanted::Leave,
                GpuTarget::Disabled => Wanted::MigOff,
                GpuTarget::Enabled { layout, .. } => {
                    let Some(model) = r.model.and_then(|m| find_model(m).ok()) else {
                        continue;
                    };
                    Wanted::Layout(
                        layout
                            .iter()
                            .map(|p| WantedInstance {
                                profile: model.profile(p.profile).name.to_string(),
                                start: None,
                                cis: Some(p.cis.clone()),
                            })
                            .collect(),
                    )
                }
            };
            out.push((r.index, w));
        }
        Ok(out)
    }
}
