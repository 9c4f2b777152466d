//! Layouts with explicit placements: which GPU instances sit where on one GPU, whether that
//! is valid on a model (naming the colliding instances or the exceeded maximum), and
//! choosing placements for wanted instances around ones that stay.
//!
//! Placement is in memory-slice units, as NVML's `nvmlGpuInstancePlacement_t`. A layout is
//! a set of `(profile, start)`, never a bare multiset of names: the driver's automatic
//! placement depends on creation order, so migfleet always decides placements itself.

use crate::catalog::{GpuModel, ProfileIdx, ProfileKind};
use serde::Serialize;
use std::fmt;

/// One GPU instance at a placement, with the sizes (compute slices) of the compute
/// instances inside it, largest first. A GI with one CI spanning it has `cis == [G]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Placed {
    pub start: u8,
    pub profile: ProfileIdx,
    pub cis: Vec<u8>,
}

impl Placed {
    /// A GI with the ordinary single compute instance spanning all of it.
    pub fn whole(model: &GpuModel, profile: ProfileIdx, start: u8) -> Placed {
        Placed {
            start,
            profile,
            cis: vec![model.profile(profile).compute_slices],
        }
    }

    /// `3g.40gb@4`, or `3g.40gb@4[1c,1c,1c]` when the CIs are not the single full one.
    pub fn display(&self, model: &GpuModel) -> String {
        let p = model.profile(self.profile);
        let mut s = format!("{}@{}", p.name, self.start);
        if self.cis.as_slice() != [p.compute_slices] {
            let cis: Vec<String> = self.cis.iter().map(|c| format!("{c}c")).collect();
            s.push_str(&format!("[{}]", cis.join(",")));
        }
        s
    }
}

/// A GPU instance that is wanted, with or without a fixed placement.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Want {
    pub profile: ProfileIdx,
    pub start: Option<u8>,
    /// Compute-instance sizes, largest first.
    pub cis: Vec<u8>,
}

impl Want {
    pub fn whole(model: &GpuModel, profile: ProfileIdx) -> Want {
        Want {
            profile,
            start: None,
            cis: vec![model.profile(profile).compute_slices],
        }
    }

    /// The wanted instance as placed, when its start is pinned.
    pub fn pinned(&self) -> Option<Placed> {
        self.start.map(|start| Placed {
            start,
            profile: self.profile,
            cis: self.cis.clone(),
        })
    }

    pub fn display(&self, model: &GpuModel) -> String {
        let p = model.profile(self.profile);
        let mut s = p.name.to_string();
        if let Some(st) = self.start {
            s.push_str(&format!("@{st}"));
        }
        if self.cis.as_slice() != [p.compute_slices] {
            let cis: Vec<String> = self.cis.iter().map(|c| format!("{c}c")).collect();
            s.push_str(&format!("[{}]", cis.join(",")));
        }
        s
    }
}

/// One reason a layout is not valid on a model.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LayoutError {
    #[error(
        "{instance} cannot start at {unit} {start} on {model}: valid starts are {}",
        fmt_list(valid)
    )]
    BadStart {
        instance: String,
        start: u8,
        model: &'static str,
        valid: Vec<u8>,
        /// What starts count: `memory slice`, or `placement unit` where the two differ.
        unit: &'static str,
    },
    #[error("{a} and {b} overlap ({unit}s {})", fmt_list(slices))]
    Overlap {
        a: String,
        b: String,
        slices: Vec<u8>,
        unit: &'static str,
    },
    #[error("{count} instances of {profile} exceed its maximum of {max} on {model}")]
    TooMany {
        profile: String,
        count: usize,
        max: u8,
        model: &'static str,
    },
    #[error("the instances use {used} compute slices; {model} has {max}")]
    ComputeExceeded {
        used: u32,
        max: u8,
        model: &'static str,
    },
    #[error(
        "{a} and {b} both take the media engines; a GPU has one `+me` or `+me.all` instance at most"
    )]
    MediaExtensionsTwice { a: String, b: String },
    #[error(
        "{instance}: compute instances [{}] are not what its {slices} compute slices offer ({offered})",
        fmt_list(cis)
    )]
    ComputeInstances {
        instance: String,
        cis: Vec<u8>,
        slices: u8,
        /// What the GI offers, as `-lcip` lists it: `1c ×4, 2c ×2, 4g.40gb`.
        offered: String,
    },
    #[error("{} cannot be placed together on {model}{}", wanted.join(" + "), around_text(around))]
    Unplaceable {
        wanted: Vec<String>,
        around: Vec<String>,
        model: &'static str,
    },
}

