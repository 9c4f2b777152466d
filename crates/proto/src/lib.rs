//! The one contract between the controller and the agent: NDJSON over the agent's stdin and
//! stdout. Serde types and the line codec only; no I/O.
//!
//! Each request is one line `{"id": N, "op": "...", ...}`. The agent answers with zero or
//! more `{"id": N, "event": {...}}` lines and exactly one `{"id": N, "ok": {...}}` or
//! `{"id": N, "err": {...}}` line. A line the agent cannot read gets an `err` with
//! `"id": null`, and the agent carries on.

use migfleet_mig::plan::Op as NvmlOp;
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; `hello` reports it and the controller checks it.
/// 2: per-GPU outcomes (`blocked`) and `on_busy` for `apply` and `set_mig_mode`; `apply`
/// reports placed instances before and after and takes `assume` for dry runs.
pub const PROTOCOL_VERSION: u32 = 3;

/// The longest reply line the controller reads from the agent; a longer one is a protocol
/// error, not an allocation without end. Facts of 8 GPUs with 7 instances each are about
/// 60 KiB.
pub const MAX_REPLY_LINE_BYTES: usize = 16 << 20;

/// The longest request line the agent reads; longer lines are refused, not buffered.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Environment variable naming the NVML library to load when a request names none.
pub const ENV_NVML_LIB: &str = "MIGFLEET_NVML_LIB";

/// The library loaded when neither the request nor [`ENV_NVML_LIB`] names one.
pub const DEFAULT_NVML_LIB: &str = "libnvidia-ml.so.1";

/// Environment variable naming the file the boot id is read from (default
/// `/proc/sys/kernel/random/boot_id`); the simulator points it at its own.
pub const ENV_BOOT_ID_FILE: &str = "MIGFLEET_BOOT_ID_FILE";

/// Environment variable with the `systemctl` command the agent uses for drain/restore when
/// a request names none (whitespace-separated argv).
pub const ENV_SYSTEMCTL: &str = "MIGFLEET_SYSTEMCTL";

/// Environment variable naming the directory where the agent remembers what `drain`
/// stopped, so that `restore` in a later agent process can restart it.
pub const ENV_STATE_DIR: &str = "MIGFLEET_STATE_DIR";

/// One request line. Decoded by [`decode_request`], which rejects unknown fields (serde's
/// own `flatten` cannot).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    pub id: u64,
    /// NVML library to use for this request (and cached for later ones naming the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvml_lib: Option<String>,
    #[serde(flatten)]
    pub op: Op,
}

/// What to do. Every operation on GPUs names them by NVML index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Versions, architecture, hostname, boot id.
    Hello,
    /// Every GPU: identity, memory, MIG mode, instances, processes, the driver's profile
    /// table and where it disagrees with the catalog.
    Facts,
    /// Turn MIG on or off on the listed GPUs (all when empty). Turning it off destroys the
    /// GPU's instances first, refusing if any is in use.
    SetMigMode {
        #[serde(default)]
        gpus: Vec<u32>,
        enabled: bool,
        /// When turning MIG off, GPUs whose instances have processes: skip them (their
        /// result says why) or change no GPU at all.
        #[serde(default)]
        on_busy: OnBusy,
    },
    /// Reset exactly the listed GPUs with `command` (argv; `{bus_ids}` in an argument is
    /// replaced by the comma-separated PCI bus ids). Default:
    /// `nvidia-smi --gpu-reset -i {bus_ids}`.
    ResetGpus {
        gpus: Vec<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<Vec<String>>,
    },
    /// Make each listed GPU's instances match its layout with the fewest NVML operations.
    Apply {
        gpus: Vec<GpuLayout>,
        /// Plan only: return the operations, change nothing.
        #[serde(default)]
        dry_run: bool,
        /// Let the plan destroy instances that have processes (NVML still refuses while
        /// they run). Off unless asked for.
        #[serde(default)]
        allow_destroy_in_use: bool,
        /// GPUs whose plan would destroy an instance in use: skip them (their result says
        /// why) and change the others, or change no GPU at all.
        #[serde(default)]
        on_busy: OnBusy,
        /// Dry runs only: plan the listed GPUs from these instances instead of what NVML
        /// reports (check mode: the state earlier tasks would have left).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assume: Vec<AssumedGpu>,
    },
    /// Stop the listed systemd units that are active (remembering them), then wait until
    /// no compute process remains on the listed GPUs.
    Drain {
        #[serde(default)]
        units: Vec<String>,
        #[serde(default)]
        gpus: Vec<u32>,
        #[serde(default = "default_drain_timeout")]
        timeout_s: u64,
        /// Send this signal (`TERM`, `KILL`, ...) to the remaining GPU processes; without
        /// it they are only waited for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
        /// `systemctl` argv prefix; default `["systemctl"]`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        systemctl: Option<Vec<String>>,
    },
    /// Start again what `drain` stopped.
    Restore {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        systemctl: Option<Vec<String>>,
    },
    /// Reboot the host, detached, after the reply is written. Default `systemctl reboot`.
    Reboot {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<Vec<String>>,
    },
    /// Install (with `target`) or remove (without) what restores MIG mode and layouts at
    /// boot: the target file, a copy of this agent beside it, and a systemd oneshot unit
    /// that runs it before the GPU clients start; idempotent.
    Persist {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Persisted>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        systemctl: Option<Vec<String>>,
    },
    /// Take the host's lock for the rest of this agent process, waiting at most `wait_s`
    /// for another session that holds it; `holder` says who we are to the one who waits.
    /// Operations that change the host take it themselves (without waiting) when the
    /// session did not.
    Lock {
        holder: String,
        #[serde(default)]
        wait_s: u64,
    },
}

