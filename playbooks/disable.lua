-- Turn MIG off again: idle instances are destroyed first; a busy one stops the host.
return {
  name = "Disable MIG",
  hosts = vars.hosts or "all",
  tasks = {
    { name = "Stop GPU clients", drain{ units = { "nvidia-dcgm.service" } }, tags = "drain" },
    { name = "Turn MIG off", mig.mode{ enabled = false } },
    { name = "Start GPU clients again", restore{}, tags = "drain" },
  },
}