fn fmt_list(v: &[u8]) -> String {
    let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    s.join(", ")
}

fn around_text(around: &[String]) -> String {
    if around.is_empty() {
        String::new()
    } else {
        format!(" around {}", around.join(" "))
    }
}

/// All the reasons a layout is invalid (never empty when returned as an error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LayoutErrors(pub Vec<LayoutError>);

impl fmt::Display for LayoutErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for LayoutErrors {}

/// What placement starts count on `model`, for messages.
fn unit_of(model: &GpuModel) -> &'static str {
    if model.placement_units == model.memory_slices {
        "memory slice"
    } else {
        "placement unit"
    }
}

/// Checks a placed layout against a model: valid starts, no overlapping memory slices,
/// per-profile maxima, total compute slices, one `+me` at most, CIs fit their GI.
pub fn validate(model: &GpuModel, layout: &[Placed]) -> Result<(), LayoutErrors> {
    let mut errors = Vec::new();
    for inst in layout {
        let p = model.profile(inst.profile);
        if !p.starts.contains(&inst.start) {
            errors.push(LayoutError::BadStart {
                instance: p.name.to_string(),
                start: inst.start,
                model: model.name,
                valid: p.starts.to_vec(),
                unit: unit_of(model),
            });
        }
        if let Err(e) = check_cis(model, inst.profile, &inst.cis) {
            errors.push(LayoutError::ComputeInstances {
                instance: inst.display(model),
                cis: inst.cis.clone(),
                slices: e,
                offered: model.profile(inst.profile).ci_offer_text(),
            });
        }
    }
    for (i, a) in layout.iter().enumerate() {
        for b in &layout[i + 1..] {
            let (pa, pb) = (model.profile(a.profile), model.profile(b.profile));
            let common = pa.mask_at(a.start) & pb.mask_at(b.start);
            if common != 0 {
                errors.push(LayoutError::Overlap {
                    a: a.display(model),
                    b: b.display(model),
                    slices: (0..16u8).filter(|s| common & (1 << s) != 0).collect(),
                    unit: unit_of(model),
                });
            }
            if pa.kind.claims_media() && pb.kind.claims_media() {
                errors.push(LayoutError::MediaExtensionsTwice {
                    a: a.display(model),
                    b: b.display(model),
                });
            }
        }
    }
    errors.extend(too_many(model, layout.iter().map(|i| i.profile)));
    let used: u32 = layout
        .iter()
        .map(|i| u32::from(model.profile(i.profile).compute_slices))
        .sum();
    if used > u32::from(model.compute_slices) {
        errors.push(LayoutError::ComputeExceeded {
            used,
            max: model.compute_slices,
            model: model.name,
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(LayoutErrors(errors))
    }
}

/// A `TooMany` error for each profile that `profiles` holds more often than it fits.
fn too_many(
    model: &GpuModel,
    profiles: impl Iterator<Item = ProfileIdx> + Clone,
) -> Vec<LayoutError> {
    model
        .indexed_profiles()
        .filter_map(|(idx, p)| {
            let count = profiles.clone().filter(|i| *i == idx).count();
            (count > p.max_instances as usize).then(|| LayoutError::TooMany {
                profile: p.name.to_string(),
                count,
                max: p.max_instances,
                model: model.name,
            })
        })
        .collect()
}

/// Checks wanted instances on their own (compute-instance sizes, counts, the pinned
/// placements among them) and then places them all on an empty GPU.
pub fn place_wants(model: &GpuModel, wants: &[Want]) -> Result<Vec<Placed>, LayoutErrors> {
    let mut errors = Vec::new();
    for w in wants {
        if let Err(slices) = check_cis(model, w.profile, &w.cis) {
            errors.push(LayoutError::ComputeInstances {
                instance: w.display(model),
                cis: w.cis.clone(),
                slices,
                offered: model.profile(w.profile).ci_offer_text(),
            });
        }
    }
    errors.extend(too_many(model, wants.iter().map(|w| w.profile)));
    // Two instances that each take the GPU's media extensions can never be placed
    // together, wherever they go; say so rather than "cannot be placed".
    let media: Vec<&Want> = wants
        .iter()
        .filter(|w| model.profile(w.profile).kind.claims_media())
        .collect();
    if let [a, b, ..] = media.as_slice()
        && (a.start.is_none() || b.start.is_none())
    {
        errors.push(LayoutError::MediaExtensionsTwice {
            a: a.display(model),
            b: b.display(model),
        });
    }
    let pinned: Vec<Placed> = wants.iter().filter_map(Want::pinned).collect();
    if let Err(e) = validate(model, &pinned) {
        errors.extend(e.0);
    }
    if !errors.is_empty() {
        return Err(LayoutErrors(errors));
    }
    place(model, &[], wants)
}

/// Checks that compute instances of the given sizes fit in one GI of `profile`. On failure
/// returns the GI's compute slices for the message.
pub(crate) fn check_cis(model: &GpuModel, profile: ProfileIdx, cis: &[u8]) -> Result<(), u8> {
    let p = model.profile(profile);
    let total: u32 = cis.iter().map(|c| u32::from(*c)).sum();
    let sizes_ok = cis.iter().all(|c| p.ci_profile(*c).is_some());
    let counts_ok = p
        .ci_sizes()
        .all(|size| cis.iter().filter(|c| **c == size).count() <= p.ci_max(size) as usize);
    // No CIs is valid: a GI exists without them between its creation and theirs, and an
    // interrupted apply can leave one so.
    if !sizes_ok || !counts_ok || total > u32::from(p.compute_slices) {
        Err(p.compute_slices)
    } else {
        Ok(())
    }
}

/// Occupancy of one GPU as bit masks and counters: the fast inner representation that
/// enumeration and the planner search over.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Board {
    pub occupied: u16,
    pub compute: u8,
    pub counts: [u8; 16],
    pub media: bool,
}

impl Board {
    pub fn of(model: &GpuModel, layout: &[Placed]) -> Board {
        let mut b = Board::default();
        for i in layout {
            b.add(model, i.profile, i.start);
        }
        b
    }

    pub fn can_add(&self, model: &GpuModel, profile: ProfileIdx, start: u8) -> bool {
        let p = model.profile(profile);
        p.starts.contains(&start) && self.fits(model, profile, start)
    }

    /// `can_add` without the start check, for callers iterating `p.starts` already.
    fn fits(&self, model: &GpuModel, profile: ProfileIdx, start: u8) -> bool {
        let p = model.profile(profile);
        self.occupied & p.mask_at(start) == 0
            && self.compute + p.compute_slices <= model.compute_slices
            && self.counts[profile.0 as usize] < p.max_instances
            && !(self.media && p.kind.claims_media())
    }

    pub fn add(&mut self, model: &GpuModel, profile: ProfileIdx, start: u8) {
        let p = model.profile(profile);
        self.occupied |= p.mask_at(start);
        self.compute += p.compute_slices;
        self.counts[profile.0 as usize] += 1;
        self.media |= p.kind.claims_media();
    }

    /// Whether any instance of any profile could still be added.
    pub fn has_room(&self, model: &GpuModel, allowed: &dyn Fn(ProfileIdx) -> bool) -> bool {
        model
            .indexed_profiles()
            .any(|(idx, p)| allowed(idx) && p.starts.iter().any(|s| self.fits(model, idx, *s)))
    }

    /// How flexible the remaining free space is: for each profile, largest first, how many
    /// more of it alone would still fit. Compared lexicographically, a higher score keeps
    /// bigger instances possible (so small ones are packed away from where big ones go).
    fn flexibility(&self, model: &GpuModel, order: &[ProfileIdx]) -> [u8; 16] {
        let mut score = [0u8; 16];
        for (slot, idx) in order.iter().enumerate() {
            let mut b = *self;
            let mut n = 0;
            for s in model.profile(*idx).starts {
                if b.fits(model, *idx, *s) {
                    b.add(model, *idx, *s);
                    n += 1;
                }
            }
            score[slot] = n;
        }
        score
    }
}

/// Chooses placements for `wants` on a GPU where `fixed` instances stay. Wants with a fixed
/// start keep it. Among all complete placements the one leaving the most flexible free
/// space wins (then the lowest starts), so the answer is deterministic. Returns the
/// placed wants in the order given.
pub fn place(
    model: &GpuModel,
    fixed: &[Placed],
    wants: &[Want],
) -> Result<Vec<Placed>, LayoutErrors> {
    let board = Board::of(model, fixed);
    match place_on(model, board, wants, true) {
        Some(starts) => Ok(wants
            .iter()
            .zip(starts)
            .map(|(w, start)| Placed {
                start,
                profile: w.profile,
                cis: w.cis.clone(),
            })
            .collect()),
        None => Err(LayoutErrors(vec![LayoutError::Unplaceable {
            wanted: wants.iter().map(|w| w.display(model)).collect(),
            around: fixed.iter().map(|f| f.display(model)).collect(),
            model: model.name,
        }])),
    }
}

/// The search behind [`place`]: `best == false` stops at the first complete placement
/// (a feasibility test for the planner). Returns starts in the order of `wants`.
pub(crate) fn place_on(
    model: &GpuModel,
    board: Board,
    wants: &[Want],
    best: bool,
) -> Option<Vec<u8>> {
    // Biggest first, fixed before free; identical wants are placed at non-decreasing
    // starts so that permutations of equal instances are not searched twice.
    let mut order: Vec<usize> = (0..wants.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| {
            let p = model.profile(wants[i].profile);
            (
                wants[i].start.is_none(),
                std::cmp::Reverse(p.placement_size),
                std::cmp::Reverse(p.compute_slices),
            )
        };
        key(a).cmp(&key(b)).then_with(|| wants[a].cmp(&wants[b]))
    });
    let mut flex_order: Vec<ProfileIdx> = model.indexed_profiles().map(|(i, _)| i).collect();
    flex_order.sort_by_key(|i| {
        let p = model.profile(*i);
        (
            std::cmp::Reverse(p.placement_size),
            std::cmp::Reverse(p.compute_slices),
            p.kind != ProfileKind::Plain,
        )
    });
    let mut search = Search {
        model,
        wants,
        order: &order,
        flex_order: &flex_order,
        current: vec![0; wants.len()],
        best: None,
        exhaustive: best,
    };
    search.go(board, 0);
    search.best.map(|(_, starts)| starts)
}

