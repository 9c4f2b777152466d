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
