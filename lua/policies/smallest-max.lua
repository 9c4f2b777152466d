-- As many instances of the smallest plain profile as fit (7 x 1g on a 7-slice GPU, 4 x 1g
-- on an A30): the most isolated slots for small inference models.
---@param gpu migfleet.Gpu
---@param ctx migfleet.Context
---@return migfleet.Layout
return function(gpu, ctx)
  local smallest
  for _, p in ipairs(gpu.profiles) do
    if p.plain and (smallest == nil or p.compute_slices < smallest.compute_slices
        or (p.compute_slices == smallest.compute_slices and p.memory_slices < smallest.memory_slices)) then
      smallest = p
    end
  end
  if smallest == nil then
    return nil
  end
  return mig.pack(gpu.model, { [smallest.name] = smallest.max_instances })
end
