-- Many small instances per GPU for inference: as many of the smallest profile as fit, by
-- model (7 x 1g.10gb on H100-80GB, 7 x 1g.18gb on H200, 4 x 1g.6gb on A30). Workloads on
-- the GPUs are drained first and their services restored afterwards; instances that are
-- still in use are never destroyed.
return {
  name = "Inference partitioning",
  hosts = vars.hosts or "all",
  serial = "50%",
  max_fail_percentage = 25,
  tasks = {
    { name = "Stop GPU clients", drain{ units = { "nvidia-dcgm.service", "dcgm-exporter.service" }, timeout = 300 }, tags = "drain" },
    { name = "Turn MIG on", mig.mode{ enabled = true } },
    { name = "Smallest instances, as many as fit", mig.apply{ policy = "smallest-max" } },
    { name = "Start GPU clients again", restore{}, tags = "drain" },
  },
}
