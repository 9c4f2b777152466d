//! The simulator's tables and migfleet's catalog are written independently; here they
//! check each other, model by model: every compute-instance profile one offers inside a
//! GPU instance, the other offers too, with the same count.

use migfleet_mig::find_model;
use nvidia_ml_sim::hardware::MODELS;

#[test]
fn every_gpu_instance_offers_the_same_compute_instances_in_both() {
    let mut checked = 0;
    for m in MODELS.iter().filter(|m| m.mig_capable()) {
        let catalog = find_model(m.key)
            .unwrap_or_else(|e| panic!("simulated model {} is not in the catalog: {e}", m.key));
        for p in m.profiles {
            let c = catalog
                .profiles
                .iter()
                .find(|c| c.name == p.name)
                .unwrap_or_else(|| panic!("{}: {} is not in the catalog", m.key, p.name));
            for index in 0..=4 {
                let sim = p.ci_profile(index).map(|ci| (ci.slices, ci.instance_count));
                let slices = [1u8, 2, 3, 4, 7][index as usize];
                let cat = (c.ci_max(slices) > 0)
                    .then(|| (u32::from(slices), u32::from(c.ci_max(slices))));
                assert_eq!(sim, cat, "{} {}: {slices}-slice CI", m.key, p.name);
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} pairs checked");
}

/// Every GPU-instance profile, both ways: the same NVML constant, driver id, slices,
/// placement (units, starts, size), instance count, media claim and driver floor, and the
/// memory and SMs wherever the catalog has a number (memory within 1%, the tolerance the
/// agent uses). Ids and sizes the catalog marks assumed are still compared: the two tables
/// must at least assume the same thing.
#[test]
fn every_profile_agrees_in_shape_ids_and_sizes() {
    use migfleet_mig::catalog::{DriverVersion, model_by_pci};
    let driver = DriverVersion::parse(nvidia_ml_sim::DRIVER_VERSION).expect("sim driver parses");
    let mut models = 0;
    for m in MODELS.iter().filter(|m| m.mig_capable()) {
        let catalog = find_model(m.key).expect("in catalog");
        let by_pci = model_by_pci(m.pci_device as u16).expect("sim PCI id in catalog");
        assert_eq!(by_pci.name, catalog.name, "{}: PCI id", m.key);
        assert_eq!(
            u32::from(catalog.compute_slices),
            m.compute_slices,
            "{}",
            m.key
        );
        assert_eq!(
            u32::from(catalog.placement_units),
            m.mem_slices,
            "{}",
            m.key
        );
        assert_eq!(
            catalog.profiles.len(),
            m.profiles.len(),
            "{}: profile count",
            m.key
        );
        for p in m.profiles {
            let c = catalog
                .profiles
                .iter()
                .find(|c| c.nvml.value() == p.index)
                .unwrap_or_else(|| panic!("{}: index {:#x} not in catalog", m.key, p.index));
            let what = format!("{} {}", m.key, p.name);
            assert_eq!(c.name, p.name, "{what}: name");
            assert_eq!(c.id.value, Some(p.id), "{what}: id");
            assert_eq!(u32::from(c.compute_slices), p.slices, "{what}: slices");
            assert_eq!(u32::from(c.placement_size), p.mem_slices, "{what}: size");
            let starts: Vec<u32> = c.starts.iter().map(|s| u32::from(*s)).collect();
            assert_eq!(starts, p.starts, "{what}: starts");
            assert_eq!(
                u32::from(c.max_instances),
                p.instance_count,
                "{what}: count"
            );
            assert_eq!(c.kind.claims_media(), p.media_extensions, "{what}: media");
            let floor = |f: Option<&str>| f.and_then(DriverVersion::parse);
            assert_eq!(floor(c.min_driver), floor(p.min_driver), "{what}: floor");
            if let Some(mib) = c.memory_on(&driver).value {
                let d = (p.memory_mib as i64 - i64::from(mib)).abs();
                assert!(
                    d * 100 <= i64::from(mib),
                    "{what}: {} vs {mib} MiB",
                    p.memory_mib
                );
            }
            if let Some(sm) = c.sm_count.value {
                assert_eq!(sm, p.sms, "{what}: SMs");
            }
        }
        models += 1;
    }
    assert!(models >= 17, "only {models} models compared");
}
