//! Every configuration of NVIDIA's default mig-parted file (`examples/mig-parted/
//! nvidia-defaults.yaml` spells them out) is accepted on the GPUs it targets: an entry with
//! a device filter on every PCI id it names, an entry for `all` GPUs on at least one model
//! of the catalog. A catalog that lacks a model, a profile name or a placement fails here.

use migfleet_mig::catalog::{NVIDIA_VENDOR_ID, model_by_pci, models};
use migfleet_mig::spec::{self, GpuTarget, HostGpu};

fn file() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/mig-parted/nvidia-defaults.yaml"
    );
    std::fs::read_to_string(path).expect("examples/mig-parted/nvidia-defaults.yaml")
}

fn gpu(device_id: u16) -> HostGpu {
    HostGpu {
        index: 0,
        device_id,
        vendor_id: NVIDIA_VENDOR_ID,
        subsystem: None,
        model: model_by_pci(device_id),
    }
}

#[test]
fn every_default_config_is_accepted_on_the_gpus_it_targets() {
    let config = spec::v1::parse(&file()).expect("the file parses");
    let mut checked_ids = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    for named in &config.configs {
        let name = &named.name.value;
        let filtered: Vec<u16> = named
            .entries
            .iter()
            .flat_map(|e| e.device_filter.iter().flatten())
            .map(|f| f.value.device_id)
            .collect();
        if filtered.is_empty() {
            // For all GPUs: it targets the models whose profiles it names.
            let accepted: Vec<&str> = models()
                .iter()
                .filter(|m| spec::resolve(named, &[gpu(m.primary_pci())]).is_ok())
                .map(|m| m.name)
                .collect();
            if accepted.is_empty() {
                failures.push(format!("{name}: no catalog model accepts it"));
            }
            continue;
        }
        for id in filtered {
            checked_ids.insert(id);
            if model_by_pci(id).is_none() {
                failures.push(format!("{name}: PCI {id:#06x} is not in the catalog"));
                continue;
            }
            match spec::resolve(named, &[gpu(id)]) {
                Ok(r) => {
                    if !matches!(&r[0].target, GpuTarget::Enabled { instances, .. } if !instances.is_empty())
                    {
                        failures.push(format!("{name}: PCI {id:#06x}: {:?}", r[0].target));
                    }
                }
                Err(e) => failures.push(format!("{name}: PCI {id:#06x}: {:?}", e[0].message)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The 27 device ids of `all-balanced` (NVIDIA's 25 plus B300 and GB300).
    assert_eq!(checked_ids.len(), 27, "{checked_ids:x?}");
}

#[test]
fn the_rtx_pro_6000_configs_place_as_its_lgipp_says() {
    let config = spec::v1::parse(&file()).expect("parses");
    let want = [
        ("all-balanced", "2g.48gb@0 1g.24gb@6 1g.24gb@9"),
        (
            "all-1g.24gb-me",
            "1g.24gb-me@0 1g.24gb-me@3 1g.24gb-me@6 1g.24gb-me@9",
        ),
        ("all-2g.48gb.gfx", "2g.48gb+gfx@0 2g.48gb+gfx@6"),
        ("all-4g.96gb.gfx", "4g.96gb+gfx@0"),
    ];
    for (name, layout) in want {
        let named = spec::select(&config, Some(name)).expect("config");
        let r = spec::resolve(named, &[gpu(0x2bb5)]).expect(name);
        let GpuTarget::Enabled { instances, .. } = &r[0].target else {
            panic!("{name}: {:?}", r[0].target);
        };
        assert_eq!(instances.join(" "), layout, "{name}");
    }
}
