---@meta
-- LuaLS annotations for migfleet playbooks and policies: add this folder to
-- `workspace.library` in .luarc.json and editors complete the API.

---@class migfleet.Instance
---@field profile string        Profile name as the driver spells it, e.g. "3g.40gb".
---@field start? integer        Placement start (memory slice); omitted = migfleet places it.
---@field cis? integer[]        Compute-instance sizes inside it; omitted = one spanning the GI.

---A layout, in the notation of `migfleet mig plan`: one string ("3g.40gb@4, 2x1g.10gb"),
---a list of such strings ("3g.40gb[2c,1c]", "2x1g.10gb") or instance tables. Without
---`@start` an instance may sit anywhere: instances that already match are kept. `nil`
---leaves a GPU as it is; `{}` empties it.
---@alias migfleet.Layout string|(string|migfleet.Instance)[]|nil

---@class migfleet.Profile
---@field name string
---@field plain boolean          Not `+me`, not the double-memory 1g, not `+gfx`/`-me`/`+me.all`.
---@field kind "plain"|"media-extensions"|"double-memory"|"graphics"|"no-media"|"all-media"
---@field compute_slices integer
---@field memory_slices integer
---@field placement_size integer  In the GPU's placement units (3 per slice on the RTX PRO 6000).
---@field memory_mib integer
---@field max_instances integer
---@field starts integer[]        In placement units.

---@class migfleet.GpuInstance
---@field gi_id integer
---@field profile string
---@field start integer
---@field busy boolean           Some compute instance has processes.
---@field pids integer[]

---@class migfleet.Gpu
---@field index integer
---@field name string            As NVML reports it, e.g. "NVIDIA H100 80GB HBM3".
---@field model string|nil       Catalog model, e.g. "H100-80GB".
---@field uuid string
---@field memory_mib integer
---@field mig_capable boolean
---@field mig_enabled boolean    Current MIG mode.
---@field mig_pending boolean    Mode after the next reset/reboot.
---@field busy boolean           Processes run on it (in an instance or on the whole GPU).
---@field instances migfleet.GpuInstance[]
---@field profiles migfleet.Profile[]  The driver's profile table for this GPU.
---@field profile_by_slices table<integer, string>  Plain profile name by compute slices.
---@field pids integer[]         Processes on the GPU outside MIG.

---@class migfleet.Context
---@field host string            Inventory name.
---@field vars table             Host vars merged with play vars and -e extra vars (and `ansible_check_mode`).
---@field check_mode boolean     `--check`: nothing changes, and `gpus` are as the earlier tasks would have left them.
---@field driver_version string
---@field gpus migfleet.Gpu[]    All GPUs of the host.
---@field demand? migfleet.Demand Set by a k8s.demand{} task: this host's share of the pending pods' demand.

---A mig-parted config: from a `file` or a ConfigMap (`configmap = "namespace/name"`, its
---`key` default "config.yaml"), named by `config`, or by the value of the host's node
---`label` (e.g. "nvidia.com/mig.config"); neither: the file's only config.
---@class migfleet.MigParted
---@field file? string
---@field configmap? string
---@field key? string
---@field config? string
---@field label? string

---The pending pods' MIG demand this host is to serve.
---@class migfleet.Demand
---@field profiles table<string, integer>  Instances to provide, by profile.
---@field pods string[]                    The pods ("namespace/name") they are for.
---@field keep table<string, integer[]>    By GPU index (as a string): starts of idle instances running pods hold.
---@field unserved string[]                Pending pods none of the task's hosts can serve.

---@class migfleet.RunResult
---@field changed? boolean
---@field failed? boolean
---@field skipped? boolean
---@field msg? string

---@class migfleet.Task
---@field name string
---@field when? boolean|fun(host: migfleet.Context): boolean
---@field tags? string|string[]
---@field retries? integer
---@field delay? number          Seconds between retries.
---@field run? fun(host: migfleet.Context): migfleet.RunResult|nil
---@field register? string       The result becomes host.vars[name]: {changed, failed, skipped, msg}.
---@field check_mode? boolean    Only say what the task would change (as under --check).

