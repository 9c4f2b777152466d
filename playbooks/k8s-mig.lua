-- Stand in for the GPU Operator's MIG manager, with migfleet's minimal change. Each node
-- gets the mig-parted config its `nvidia.com/mig.config` label names, from the operator's
-- ConfigMap; instances the new config keeps are not touched, and a node whose config is
-- already in place is not disturbed at all.
--
-- The node's `nvidia.com/mig.config.state` goes pending -> (rebooting) -> success, or
-- failed: the GPU operands (device plugin, GFD, DCGM, ...) are paused while the GPUs
-- change and restored afterwards, whatever happens — a host that fails anywhere after
-- `pending` gets `failed` with its operands restored.
--
--   migfleet run playbooks/k8s-mig.lua -i INV [--kubeconfig FILE] [--context NAME]
--     -e configmap=NAMESPACE/NAME   the mig-parted ConfigMap (gpu-operator/default-mig-parted-config)
--     -e key=KEY                    its key holding the file (config.yaml)
--     -e namespace=NS               where the operand pods run (gpu-operator)
--     -e drain_timeout=S            how long evicting the GPU pods may take (300)
--     -e serial=N                   nodes changed at a time (all)
local config = {
  configmap = vars.configmap or "gpu-operator/default-mig-parted-config",
  key = vars.key or "config.yaml",
  label = "nvidia.com/mig.config",
}
local namespace = vars.namespace or "gpu-operator"

-- The tasks after `pending` run only where it found something to change.
local function changing(host)
  return host.vars.operator ~= nil and host.vars.operator.changed
end

return {
  name = "MIG config named by each node's nvidia.com/mig.config label",
  hosts = vars.hosts or "all",
  serial = vars.serial,
  tasks = {
    {
      name = "State pending, GPU operands paused (unless the config is in place)",
      k8s.gpu_operator{ state = "pending", mig_parted = config, namespace = namespace },
      register = "operator",
    },
    {
      name = "Drain the node's GPU pods",
      k8s.drain{ pods = "gpu", timeout = tonumber(vars.drain_timeout) or 300 },
      when = changing,
    },
    {
      name = "Apply the config (MIG mode first, rebooting where the mode needs it)",
      mig.apply{ mig_parted = config, reboot = "if_needed" },
      when = changing,
    },
    {
      name = "Check the config",
      mig.assert{ mig_parted = config },
      when = changing,
    },
    {
      name = "State success, GPU operands restored",
      k8s.gpu_operator{ state = "success", namespace = namespace },
      when = changing,
    },
    { name = "Uncordon", k8s.uncordon{}, when = changing },
  },
}
