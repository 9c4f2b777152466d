//! Geometry enumeration: every valid placed layout of a model, the maximal ones (no further
//! instance fits at any placement), and the multisets of profiles they make up.
//!
//! Known answers: a 7-slice GPU counting only plain profiles has 19 maximal placed layouts
//! and 12 maximal multisets; an A30 has 5 maximal placed layouts.

use crate::catalog::{GpuModel, ProfileIdx};
use crate::layout::{Board, Placed};
use std::collections::BTreeSet;

/// Which profiles an enumeration may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileSet {
    /// Every profile of the model.
    All,
    /// Only plain profiles: no `+me`, no double-memory 1g, none of the RTX PRO kinds
    /// (`+gfx`, `-me`, `+me.all`).
    Plain,
}

impl ProfileSet {
    fn allows(self, model: &GpuModel, idx: ProfileIdx) -> bool {
        match self {
            ProfileSet::All => true,
            ProfileSet::Plain => model.is_plain(idx),
        }
    }
}

/// A layout as `(profile, start)` pairs sorted by start; every GI holds one full CI.
pub type Geometry = Vec<(ProfileIdx, u8)>;

/// Every valid non-empty placed layout of `model` using the allowed profiles, each once,
/// in a stable order (by the sorted list of placements).
pub fn layouts(model: &GpuModel, set: ProfileSet) -> Vec<Geometry> {
    let options = options(model, set);
    let mut out = Vec::new();
    let mut current = Vec::new();
    walk(model, &options, 0, Board::default(), &mut current, &mut out);
    out.sort();
    out
}

/// The valid layouts to which no further instance of an allowed profile can be added.
pub fn maximal_layouts(model: &GpuModel, set: ProfileSet) -> Vec<Geometry> {
    let allowed = |i: ProfileIdx| set.allows(model, i);
    layouts(model, set)
        .into_iter()
        .filter(|g| !board_of(model, g).has_room(model, &allowed))
        .collect()
}

/// A multiset of profiles: how many of each, indexed like `GpuModel::profiles`.
pub type Multiset = Vec<u8>;

/// Every non-empty multiset of allowed profiles that some placement can hold.
pub fn multisets(model: &GpuModel, set: ProfileSet) -> BTreeSet<Multiset> {
    layouts(model, set)
        .iter()
        .map(|g| multiset_of(model, g))
        .collect()
}

/// The placeable multisets that cannot take one more allowed profile, whatever the
/// placement. Fewer than the maximal placed layouts: `3g@0 + 3×1g` is a maximal placement
/// of a multiset that `3g@4 + 4×1g` extends.
pub fn maximal_multisets(model: &GpuModel, set: ProfileSet) -> Vec<Multiset> {
    let all = multisets(model, set);
    all.iter()
        .filter(|m| {
            (0..model.profiles.len()).all(|i| {
                if !set.allows(model, ProfileIdx(i as u8)) {
                    return true;
                }
                let mut bigger = (*m).clone();
                bigger[i] += 1;
                !all.contains(&bigger)
            })
        })
        .cloned()
        .collect()
}

/// The multiset of profiles in a geometry.
pub fn multiset_of(model: &GpuModel, g: &Geometry) -> Multiset {
    let mut m = vec![0u8; model.profiles.len()];
    for (p, _) in g {
        m[p.0 as usize] += 1;
    }
    m
}

/// Turns a geometry into placed instances, each with its single full CI.
pub fn to_placed(model: &GpuModel, g: &Geometry) -> Vec<Placed> {
    g.iter()
        .map(|(p, s)| Placed::whole(model, *p, *s))
        .collect()
}

/// `1g.10gb@0 1g.10gb@1 2g.20gb@2 3g.40gb@4`.
pub fn display(model: &GpuModel, g: &Geometry) -> String {
    let parts: Vec<String> = g
        .iter()
        .map(|(p, s)| format!("{}@{}", model.profile(*p).name, s))
        .collect();
    parts.join(" ")
}