---@class migfleet.Play
---@field name string
---@field hosts string           Ansible host pattern.
---@field serial? integer|string|(integer|string)[]
---@field max_fail_percentage? number
---@field vars? table
---@field tasks migfleet.Task[]

mig = {}

---What to do when instances in use keep a GPU from changing: "skip_gpu" (default: change
---the other GPUs, fail the task naming the blocked one) or "fail_host" (change nothing).
---@alias migfleet.OnBusy "skip_gpu"|"fail_host"

---Switch MIG mode on the host's MIG-capable GPUs (or `gpus`), resetting exactly the GPUs
---whose change stays pending (Ampere) unless `reset = false`. Turning MIG off destroys
---idle instances first; `timeout` (seconds) bounds the agent call. GPUs still pending
---after that reboot the host only with `reboot = "if_needed"` (default "never"), once per
---run: a GPU still pending after that reboot fails the host. `reboot_timeout` (seconds,
---default 600) bounds the wait for the host to come back.
---@param args {enabled: boolean, gpus?: integer[], reset?: boolean, on_busy?: migfleet.OnBusy, timeout?: number, reboot?: "never"|"if_needed", reboot_timeout?: number}
function mig.mode(args) end

---Make each GPU's instances match a layout with the fewest NVML operations, never
---destroying an instance in use. Exactly one of `layout`, `policy`, `mig_parted`.
---`mig_parted` follows mig-parted: `mig-enabled` switches MIG mode (`reset`, `reboot`
---and `reboot_timeout` as in mig.mode) and `mig-devices` are counts.
---@param args {layout?: migfleet.Layout|table<string, migfleet.Layout>, policy?: string|fun(gpu: migfleet.Gpu, ctx: migfleet.Context): migfleet.Layout, mig_parted?: migfleet.MigParted, gpus?: integer[], allow_destroy_in_use?: boolean, on_busy?: migfleet.OnBusy, reset?: boolean, reboot?: "never"|"if_needed", reboot_timeout?: number, timeout?: number}
function mig.apply(args) end

---Fail the host unless its GPUs are as described (never changes anything). Layouts
---without `@start` and mig-parted configs compare as counts.
---@param args {enabled?: boolean, layout?: migfleet.Layout|table<string, migfleet.Layout>, policy?: string|function, mig_parted?: migfleet.MigParted, gpus?: integer[]}
function mig.assert(args) end

---Make the host's MIG state as it is now survive a reboot: the agent installs the target
---(MIG mode and instances per GPU, by placement), a copy of itself and
---migfleet-mig.service, a systemd oneshot that restores them at boot before `units`
---start. `state = "absent"` removes them. Idempotent.
---@param args {state?: "present"|"absent", units?: string|string[], systemctl?: string[]}
function mig.persist(args) end

---All valid placed layouts of a model.
---@param model string
---@param opts? {maximal?: boolean, plain?: boolean}
---@return migfleet.Instance[][]
function mig.layouts(model, opts) end

---The layout of a model serving the most of a demand (instances wanted per profile),
---ranked: first every demanded profile served at least once, then the most compute slices
---of demanded instances, then the most demanded instances, then the most slices used.
---@param model string
---@param demand table<string, integer>
---@return string[]
function mig.pack(model, demand) end

---Pack a demand onto a host's GPUs (ctx.gpus; MIG-enabled ones of a known model): the
---most demanded instances served, then the most slices; no busy instance (or one in
---demand.keep) destroyed; the fewest idle instances destroyed; nothing else created.
---@param gpus migfleet.Gpu[]
---@param demand migfleet.Demand|{profiles: table<string, integer>}
---@return table<integer, migfleet.Instance[]>  Layouts by GPU index.
function mig.pack_demand(gpus, demand) end