fn default_drain_timeout() -> u64 {
    300
}

/// What a request does about GPUs that instances in use keep from changing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBusy {
    /// Change the other GPUs; the blocked ones come back with [`Blocked`] set.
    #[default]
    SkipGpu,
    /// Change nothing on any GPU: an `in_use` error naming every blocker.
    FailHost,
}

impl OnBusy {
    /// The spelling in requests and playbooks.
    pub fn name(self) -> &'static str {
        match self {
            OnBusy::SkipGpu => "skip_gpu",
            OnBusy::FailHost => "fail_host",
        }
    }

    pub const NAMES: [&'static str; 2] = ["skip_gpu", "fail_host"];

    pub fn from_name(name: &str) -> Option<OnBusy> {
        match name {
            "skip_gpu" => Some(OnBusy::SkipGpu),
            "fail_host" => Some(OnBusy::FailHost),
            _ => None,
        }
    }
}

/// A GPU's instances as a dry run should assume them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumedGpu {
    pub index: u32,
    pub instances: Vec<PlacedInstance>,
}

/// A GPU instance at its placement, with its compute instances' sizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacedInstance {
    /// The GI id, for instances that exist (or, in a dry run, would still exist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gi_id: Option<u32>,
    pub profile: String,
    pub start: u8,
    /// Compute-instance sizes (compute slices), largest first.
    pub cis: Vec<u8>,
    /// Some compute instance of it has processes.
    #[serde(default)]
    pub busy: bool,
    /// How people read it: `3g.40gb@4`, `3g.40gb@4[2c,1c]`.
    #[serde(default)]
    pub label: String,
}

/// Why a GPU was left as it was: instances in use stand in the way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// For people: the instances, their processes, and what to do.
    pub message: String,
    pub instances: Vec<BusyInstance>,
}

/// An instance in use that a change would have to destroy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusyInstance {
    pub gi_id: u32,
    /// `3g.40gb@4`.
    pub label: String,
    pub pids: Vec<u32>,
}

impl Op {
    /// The op's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Hello => "hello",
            Op::Facts => "facts",
            Op::SetMigMode { .. } => "set_mig_mode",
            Op::ResetGpus { .. } => "reset_gpus",
            Op::Apply { .. } => "apply",
            Op::Drain { .. } => "drain",
            Op::Restore { .. } => "restore",
            Op::Reboot { .. } => "reboot",
            Op::Lock { .. } => "lock",
            Op::Persist { .. } => "persist",
        }
    }

    /// The op may change the host (GPUs, services, the machine itself): it runs under the
    /// host's lock.
    pub fn changes_host(&self) -> bool {
        match self {
            Op::Hello | Op::Facts | Op::Lock { .. } => false,
            Op::Apply { dry_run, .. } => !dry_run,
            Op::SetMigMode { .. }
            | Op::ResetGpus { .. }
            | Op::Drain { .. }
            | Op::Restore { .. }
            | Op::Reboot { .. }
            | Op::Persist { .. } => true,
        }
    }

    /// Every op name, for error messages.
    pub const NAMES: [&'static str; 10] = [
        "hello",
        "facts",
        "set_mig_mode",
        "reset_gpus",
        "apply",
        "drain",
        "restore",
        "reboot",
        "lock",
        "persist",
    ];
}