/// `2×1g.10gb + 2g.20gb + 3g.40gb`, largest profile first.
pub fn display_multiset(model: &GpuModel, m: &Multiset) -> String {
    let mut parts: Vec<(u8, String)> = Vec::new();
    for (i, n) in m.iter().enumerate() {
        if *n == 0 {
            continue;
        }
        let p = &model.profiles[i];
        let name = if *n == 1 {
            p.name.to_string()
        } else {
            format!("{n}×{}", p.name)
        };
        parts.push((p.memory_slices * 8 + p.compute_slices, name));
    }
    parts.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    parts
        .into_iter()
        .map(|(_, n)| n)
        .collect::<Vec<_>>()
        .join(" + ")
}

fn options(model: &GpuModel, set: ProfileSet) -> Vec<(ProfileIdx, u8)> {
    let mut o: Vec<(ProfileIdx, u8)> = model
        .indexed_profiles()
        .filter(|(i, _)| set.allows(model, *i))
        .flat_map(|(i, p)| p.starts.iter().map(move |s| (i, *s)))
        .collect();
    o.sort_by_key(|(p, s)| (*s, *p));
    o
}

fn board_of(model: &GpuModel, g: &Geometry) -> Board {
    let mut b = Board::default();
    for (p, s) in g {
        b.add(model, *p, *s);
    }
    b
}

