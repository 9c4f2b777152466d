-- Apply a named config from a mig-parted file, resolved per GPU model and placed exactly.
--   migfleet run playbooks/from-mig-parted.lua -i INV -e config=balanced
return {
  name = "Apply a mig-parted config",
  hosts = vars.hosts or "all",
  tasks = {
    { name = "Turn MIG on", mig.mode{ enabled = true } },
    {
      name = "Apply " .. (vars.config or "balanced"),
      mig.apply{ mig_parted = { file = vars.file or "examples/mig-parted/fleet.yaml", config = vars.config or "balanced" } },
    },
  },
}
