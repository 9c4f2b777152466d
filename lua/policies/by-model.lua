-- An example of per-model logic: big-memory GPUs serve one large model next to small ones,
-- smaller GPUs split evenly, and anything unknown is left as it is.
---@param gpu migfleet.Gpu
---@param ctx migfleet.Context
---@return migfleet.Layout
return function(gpu, ctx)
  local m = gpu.model
  if m == "H200-141GB" or m == "GH200-144GB" or m == "B200-180GB" then
    -- A 4g for a 70B-class model, and three 1g for embeddings and rerankers.
    return mig.pack(m, { [gpu.profile_by_slices[4]] = 1, [gpu.profile_by_slices[1]] = 3 })
  elseif m == "H100-80GB" or m == "H100-NVL-94GB" or m == "H100-96GB" or m == "A100-80GB" then
    return { gpu.profile_by_slices[3], gpu.profile_by_slices[3] }
  elseif m == "A100-40GB" then
    return { gpu.profile_by_slices[2], gpu.profile_by_slices[2], gpu.profile_by_slices[3] }
  elseif m == "A30-24GB" then
    return { gpu.profile_by_slices[2], gpu.profile_by_slices[2] }
  end
  return nil
end