---Stop the listed systemd units that are active and wait (`timeout` seconds, default 300)
---for GPU processes to end, sending `signal` ("TERM", "KILL", ...) to them if given.
---@param args {units?: string|string[], gpus?: integer[], timeout?: number, signal?: string, systemctl?: string[]}
function drain(args) end

---Start again what drain stopped.
---@param args {systemctl?: string[]}
function restore(args) end

---Reboot the host and wait for it to come back with a new boot id (`timeout` seconds,
---default 600; each attempt to reach it at most `connect_timeout`, default 30), then go
---on with the next task. The command is the host's migfleet_reboot_command (default
---`systemctl reboot`). GPUs that lose MIG mode at boot (Hopper and later) get it back.
---@param args {timeout?: number, connect_timeout?: number, pre_delay?: number, post_delay?: number}
function reboot(args) end

k8s = {}

---Mark the host's Kubernetes node (its k8s_node, else its inventory name) unschedulable.
---@param args? {}
function k8s.cordon(args) end

---Mark the host's node schedulable again.
---@param args? {}
function k8s.uncordon(args) end

---Set and remove labels of the host's node (a merge patch; conflicts tried again).
---@param args {set?: table<string, string|number|boolean>, remove?: string|string[]}
function k8s.label(args) end

---Set and remove annotations of the host's node.
---@param args {set?: table<string, string|number|boolean>, remove?: string|string[]}
function k8s.annotate(args) end

---Cordon the host's node and evict its pods through the Eviction API ("gpu": those that
---request an nvidia.com/ resource, the default; or "all"), leaving DaemonSet and mirror
---pods alone; a PodDisruptionBudget's refusal is tried again until `timeout` (seconds,
---default 300). Pods without a controller are refused unless `force = true`.
---@param args? {pods?: "gpu"|"all", timeout?: number, grace_period?: number, force?: boolean}
function k8s.drain(args) end

---The GPU Operator's MIG protocol on the host's node, standing in for its MIG manager.
---"pending": nvidia.com/mig.config.state=pending, every nvidia.com/gpu.deploy.<operand>
---label paused (paused-for-mig-change, unless an admin set it false), and the operand
---pods awaited gone (`timeout` seconds, default 300) in `namespace` (default
---"gpu-operator"). While pending, a reboot first sets "rebooting", and a host that fails
---(or a run that stops) gets "failed" with its operands restored: never left pending.
---"success" / "failed": operands restored (paused → true) and the state set.
---With "pending", a config (`mig_parted`, `layout` or `policy`, as mig.apply takes it)
---makes it the MIG manager's whole entry check: a config that cannot be read sets
---"failed" (the task fails), one already in place sets "success" and pauses nothing (the
---task is ok, not changed: `register` it and run the rest `when` it changed).
---@param args {state: "pending"|"success"|"failed", namespace?: string, timeout?: number, mig_parted?: migfleet.MigParted, layout?: migfleet.Layout|table<string, migfleet.Layout>, policy?: string|function}
function k8s.gpu_operator(args) end

---Read the pending, unschedulable pods that ask for MIG devices (nvidia.com/mig-<profile>;
---nvidia.com/gpu on single-strategy nodes), honouring their node selectors and required
---node affinity, and pack that demand onto the MIG-enabled GPUs of all the task's hosts
---at once: each host's share becomes ctx.demand (the "demand" policy serves it). Only
---pods of `namespaces` if given. Changes nothing.
---@param args? {namespaces?: string|string[]}
function k8s.demand(args) end

---Run a command on the host (argv only: no shell).
---@param args {argv: string[], timeout?: number}
function command(args) end

---A policy by name: `<name>.lua` from a --policy-dir, lua/policies/ beside the playbook
---or in the working directory, else the built-in one.
---@param name string
---@return fun(gpu: migfleet.Gpu, ctx: migfleet.Context): migfleet.Layout
function policy(name) end

---Extra variables from `-e`.
vars = {}
