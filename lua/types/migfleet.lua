---@meta
-- LuaLS annotations for migfleet playbooks and policies: add this folder to
-- `workspace.library` in .luarc.json and editors complete the API.

---@class migfleet.Instance
---@field profile string        Profile name as the driver spells it, e.g. "3g.40gb".
---@field start? integer        Placement start (memory slice); omitted = migfleet places it.
---@field cis? integer[]        Compute-instance sizes inside it; omitted = one spanning the GI.

---A layout: profile names ("3g.40gb", "3g.40gb@4") or instance tables. `nil` leaves a GPU as it is.
---@alias migfleet.Layout (string|migfleet.Instance)[]|nil

---@class migfleet.Profile
---@field name string
---@field plain boolean          Not `+me`, not the double-memory 1g.
---@field compute_slices integer
---@field memory_slices integer
---@field memory_mib integer
---@field max_instances integer
---@field starts integer[]

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
---@field instances migfleet.GpuInstance[]
---@field profiles migfleet.Profile[]  The driver's profile table for this GPU.
---@field profile_by_slices table<integer, string>  Plain profile name by compute slices.
---@field pids integer[]         Processes on the GPU outside MIG.

---@class migfleet.Context
---@field host string            Inventory name.
---@field vars table             Host vars merged with play vars and -e extra vars.
---@field gpus migfleet.Gpu[]    All GPUs of the host.

---@class migfleet.Task
---@field name string
---@field when? boolean|fun(host: migfleet.Context): boolean
---@field tags? string|string[]
---@field retries? integer
---@field delay? number          Seconds between retries.
---@field run? fun(host: migfleet.Context): table|nil

---@class migfleet.Play
---@field name string
---@field hosts string           Ansible host pattern.
---@field serial? integer|string|(integer|string)[]
---@field max_fail_percentage? number
---@field vars? table
---@field tasks migfleet.Task[]

mig = {}

---Switch MIG mode on the host's MIG-capable GPUs (or `gpus`), resetting exactly the GPUs
---whose change stays pending (Ampere) unless `reset = false`.
---@param args {enabled: boolean, gpus?: integer[], reset?: boolean}
function mig.mode(args) end

---Make each GPU's instances match a layout with the fewest NVML operations, never
---destroying an instance in use. Exactly one of `layout`, `policy`, `mig_parted`.
---@param args {layout?: migfleet.Layout|table<string, migfleet.Layout>, policy?: string|fun(gpu: migfleet.Gpu, ctx: migfleet.Context): migfleet.Layout, mig_parted?: {file: string, config?: string}, gpus?: integer[], allow_destroy_in_use?: boolean}
function mig.apply(args) end

---Fail the host unless its GPUs are as described.
---@param args {enabled?: boolean, layout?: migfleet.Layout|table<string, migfleet.Layout>, policy?: string|function, gpus?: integer[]}
function mig.assert(args) end

---All valid placed layouts of a model.
---@param model string
---@param opts? {maximal?: boolean, plain?: boolean}
---@return migfleet.Instance[][]
function mig.layouts(model, opts) end

---The layout of a model serving the most of a demand (instances wanted per profile).
---@param model string
---@param demand table<string, integer>
---@return string[]
function mig.pack(model, demand) end

---Stop the listed systemd units that are active and wait for GPU processes to end.
---@param args {units?: string[], gpus?: integer[], timeout?: integer, signal?: string}
function drain(args) end

---Start again what drain stopped.
function restore(args) end

---Run a command on the host (argv only: no shell).
---@param args {argv: string[]}
function command(args) end

---A built-in or local policy by name (lua/policies/<name>.lua).
---@param name string
---@return fun(gpu: migfleet.Gpu, ctx: migfleet.Context): migfleet.Layout
function policy(name) end

---Extra variables from `-e`.
vars = {}
