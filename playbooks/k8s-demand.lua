-- Partition for the pods that wait: read the pending, unschedulable pods that ask for
-- MIG devices (nvidia.com/mig-<profile>), pack that demand onto the GPUs of the targeted
-- hosts, and make the instances appear — never destroying one in use, destroying the
-- fewest idle ones. GPUs with MIG off are left alone (add a mig.mode{ enabled = true }
-- task first to bring them in).
--
--   migfleet run playbooks/k8s-demand.lua -i INV [--kubeconfig FILE] [-e hosts=PATTERN]
--     -e namespaces=NS[,NS...]   only pods of these namespaces (all)
local namespaces = {}
for ns in string.gmatch(vars.namespaces or "", "[^,]+") do
  namespaces[#namespaces + 1] = ns
end

return {
  name = "MIG instances for the pending pods' demand",
  hosts = vars.hosts or "all",
  tasks = {
    { name = "Read the pending pods' demand", k8s.demand{ namespaces = namespaces } },
    { name = "Make the instances it asks for", mig.apply{ policy = "demand" } },
  },
}
