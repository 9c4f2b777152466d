-- The README's first command: partition every GPU of the demo inventory (simulated hosts
-- of several models on this machine) with mig-parted's balanced layout for its model.
--   migfleet run playbooks/demo.lua -i inventory/demo.yml
return {
  name = "Balanced MIG layout on every GPU",
  hosts = "all",
  tasks = {
    { name = "Turn MIG on", mig.mode{ enabled = true } },
    { name = "Apply the balanced layout", mig.apply{ policy = "balanced" } },
    { name = "Check the result", mig.assert{ enabled = true, policy = "balanced" } },
  },
}
