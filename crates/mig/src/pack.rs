//! Demand packing for one GPU: of all valid placed layouts of a model, the one that serves
//! the most of a demand (instances wanted per profile), so policies can turn "pending pods
//! want 3×1g and 1×3g" into a layout without enumerating geometry themselves.

use crate::catalog::{GpuModel, ProfileIdx};
use crate::geometry::{Geometry, ProfileSet, layouts};

/// How well a layout serves a demand; compared field by field, larger is better:
///
/// 1. `profiles_served`: how many of the demanded profiles get at least one instance. A
///    layout that serves every profile asked for beats one that drops a profile to fit
///    more of another: a demand of one 3g and seven 1g gives 3g + 4×1g, not 7×1g.
/// 2. `served_slices`: compute slices of demanded instances provided (big asks count more).
/// 3. `served`: demanded instances provided.
/// 4. `used_slices`: compute slices used overall (spare capacity is still capacity).
///
/// Remaining ties go to the first layout in enumeration order, so the answer is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    /// Demanded profiles with at least one instance in the layout.
    pub profiles_served: u32,
    /// Compute slices of demanded instances the layout provides.
    pub served_slices: u32,
    /// Demanded instances the layout provides.
    pub served: u32,
    /// Compute slices in use overall: spare capacity is still capacity.
    pub used_slices: u32,
}

/// The layout serving `demand` best (see [`Score`]), the first in enumeration order on a
/// tie so the answer is stable. Empty when nothing of the demand fits at all.
pub fn pack(model: &GpuModel, demand: &[(ProfileIdx, u32)], set: ProfileSet) -> (Geometry, Score) {
    let mut best: (Geometry, Score) = (
        Vec::new(),
        Score {
            profiles_served: 0,
            served_slices: 0,
            served: 0,
            used_slices: 0,
        },
    );
    for g in layouts(model, set) {
        let s = score(model, &g, demand);
        if s.served > 0 && s > best.1 {
            best = (g, s);
        }
    }
    best
}

fn score(model: &GpuModel, g: &Geometry, demand: &[(ProfileIdx, u32)]) -> Score {
    let mut s = Score {
        profiles_served: 0,
        served_slices: 0,
        served: 0,
        used_slices: 0,
    };
    for (p, want) in demand {
        let have = g.iter().filter(|(q, _)| q == p).count() as u32;
        let n = have.min(*want);
        if n > 0 {
            s.profiles_served += 1;
        }
        s.served += n;
        s.served_slices += n * u32::from(model.profile(*p).compute_slices);
    }
    s.used_slices = g
        .iter()
        .map(|(p, _)| u32::from(model.profile(*p).compute_slices))
        .sum();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find_model;
    use crate::geometry::display;

    #[test]
    fn packs_demand_into_the_best_layout() {
        let m = find_model("H100-80GB").unwrap();
        let r = |n: &str| m.resolve(n).unwrap().gi;
        let (g, s) = pack(
            m,
            &[(r("1g.10gb"), 4), (r("3g.40gb"), 1)],
            ProfileSet::Plain,
        );
        assert_eq!(
            display(m, &g),
            "1g.10gb@0 1g.10gb@1 1g.10gb@2 1g.10gb@3 3g.40gb@4"
        );
        assert_eq!((s.served, s.served_slices, s.used_slices), (5, 7, 7));
        // More demand than fits: the bigger instances win the slices.
        let (g, _) = pack(
            m,
            &[(r("4g.40gb"), 1), (r("7g.80gb"), 1)],
            ProfileSet::Plain,
        );
        assert_eq!(display(m, &g), "7g.80gb@0");
        let (g, s) = pack(m, &[], ProfileSet::Plain);
        assert!(g.is_empty() && s.served == 0);
        // Every profile asked for gets an instance before any gets more: one 3g and
        // seven 1g (7 + 3 slices on a 7-slice GPU) is 3g + 4x1g, not seven 1g.
        let (g, s) = pack(
            m,
            &[(r("3g.40gb"), 1), (r("1g.10gb"), 7)],
            ProfileSet::Plain,
        );
        assert_eq!(
            display(m, &g),
            "1g.10gb@0 1g.10gb@1 1g.10gb@2 1g.10gb@3 3g.40gb@4"
        );
        assert_eq!(s.profiles_served, 2);
    }
}
