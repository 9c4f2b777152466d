-- Serve the pending pods' MIG demand: a `k8s.demand{}` task before this one read the
-- pods the scheduler could not place and gave this host its share (`ctx.demand`), packed
-- across every host of the task so that the most demand is served. Here the share is
-- packed onto this host's MIG-enabled GPUs with migfleet's packer (`mig.pack_demand`):
-- the most of it served, no instance in use destroyed (by a process, or held by a
-- running pod), the fewest idle instances destroyed, nothing made that is not asked
-- for; the same answer every time. GPUs it need not touch keep their layout.
---@param gpu migfleet.Gpu
---@param ctx migfleet.Context
---@return migfleet.Layout
return function(gpu, ctx)
  if ctx.demand == nil then
    error("the demand policy serves ctx.demand: run a k8s.demand{} task before this one")
  end
  if not gpu.mig_enabled then
    return nil
  end
  return mig.pack_demand(ctx.gpus, ctx.demand)[gpu.index]
end
