-- One instance spanning the whole GPU: the largest plain profile (7g on A100/H100/H200/B200,
-- 4g on A30). For training jobs that want a full GPU but a MIG-enabled node.
---@param gpu migfleet.Gpu
---@param ctx migfleet.Context
---@return migfleet.Layout
return function(gpu, ctx)
  local best
  for _, p in ipairs(gpu.profiles) do
    if p.plain and (best == nil or p.compute_slices > best.compute_slices) then
      best = p
    end
  end
  if best == nil then
    return nil
  end
  return { best.name }
end
