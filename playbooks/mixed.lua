-- A policy written inline: the decision is Lua over what each GPU is. Big-memory GPUs
-- keep a 4-slice instance for a large model beside small ones; everything else gets the
-- by-model example policy from lua/policies/by-model.lua.
local by_model = policy("by-model")

local function mixed(gpu, ctx)
  if gpu.memory_mib >= 140000 then
    return { gpu.profile_by_slices[4], gpu.profile_by_slices[2], gpu.profile_by_slices[1] }
  end
  return by_model(gpu, ctx)
end

return {
  name = "Mixed partitioning by GPU model",
  hosts = vars.hosts or "all",
  tasks = {
    { name = "Turn MIG on", mig.mode{ enabled = true } },
    { name = "Per-model layout", mig.apply{ policy = mixed } },
    {
      name = "Report what each host has",
      run = function(host)
        local n = 0
        for _, g in ipairs(host.gpus) do
          n = n + #g.instances
        end
        return { changed = false, msg = host.host .. " runs " .. n .. " instances" }
      end,
    },
  },
}
