//! Demand packing for one GPU: of all valid placed layouts of a model, the one that serves
//! the most of a demand (instances wanted per profile), so policies can turn "pending pods
//! want 3×1g and 1×3g" into a layout without enumerating geometry themselves.

use crate::catalog::{GpuModel, ProfileIdx};
use crate::geometry::{Geometry, ProfileSet, layouts};

/// How well a layout serves a demand; compared field by field, larger is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
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
        served_slices: 0,
        served: 0,
        used_slices: 0,
    };
    for (p, want) in demand {
        let have = g.iter().filter(|(q, _)| q == p).count() as u32;
        let n = have.min(*want);
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
    }
}
