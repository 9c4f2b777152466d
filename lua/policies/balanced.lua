-- mig-parted's `all-balanced` for each model: two 1-slice, one 2-slice and one 3-slice
-- instance on 7-slice GPUs (A100, H100, H200, GH200, B200); two 1-slice and one 2-slice
-- on an A30. Profiles are picked by size, so the names come out right on every model.
---@param gpu migfleet.Gpu
---@param ctx migfleet.Context
---@return migfleet.Layout
return function(gpu, ctx)
  local by_slices = {}
  for _, p in ipairs(gpu.profiles) do
    if p.plain then
      by_slices[p.compute_slices] = p.name
    end
  end
  if by_slices[3] then
    return { by_slices[1], by_slices[1], by_slices[2], by_slices[3] }
  end
  if by_slices[2] then
    return { by_slices[1], by_slices[1], by_slices[2] }
  end
  return nil
end
