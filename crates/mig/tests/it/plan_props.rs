//! Property tests of the planner: a plan applied to its current state gives a valid
//! layout equal to the target, never touches an instance in use, is empty when current
//! equals target, and is the same every time.

use migfleet_mig::catalog::{GpuModel, models};
use migfleet_mig::geometry::{Geometry, ProfileSet, layouts};
use migfleet_mig::layout::{Placed, Want, validate};
use migfleet_mig::plan::{CurrentCi, CurrentGi, Op, PlanError, plan, simulate};
use proptest::prelude::*;
use proptest::sample::Index;
use std::sync::OnceLock;

fn all_layouts() -> &'static Vec<Vec<Geometry>> {
    static CELL: OnceLock<Vec<Vec<Geometry>>> = OnceLock::new();
    CELL.get_or_init(|| {
        models()
            .iter()
            .map(|m| layouts(m, ProfileSet::All))
            .collect()
    })
}

/// A CI configuration for a GI of `g` compute slices, picked by `pick`.
fn ci_config(g: u8, pick: u8) -> Vec<u8> {
    let options: &[&[u8]] = match g {
        7 => &[
            &[7],
            &[4, 3],
            &[4, 2, 1],
            &[3, 3, 1],
            &[2, 2, 2, 1],
            &[1, 1, 1, 1, 1, 1, 1],
            &[4],
        ],
        4 => &[&[4], &[2, 2], &[2, 1, 1], &[1, 1, 1, 1], &[2, 1]],
        3 => &[&[3], &[2, 1], &[1, 1, 1], &[1]],
        2 => &[&[2], &[1, 1]],
        _ => &[&[1]],
    };
    // Mostly the ordinary single full CI, as on real hosts.
    if !pick.is_multiple_of(3) {
        return options[0].to_vec();
    }
    options[(pick as usize / 3) % options.len()].to_vec()
}

fn current_from(model: &GpuModel, g: &Geometry, bytes: &[u8]) -> Vec<CurrentGi> {
    g.iter()
        .enumerate()
        .map(|(i, (p, start))| {
            let b = bytes[i % bytes.len()];
            let sizes = ci_config(model.profile(*p).compute_slices, b);
            CurrentGi {
                gi_id: 10 + i as u32 * 3,
                profile: *p,
                start: *start,
                cis: sizes
                    .iter()
                    .enumerate()
                    .map(|(k, s)| CurrentCi {
                        ci_id: k as u32,
                        slices: *s,
                        in_use: (b >> 4).is_multiple_of(4) && k == 0,
                    })
                    .collect(),
            }
        })
        .collect()
}

fn target_from(model: &GpuModel, g: &Geometry, bytes: &[u8]) -> Vec<Want> {
    g.iter()
        .enumerate()
        .map(|(i, (p, start))| {
            let b = bytes[(i + 7) % bytes.len()];
            Want {
                profile: *p,
                start: b.is_multiple_of(4).then_some(*start),
                cis: ci_config(model.profile(*p).compute_slices, b >> 2),
            }
        })
        .collect()
}

fn shape(items: impl Iterator<Item = (u8, Vec<u8>)>) -> Vec<(u8, Vec<u8>)> {
    let mut v: Vec<(u8, Vec<u8>)> = items
        .map(|(p, mut cis)| {
            cis.sort_by(|a, b| b.cmp(a));
            (p, cis)
        })
        .collect();
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn plans_reach_the_target_and_spare_what_is_in_use(
        m in 0..models().len(),
        cur in any::<Index>(),
        tgt in any::<Index>(),
        empty_current in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 16),
    ) {
        let model = models()[m];
        let geoms = &all_layouts()[m];
        let current = if empty_current { Vec::new() } else { current_from(model, cur.get(geoms), &bytes) };
        let target = target_from(model, tgt.get(geoms), &bytes);

        let first = plan(model, &current, &target);
        prop_assert_eq!(&first, &plan(model, &current, &target), "not deterministic");
        match first {
            Ok(p) => {
                let after = simulate(model, &current, &p.ops).map_err(TestCaseError::fail)?;
                let placed: Vec<Placed> = after.iter().map(CurrentGi::placed).collect();
                prop_assert!(validate(model, &placed).is_ok());
                let got = shape(after.iter().map(|g| (g.profile.0, g.cis.iter().map(|c| c.slices).collect())));
                let want = shape(target.iter().map(|w| (w.profile.0, w.cis.clone())));
                prop_assert_eq!(got, want);
                for w in target.iter().filter(|w| w.start.is_some()) {
                    prop_assert!(after.iter().any(|g| g.profile == w.profile && Some(g.start) == w.start));
                }
                for gi in &current {
                    for ci in gi.cis.iter().filter(|c| c.in_use) {
                        let still = after.iter().find(|g| g.gi_id == gi.gi_id);
                        prop_assert!(still.is_some_and(|g| g.start == gi.start && g.cis.contains(ci)), "in-use CI {} of GI {} touched", ci.ci_id, gi.gi_id);
                    }
                }
                let mut sorted_after = placed.clone();
                sorted_after.sort();
                prop_assert_eq!(sorted_after, p.after.clone());
                // Never worse than tearing everything down and recreating it.
                let teardown: usize = current.iter().map(|g| g.cis.len() + 1).sum::<usize>()
                    + target.iter().map(|w| w.cis.len() + 1).sum::<usize>();
                prop_assert!(p.ops.len() <= teardown);
            }
            Err(PlanError::InUse { blockers }) => {
                prop_assert!(!blockers.is_empty());
                for b in &blockers {
                    prop_assert!(current.iter().any(|g| g.gi_id == b.gi_id && g.in_use()));
                }
                // Without the in-use marks the same target is reachable.
                let idle: Vec<CurrentGi> = current.iter().cloned().map(|mut g| {
                    g.cis.iter_mut().for_each(|c| c.in_use = false);
                    g
                }).collect();
                prop_assert!(plan(model, &idle, &target).is_ok());
            }
            Err(e) => prop_assert!(false, "unexpected error: {e}"),
        }
    }

    #[test]
    fn current_equal_to_target_gives_an_empty_plan(
        m in 0..models().len(),
        cur in any::<Index>(),
        bytes in prop::collection::vec(any::<u8>(), 16),
    ) {
        let model = models()[m];
        let current = current_from(model, cur.get(&all_layouts()[m]), &bytes);
        let target: Vec<Want> = current
            .iter()
            .enumerate()
            .map(|(i, g)| {
                let p = g.placed();
                Want { profile: p.profile, start: (bytes[i] % 2 == 0).then_some(p.start), cis: p.cis }
            })
            .collect();
        let p = plan(model, &current, &target).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(p.ops, Vec::<Op>::new());
    }
}
