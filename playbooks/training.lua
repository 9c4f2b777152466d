-- One instance spanning each GPU, for training jobs on MIG-enabled nodes.
return {
  name = "Training: one instance per GPU",
  hosts = vars.hosts or "all",
  tasks = {
    { name = "Stop GPU clients", drain{ units = { "nvidia-dcgm.service" } }, tags = "drain" },
    { name = "Turn MIG on", mig.mode{ enabled = true } },
    { name = "One instance per GPU", mig.apply{ policy = "one-per-gpu" } },
    { name = "Start GPU clients again", restore{}, tags = "drain" },
  },
}