/// Include-or-skip over the options in a fixed order: each valid subset is produced once.
fn walk(
    model: &GpuModel,
    options: &[(ProfileIdx, u8)],
    from: usize,
    board: Board,
    current: &mut Geometry,
    out: &mut Vec<Geometry>,
) {
    for i in from..options.len() {
        let (p, s) = options[i];
        if board.can_add(model, p, s) {
            let mut next = board;
            next.add(model, p, s);
            current.push((p, s));
            out.push(current.clone());
            walk(model, options, i + 1, next, current, out);
            current.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{find_model, models};
    use crate::layout::validate;

    #[test]
    fn seven_slice_gpus_have_19_maximal_plain_layouts_and_12_multisets() {
        for m in models().iter().filter(|m| m.compute_slices == 7) {
            assert_eq!(
                maximal_layouts(m, ProfileSet::Plain).len(),
                19,
                "{}",
                m.name
            );
            assert_eq!(
                maximal_multisets(m, ProfileSet::Plain).len(),
                12,
                "{}",
                m.name
            );
            assert_eq!(multisets(m, ProfileSet::Plain).len(), 37, "{}", m.name);
        }
    }

    #[test]
    fn a30_has_5_maximal_plain_layouts() {
        let m = find_model("A30").unwrap();
        assert_eq!(maximal_layouts(m, ProfileSet::Plain).len(), 5);
        assert_eq!(multisets(m, ProfileSet::Plain).len(), 9);
    }

    /// The 4-slice RTX PRO 6000 places like an A30 scaled by three placement units per
    /// slice. Known answers, counted by hand from its `-lgipp` (1g {0,3,6,9}, 2g {0,6}, 4g
    /// {0}): with plain profiles each half of the GPU is empty, a 2g, or 1g's in some of its
    /// two slots (5 ways), so 5×5−1 layouts without the 4g plus the 4g: 25, of which 5 are
    /// maximal, in 4 maximal multisets. With all eleven profiles a half without a
    /// media-claiming instance takes 1 + 3 (2g kinds) + 15 (two 1g slots of 4 states, not
    /// both empty) = 19 forms and with one 1 (2g+me.all) + 2·2·4 = 17; a GPU holds at most
    /// one media claim: 19² + 2·19·17 − 1 + 2 (the 4g kinds) = 1008.
    #[test]
    fn rtx_pro_6000_known_answers() {
        let m = find_model("RTX PRO 6000 Blackwell Server Edition").unwrap();
        assert_eq!(m.placement_units, 12);
        assert_eq!(layouts(m, ProfileSet::Plain).len(), 25);
        assert_eq!(maximal_layouts(m, ProfileSet::Plain).len(), 5);
        assert_eq!(maximal_multisets(m, ProfileSet::Plain).len(), 4);
        assert_eq!(multisets(m, ProfileSet::Plain).len(), 9);
        assert_eq!(layouts(m, ProfileSet::All).len(), 1008);
        // The same shapes as the A30, at three times the starts.
        let a30 = find_model("A30").unwrap();
        let scaled = |model: &GpuModel, g: &Geometry, k: u8| -> Vec<(u8, u8)> {
            g.iter()
                .map(|(p, s)| (model.profile(*p).compute_slices, s * k))
                .collect()
        };
        let mine: Vec<_> = maximal_layouts(m, ProfileSet::Plain)
            .iter()
            .map(|g| scaled(m, g, 1))
            .collect();
        let theirs: Vec<_> = maximal_layouts(a30, ProfileSet::Plain)
            .iter()
            .map(|g| scaled(a30, g, 3))
            .collect();
        assert_eq!(mine, theirs);
        let shown: Vec<String> = maximal_layouts(m, ProfileSet::Plain)
            .iter()
            .map(|g| display(m, g))
            .collect();
        assert!(shown.contains(&"2g.48gb@0 1g.24gb@6 1g.24gb@9".to_string()));
    }

    /// The 2-slice RTX PRO 5000 and 4500: one half of the above without the media 2g:
    /// 1 + 2 + 15 forms without a media claim, 16 with one, less the empty GPU: 33.
    #[test]
    fn two_slice_rtx_pro_known_answers() {
        for name in ["RTX-PRO-5000-48GB", "RTX-PRO-4500-32GB"] {
            let m = find_model(name).unwrap();
            assert_eq!(layouts(m, ProfileSet::All).len(), 33, "{name}");
            assert_eq!(maximal_multisets(m, ProfileSet::Plain).len(), 2, "{name}");
        }
    }

    #[test]
    fn double_memory_profile_gives_28_maximal_multisets() {
        // Counting the double-memory 1g but no `+me`: 28 maximal multisets, 77 in all
        // (mig-facts §2.5).
        let m = find_model("H100-80GB").unwrap();
        let no_me = |ms: &Multiset| {
            ms.iter().enumerate().all(|(i, n)| {
                *n == 0 || m.profiles[i].kind != crate::catalog::ProfileKind::MediaExtensions
            })
        };
        let all: BTreeSet<Multiset> = multisets(m, ProfileSet::All)
            .into_iter()
            .filter(no_me)
            .collect();
        assert_eq!(all.len(), 77);
        let maximal = all
            .iter()
            .filter(|ms| {
                (0..ms.len()).all(|i| {
                    let mut b = (*ms).clone();
                    b[i] += 1;
                    !all.contains(&b)
                })
            })
            .count();
        assert_eq!(maximal, 28);
    }

    #[test]
    fn every_enumerated_layout_validates() {
        for m in models() {
            for g in layouts(m, ProfileSet::All) {
                validate(m, &to_placed(m, &g)).unwrap();
            }
        }
    }

    #[test]
    fn the_wasteful_3g_placement_is_maximal_but_its_multiset_is_not() {
        let m = find_model("A100-40GB").unwrap();
        let maximal: Vec<String> = maximal_layouts(m, ProfileSet::Plain)
            .iter()
            .map(|g| display(m, g))
            .collect();
        assert!(maximal.contains(&"3g.20gb@0 1g.5gb@4 1g.5gb@5 1g.5gb@6".to_string()));
        assert!(maximal.contains(&"1g.5gb@0 1g.5gb@1 1g.5gb@2 1g.5gb@3 3g.20gb@4".to_string()));
        let multis: Vec<String> = maximal_multisets(m, ProfileSet::Plain)
            .iter()
            .map(|x| display_multiset(m, x))
            .collect();
        assert!(
            multis.contains(&"3g.20gb + 4×1g.5gb".to_string()),
            "{multis:?}"
        );
        assert!(!multis.contains(&"3g.20gb + 3×1g.5gb".to_string()));
    }
}
