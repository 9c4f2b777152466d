-- Apply a named config from a mig-parted file, as mig-parted would: each entry's
-- `mig-enabled` turns MIG on or off (resetting Ampere GPUs whose change waits for it),
-- and `mig-devices` are counts, so instances that already match are kept, not recreated.
--   migfleet run playbooks/from-mig-parted.lua -i INV -e config=balanced
--   migfleet run playbooks/from-mig-parted.lua -i INV -e config=all-disabled
return {
  name = "Apply a mig-parted config",
  hosts = vars.hosts or "all",
  tasks = {
    {
      name = "Apply " .. (vars.config or "balanced"),
      mig.apply{ mig_parted = { file = vars.file or "examples/mig-parted/fleet.yaml", config = vars.config or "balanced" } },
    },
    {
      name = "Check " .. (vars.config or "balanced"),
      mig.assert{ mig_parted = { file = vars.file or "examples/mig-parted/fleet.yaml", config = vars.config or "balanced" } },
    },
  },
}