struct Search<'a> {
    model: &'a GpuModel,
    wants: &'a [Want],
    order: &'a [usize],
    flex_order: &'a [ProfileIdx],
    current: Vec<u8>,
    best: Option<([u8; 16], Vec<u8>)>,
    exhaustive: bool,
}

impl Search<'_> {
    /// Returns true when the search can stop.
    fn go(&mut self, board: Board, depth: usize) -> bool {
        let Some(&wi) = self.order.get(depth) else {
            let score = board.flexibility(self.model, self.flex_order);
            let better = match &self.best {
                None => true,
                // Strictly greater only: the first found (lowest starts) wins ties.
                Some((s, _)) => score > *s,
            };
            if better {
                self.best = Some((score, self.current.clone()));
            }
            return !self.exhaustive;
        };
        let want = &self.wants[wi];
        let p = self.model.profile(want.profile);
        let min_start = match depth.checked_sub(1).map(|d| self.order[d]) {
            Some(prev) if self.wants[prev] == *want => self.current[prev],
            _ => 0,
        };
        for &start in p.starts {
            if start < min_start || want.start.is_some_and(|s| s != start) {
                continue;
            }
            if board.can_add(self.model, want.profile, start) {
                let mut next = board;
                next.add(self.model, want.profile, start);
                self.current[wi] = start;
                if self.go(next, depth + 1) {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find_model;

    fn idx(model: &GpuModel, name: &str) -> ProfileIdx {
        model.resolve(name).unwrap().gi
    }

    #[test]
    fn validation_names_collisions_and_maxima() {
        let m = find_model("H100-80GB").unwrap();
        let g3 = idx(m, "3g.40gb");
        let g2 = idx(m, "2g.20gb");
        let layout = vec![Placed::whole(m, g3, 0), Placed::whole(m, g2, 2)];
        let err = validate(m, &layout).unwrap_err().to_string();
        assert!(
            err.contains("3g.40gb@0 and 2g.20gb@2 overlap (memory slices 2, 3)"),
            "{err}"
        );

        let g1 = idx(m, "1g.10gb");
        let eight: Vec<Placed> = (0..7)
            .map(|s| Placed::whole(m, g1, s))
            .chain([Placed::whole(m, g1, 6)])
            .collect();
        let err = validate(m, &eight).unwrap_err().to_string();
        assert!(
            err.contains("8 instances of 1g.10gb exceed its maximum of 7"),
            "{err}"
        );

        let err = validate(m, &[Placed::whole(m, g3, 2)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "3g.40gb cannot start at memory slice 2 on H100-80GB: valid starts are 0, 4"
            ),
            "{err}"
        );

        let me = idx(m, "1g.10gb+me");
        let err = validate(m, &[Placed::whole(m, me, 0), Placed::whole(m, me, 1)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("one `+me` or `+me.all` instance at most"),
            "{err}"
        );
    }

    #[test]
    fn compute_instances_the_driver_does_not_offer_are_refused_with_the_offer() {
        for name in ["A100-40GB", "H100-80GB", "B200"] {
            let m = find_model(name).unwrap();
            let g4 = m
                .indexed_profiles()
                .find(|(i, p)| m.is_plain(*i) && p.compute_slices == 4)
                .map(|(i, _)| i)
                .unwrap();
            let gi = m.profile(g4).name;
            let with = |cis: Vec<u8>| Placed {
                start: 0,
                profile: g4,
                cis,
            };
            // A 4g offers 1c x4, 2c x2 and itself; no 3c.
            let err = validate(m, &[with(vec![3, 1])]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("offer (1c ×4, 2c ×2, {gi})")),
                "{name}: {err}"
            );
            for ok in [vec![4], vec![2, 2], vec![2, 1, 1], vec![1, 1, 1, 1]] {
                assert!(validate(m, &[with(ok.clone())]).is_ok(), "{name} {ok:?}");
            }
        }
    }

    #[test]
    fn placement_packs_small_instances_away_from_big_ones() {
        let m = find_model("A100-40GB").unwrap();
        let g3 = idx(m, "3g.20gb");
        let g1 = idx(m, "1g.5gb");
        let mut wants = vec![Want::whole(m, g3)];
        wants.extend((0..4).map(|_| Want::whole(m, g1)));
        let placed = place(m, &[], &wants).unwrap();
        assert_eq!(placed[0].start, 4, "3g must go to 4 so four 1g fit");
        let mut ones: Vec<u8> = placed[1..].iter().map(|p| p.start).collect();
        ones.sort();
        assert_eq!(ones, vec![0, 1, 2, 3]);
        validate(m, &placed).unwrap();
    }

    #[test]
    fn placement_reports_what_does_not_fit() {
        let m = find_model("A30").unwrap();
        let g4 = idx(m, "4g.24gb");
        let g1 = idx(m, "1g.6gb");
        let err = place(m, &[Placed::whole(m, g1, 3)], &[Want::whole(m, g4)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "4g.24gb cannot be placed together on A30-24GB around 1g.6gb@3"
        );
    }
}