/// What a host is restored to at boot (`persist`): per GPU its MIG mode and instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persisted {
    /// The NVML library to load at boot (the one this run used), if not the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nvml_lib: Option<String>,
    /// Systemd units stopped before the restore (when it runs after they started) and
    /// started after it; at boot they are ordered after it.
    #[serde(default)]
    pub units: Vec<String>,
    /// The agent's environment from the inventory (`migfleet_agent_env`): the boot-time
    /// restore runs with it too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    pub gpus: Vec<PersistedGpu>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedGpu {
    pub index: u32,
    /// The GPU the layout belongs to: a GPU at this index with another UUID is left alone.
    pub uuid: String,
    pub mig_enabled: bool,
    pub instances: Vec<WantedInstance>,
}

impl PersistedGpu {
    /// A MIG-capable GPU's live state as a boot-time target: its mode and, with MIG on,
    /// its instances by placement with their compute-instance sizes.
    pub fn of(g: &GpuFacts) -> Option<PersistedGpu> {
        let m = g.mig.as_ref()?;
        let mut instances: Vec<&GpuInstance> = m.instances.iter().collect();
        instances.sort_by_key(|i| i.start);
        Some(PersistedGpu {
            index: g.index,
            uuid: g.uuid.clone(),
            mig_enabled: m.current,
            instances: if m.current {
                instances
                    .into_iter()
                    .map(|i| WantedInstance {
                        profile: i.profile.clone(),
                        start: Some(i.start),
                        cis: Some(i.cis.iter().map(|c| c.slices).collect()),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        })
    }
}

impl Persisted {
    /// The host's live MIG state as a boot-time target.
    pub fn of(
        facts: &Facts,
        nvml_lib: Option<String>,
        units: &[String],
        env: &[(String, String)],
    ) -> Persisted {
        Persisted {
            nvml_lib,
            units: units.to_vec(),
            env: env.to_vec(),
            gpus: facts.gpus.iter().filter_map(PersistedGpu::of).collect(),
        }
    }
}

/// The wanted layout of one GPU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuLayout {
    pub index: u32,
    pub instances: Vec<WantedInstance>,
}

/// One wanted GPU instance: a profile name as the driver spells it on that GPU, an
/// optional pinned placement, optional compute-instance sizes (default: one full CI).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WantedInstance {
    pub profile: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cis: Option<Vec<u8>>,
}

/// One line from the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id; `None` when the line could not be read far enough to know it.
    pub id: Option<u64>,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    Event(Event),
    Ok(Reply),
    Err(ErrorReply),
}

/// Progress while a request runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// One NVML operation of an `apply`, done.
    Nvml {
        gpu: u32,
        step: usize,
        of: usize,
        op: NvmlOp,
    },
    /// Free text about a longer wait (drain, reset).
    Progress { message: String },
}

/// A final success, shaped per op.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    Hello(Hello),
    Facts(Facts),
    SetMigMode { gpus: Vec<ModeResult> },
    ResetGpus { gpus: Vec<ModeResult> },
    Apply { gpus: Vec<ApplyResult> },
    Drain(DrainResult),
    Restore { started: Vec<String> },
    Reboot { boot_id: String },
    Lock { waited_ms: u64 },
    Persist { changed: bool, files: Vec<String> },
}

/// A final failure. `kind` is stable for programs; `message` is for people and names the
/// GPU, instance and PIDs involved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
    /// For `apply`: the operations that were carried out before the failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<NvmlOp>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The line was not a request (bad JSON, unknown op, missing field, too long).
    BadRequest,
    /// The NVML library could not be loaded, lacks a function, or failed.
    Nvml,
    /// The request would destroy an instance with processes.
    InUse,
    /// The request is impossible on this GPU (unknown profile, layout does not fit).
    Invalid,
    /// A command the agent ran (reset, systemctl, reboot) failed.
    Command,
    /// Waiting for GPU processes to finish timed out.
    Timeout,
    /// Another session holds the host's lock (the message names it).
    Locked,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub agent_version: String,
    pub protocol_version: u32,
    pub arch: String,
    pub hostname: String,
    pub boot_id: String,
    pub pid: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    pub driver_version: String,
    pub gpus: Vec<GpuFacts>,
    /// What `persist` installed for boot, if anything (it may differ from the live state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted: Option<Persisted>,
    /// Where the driver's profile tables and migfleet's catalog disagree: once per model
    /// (the driver is the host's), naming the GPUs, not once per GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub catalog: Vec<CatalogReport>,
}

/// One model's differences from the catalog on one driver. The driver's table wins; this
/// says what the catalog would have planned differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogReport {
    pub model: String,
    pub driver_version: String,
    /// The GPUs of this model that show these differences.
    pub gpus: Vec<u32>,
    pub differences: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuFacts {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// The catalog model recognised from the PCI device id, if any.
    pub model: Option<String>,
    pub pci: PciIds,
    pub memory_mib: u64,
    /// `None` when the GPU cannot do MIG.
    pub mig: Option<MigFacts>,
    /// Compute processes on the whole GPU (outside MIG).
    pub processes: Vec<Process>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciIds {
    pub bus_id: String,
    pub device_id: u16,
    pub vendor_id: u16,
    pub subsystem_device_id: u16,
    pub subsystem_vendor_id: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MigFacts {
    pub current: bool,
    pub pending: bool,
    pub instances: Vec<GpuInstance>,
    /// The driver's profile table for this GPU (it wins over the catalog; differences are
    /// in [`Facts::catalog`]).
    pub profiles: Vec<HostProfile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GpuInstance {
    pub gi_id: u32,
    pub profile: String,
    pub profile_id: u32,
    pub start: u8,
    pub size: u8,
    pub cis: Vec<ComputeInstance>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComputeInstance {
    pub ci_id: u32,
    pub profile: String,
    pub slices: u8,
    /// The MIG device UUID (`MIG-...`) workloads use in `CUDA_VISIBLE_DEVICES`.
    pub uuid: Option<String>,
    pub processes: Vec<Process>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub used_mib: u64,
}

/// One GPU-instance profile as the driver reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostProfile {
    pub name: String,
    /// NVML index constant.
    pub nvml: u32,
    /// The driver's unique profile id.
    pub id: u32,
    pub compute_slices: u8,
    pub memory_slices: u8,
    /// Size of one instance in the GPU's NVML placement units (the memory slices on most
    /// GPUs; three units per slice on the RTX PRO 6000).
    #[serde(default)]
    pub placement_size: u8,
    pub memory_mib: u64,
    pub sm_count: u32,
    pub max_instances: u8,
    /// Placement starts, in placement units.
    pub starts: Vec<u8>,
    /// `plain`, `media-extensions`, `double-memory`, `graphics`, `no-media`, `all-media`.
    #[serde(default)]
    pub kind: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeResult {
    pub index: u32,
    pub current: bool,
    pub pending: bool,
    /// The mode did not change yet: a GPU reset (Ampere) or reboot is needed.
    pub needs_reset: bool,
    pub changed: bool,
    /// Instances destroyed to turn MIG off.
    #[serde(default)]
    pub destroyed: usize,
    /// Set when the GPU was skipped because instances in use stand in the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyResult {
    pub index: u32,
    /// The NVML operations carried out (or, in a dry run, planned), in order.
    pub ops: Vec<NvmlOp>,
    pub changed: bool,
    /// The instances before, by placement.
    pub before: Vec<PlacedInstance>,
    /// The instances afterwards (or, in a dry run, those the plan leads to), by placement.
    pub after: Vec<PlacedInstance>,
    /// Set when the GPU was left alone because instances in use stand in the way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainResult {
    /// Units that were active and are now stopped (remembered for `restore`).
    pub stopped: Vec<String>,
    /// PIDs signalled.
    pub signalled: Vec<u32>,
    pub waited_ms: u64,
}

/// Encodes one response as a line (without the newline).
pub fn encode(response: &Response) -> String {
    // A Response holds only strings, numbers and enums: encoding cannot fail. Fall back to a
    // fixed error line rather than panic, in case a future field breaks that.
    serde_json::to_string(response).unwrap_or_else(|_| {
        r#"{"id":null,"err":{"kind":"bad_request","message":"response could not be encoded"}}"#
            .to_string()
    })
}

/// Decodes one request line. On failure returns the id if the line had one, and a
/// message for people.
pub fn decode_request(line: &str) -> Result<Request, (Option<u64>, String)> {
    let value = serde_json::from_str::<Unambiguous>(line)
        .map_err(|e| (None, format!("not JSON: {e}")))?
        .0;
    let serde_json::Value::Object(mut map) = value else {
        return Err((None, "a request is a JSON object".to_string()));
    };
    let id = match map.remove("id") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        _ => None,
    }
    .ok_or((
        None,
        "a request needs a non-negative integer `id`".to_string(),
    ))?;
    let nvml_lib = match map.remove("nvml_lib") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => return Err((Some(id), "`nvml_lib` must be a string".to_string())),
    };
    let op_name = map.get("op").and_then(|o| o.as_str()).map(String::from);
    match op_name {
        None => {
            return Err((
                Some(id),
                format!("a request needs an `op`; ops: {}", Op::NAMES.join(", ")),
            ));
        }
        Some(op) if !Op::NAMES.contains(&op.as_str()) => {
            return Err((
                Some(id),
                format!("unknown op `{op}`; ops: {}", Op::NAMES.join(", ")),
            ));
        }
        Some(_) => {}
    }
    // Serde lets fields through on the ops that take none (unit variants of a tagged
    // enum); every op refuses what it does not know.
    if matches!(op_name.as_deref(), Some("hello" | "facts"))
        && let Some(k) = map.keys().find(|k| *k != "op")
    {
        return Err((
            Some(id),
            format!(
                "bad `{}` request: unknown field `{k}`; it takes no fields",
                op_name.unwrap_or_default()
            ),
        ));
    }
    let bad = |e: String| {
        (
            Some(id),
            format!(
                "bad `{}` request: {e}",
                op_name.as_deref().unwrap_or_default()
            ),
        )
    };
    let op: Op =
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| bad(e.to_string()))?;
    op.gpus_named_once().map_err(bad)?;
    Ok(Request { id, nvml_lib, op })
}

impl Op {
    /// A GPU listed twice in one request is a mistake (which layout, which order?), not
    /// something to do twice.
    fn gpus_named_once(&self) -> Result<(), String> {
        let (what, indices): (&str, Vec<u32>) = match self {
            Op::SetMigMode { gpus, .. } | Op::ResetGpus { gpus, .. } | Op::Drain { gpus, .. } => {
                ("gpus", gpus.clone())
            }
            Op::Apply { gpus, assume, .. } => {
                let mut seen = std::collections::BTreeSet::new();
                if let Some(a) = assume.iter().find(|a| !seen.insert(a.index)) {
                    return Err(format!("GPU {} is listed twice in `assume`", a.index));
                }
                ("gpus", gpus.iter().map(|g| g.index).collect())
            }
            Op::Persist { target, .. } => (
                "target.gpus",
                target
                    .as_ref()
                    .map(|t| t.gpus.iter().map(|g| g.index).collect())
                    .unwrap_or_default(),
            ),
            Op::Hello | Op::Facts | Op::Restore { .. } | Op::Reboot { .. } | Op::Lock { .. } => {
                return Ok(());
            }
        };
        let mut seen = std::collections::BTreeSet::new();
        match indices.iter().find(|i| !seen.insert(**i)) {
            Some(i) => Err(format!("GPU {i} is listed twice in `{what}`")),
            None => Ok(()),
        }
    }
}

/// A JSON value whose objects have no key twice, at any depth. `serde_json::Value` keeps
/// the last of duplicate keys silently, so `{"op":"hello","op":"apply"}` would be read
/// as whichever its parser prefers: a request that says two things is refused instead.
struct Unambiguous(serde_json::Value);

impl<'de> Deserialize<'de> for Unambiguous {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, SeqAccess, Visitor};
        use serde_json::Value;
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Unambiguous;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::from(n)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::String(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::String(s)))
            }
            fn visit_unit<E>(self) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::Null))
            }
            fn visit_none<E>(self) -> Result<Unambiguous, E> {
                Ok(Unambiguous(Value::Null))
            }
            fn visit_some<D: serde::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Unambiguous, D::Error> {
                Unambiguous::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unambiguous, A::Error> {
                let mut items = Vec::new();
                while let Some(Unambiguous(v)) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Unambiguous(Value::Array(items)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unambiguous, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let Unambiguous(v) = map.next_value()?;
                    if out.contains_key(&key) {
                        return Err(de::Error::custom(format!("key `{key}` appears twice")));
                    }
                    out.insert(key, v);
                }
                Ok(Unambiguous(Value::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_in_the_documented_shape() {
        let line = r#"{"id":7,"op":"apply","gpus":[{"index":0,"instances":[{"profile":"3g.40gb","start":4},{"profile":"1g.10gb"}]}],"dry_run":true}"#;
        let req = decode_request(line).unwrap();
        assert_eq!(req.id, 7);
        let Op::Apply {
            gpus,
            dry_run,
            allow_destroy_in_use,
            ..
        } = &req.op
        else {
            panic!("not apply: {req:?}");
        };
        assert!(*dry_run && !*allow_destroy_in_use);
        assert_eq!(gpus[0].instances[0].start, Some(4));
        let back = decode_request(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn responses_are_tagged_by_kind() {
        let r = Response {
            id: Some(3),
            body: Body::Ok(Reply::Restore {
                started: vec!["dcgm.service".into()],
            }),
        };
        assert_eq!(
            encode(&r),
            r#"{"id":3,"ok":{"op":"restore","started":["dcgm.service"]}}"#
        );
        let e = Response {
            id: None,
            body: Body::Err(ErrorReply {
                kind: ErrorKind::BadRequest,
                message: "x".into(),
                gpu: None,
                done: vec![],
            }),
        };
        assert_eq!(
            encode(&e),
            r#"{"id":null,"err":{"kind":"bad_request","message":"x"}}"#
        );
    }

    #[test]
    fn bad_lines_are_explained_with_the_id_when_known() {
        assert_eq!(
            decode_request(r#"{"id":4,"op":"format_disk"}"#).unwrap_err(),
            (
                Some(4),
                "unknown op `format_disk`; ops: hello, facts, set_mig_mode, reset_gpus, apply, drain, restore, reboot, lock, persist".to_string()
            )
        );
        let (id, msg) = decode_request("{not json").unwrap_err();
        assert_eq!(id, None);
        assert!(msg.starts_with("not JSON"), "{msg}");
        let (id, msg) =
            decode_request(r#"{"id":5,"op":"set_mig_mode","enabled":true,"extra":1}"#).unwrap_err();
        assert_eq!(id, Some(5));
        assert!(msg.contains("unknown field `extra`"), "{msg}");
        let (id, msg) = decode_request(r#"{"id":6,"op":"set_mig_mode"}"#).unwrap_err();
        assert_eq!(id, Some(6));
        assert!(msg.contains("missing field `enabled`"), "{msg}");
        let (id, _) = decode_request(r#"[1,2]"#).unwrap_err();
        assert_eq!(id, None);
        // Every op refuses unknown fields, those without fields too.
        for line in [
            r#"{"id":7,"op":"hello","x":1}"#,
            r#"{"id":7,"op":"facts","gpus":[0]}"#,
            r#"{"id":7,"op":"restore","x":1}"#,
            r#"{"id":7,"op":"apply","gpus":[],"x":1}"#,
        ] {
            let (id, msg) = decode_request(line).unwrap_err();
            assert_eq!(id, Some(7), "{line}");
            assert!(msg.contains("unknown field"), "{line}: {msg}");
        }
    }

    #[test]
    fn ambiguous_requests_are_refused() {
        for (line, says) in [
            (
                r#"{"id":1,"op":"hello","op":"facts"}"#,
                "key `op` appears twice",
            ),
            (r#"{"id":1,"id":2,"op":"hello"}"#, "key `id` appears twice"),
            (
                r#"{"id":1,"op":"apply","gpus":[{"index":0,"index":1,"instances":[]}]}"#,
                "key `index` appears twice",
            ),
            (
                r#"{"id":1,"op":"set_mig_mode","enabled":true,"gpus":[0,1,0]}"#,
                "GPU 0 is listed twice in `gpus`",
            ),
            (
                r#"{"id":1,"op":"apply","gpus":[{"index":2,"instances":[]},{"index":2,"instances":[{"profile":"1g.10gb"}]}]}"#,
                "GPU 2 is listed twice in `gpus`",
            ),
            (
                r#"{"id":1,"op":"apply","dry_run":true,"gpus":[],"assume":[{"index":0,"instances":[]},{"index":0,"instances":[]}]}"#,
                "GPU 0 is listed twice in `assume`",
            ),
            (
                r#"{"id":1,"op":"reset_gpus","gpus":[3,3]}"#,
                "GPU 3 is listed twice",
            ),
            (
                r#"{"id":1,"op":"drain","gpus":[1,1]}"#,
                "GPU 1 is listed twice",
            ),
        ] {
            let (_, msg) = decode_request(line).unwrap_err();
            assert!(msg.contains(says), "{line}: {msg}");
        }
        // Nesting deeper than serde_json's recursion limit is an error, not a stack overflow.
        let deep = format!(
            r#"{{"id":1,"op":"facts","x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        let (_, msg) = decode_request(&deep).unwrap_err();
        assert!(msg.contains("recursion limit exceeded"), "{msg}");
    }
}
