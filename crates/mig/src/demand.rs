//! Packing a demand (instances wanted per profile, each ask allowed on some GPUs only)
//! onto a set of GPUs as they are now: a layout per GPU that serves the most of it,
//! never destroys an instance that must stay, and destroys the fewest idle instances.
//!
//! The choice is exact: a dynamic programme over the GPUs whose state is the demand still
//! unserved, so the result equals an exhaustive search over every combination of
//! layouts. When that state space is too large ([`STATE_LIMIT`]) the GPUs are taken one
//! by one, each given its best layout for what is left (still never destroying what must
//! stay). Both are deterministic: ties go to the first layout in enumeration order.
//!
//! Ranking, larger first, compared in order ([`Score`]):
//! 1. demanded instances served (roughly: pods that can start),
//! 2. compute slices of demanded instances served (bigger asks count more),
//! 3. idle instances destroyed, fewer first,
//! 4. instances created, fewer first (what is not asked for is not made),
//! 5. room left: the compute slices of the largest plain profile that still fits beside
//!    the layout, summed over GPUs (small instances go where they leave a big one room).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::catalog::{GpuModel, ProfileIdx};
use crate::geometry::{Geometry, ProfileSet, layouts};

/// Above this many states (combinations of unserved counts, times GPUs) the exact search
/// gives way to the GPU-by-GPU one.
pub const STATE_LIMIT: u64 = 500_000;

/// A GPU as it is now.
#[derive(Clone, Debug)]
pub struct GpuNow {
    pub model: &'static GpuModel,
    /// Current instances: profile, start, and whether it must stay (in use).
    pub instances: Vec<(ProfileIdx, u8, bool)>,
}

/// Instances of one profile wanted, on the GPUs `eligible` allows (indexed like the GPUs
/// given to [`pack`]).
#[derive(Clone, Debug)]
pub struct Ask {
    /// Profile name, resolved per GPU model (a model without it cannot serve the ask).
    pub profile: String,
    pub count: u32,
    pub eligible: Vec<bool>,
}

/// How good a plan is; larger is better, compared field by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    pub served: u32,
    pub served_slices: u32,
    /// Negated: fewer destroyed is better.
    pub neg_destroyed: i32,
    /// Negated: fewer created is better.
    pub neg_created: i32,
    /// Slices of the largest plain profile that still fits, summed over GPUs.
    pub room: u32,
}

impl Score {
    fn add(self, o: Score) -> Score {
        Score {
            served: self.served + o.served,
            served_slices: self.served_slices + o.served_slices,
            neg_destroyed: self.neg_destroyed + o.neg_destroyed,
            neg_created: self.neg_created + o.neg_created,
            room: self.room + o.room,
        }
    }
}

/// The plan: a layout per GPU, and how much of each ask each GPU serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    pub layouts: Vec<Geometry>,
    /// `served[gpu][ask]`.
    pub served: Vec<Vec<u32>>,
    pub score: Score,
    /// Whether the exact search was used.
    pub exact: bool,
}

impl Packed {
    pub fn destroyed(&self) -> u32 {
        self.score.neg_destroyed.unsigned_abs()
    }
}

/// One candidate layout of one GPU: what it costs, and what it offers per profile.
#[derive(Clone, Debug)]
struct Candidate {
    layout: Geometry,
    /// Instances free to serve, by profile.
    free: Vec<(ProfileIdx, u32)>,
    destroyed: i32,
    created: i32,
    /// Compute slices of the largest plain profile that still fits beside the layout.
    room: u32,
}

/// Every layout of a model (the empty one first) with its [`room`], enumerated once per
/// model and process.
fn layouts_with_room(model: &'static GpuModel) -> Arc<Vec<(Geometry, u32)>> {
    type Rooms = Arc<Vec<(Geometry, u32)>>;
    static CACHE: OnceLock<Mutex<HashMap<&'static str, Rooms>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    cache
        .entry(model.name)
        .or_insert_with(|| {
            let mut all = layouts(model, ProfileSet::All);
            all.insert(0, Vec::new());
            Arc::new(
                all.into_iter()
                    .map(|l| {
                        let r = room(model, &l);
                        (l, r)
                    })
                    .collect(),
            )
        })
        .clone()
}

/// Compute slices of the largest plain profile that fits beside `layout`.
fn room(model: &GpuModel, layout: &Geometry) -> u32 {
    let placed: Vec<crate::layout::Placed> = layout
        .iter()
        .map(|(p, s)| crate::layout::Placed::whole(model, *p, *s))
        .collect();
    model
        .indexed_profiles()
        .filter(|(i, _)| model.is_plain(*i))
        .filter(|(i, p)| {
            p.starts.iter().any(|s| {
                let mut l = placed.clone();
                l.push(crate::layout::Placed::whole(model, *i, *s));
                crate::layout::validate(model, &l).is_ok()
            })
        })
        .map(|(_, p)| u32::from(p.compute_slices))
        .max()
        .unwrap_or(0)
}

/// Every layout of `gpu` that keeps its instances that must stay, one per distinct offer
/// (the fewest destroyed, then created, then the first in enumeration order).
fn candidates(gpu: &GpuNow) -> Vec<Candidate> {
    let fixed: Vec<(ProfileIdx, u8)> = gpu
        .instances
        .iter()
        .filter(|i| i.2)
        .map(|i| (i.0, i.1))
        .collect();
    let current: Vec<(ProfileIdx, u8)> = gpu.instances.iter().map(|i| (i.0, i.1)).collect();
    let all = layouts_with_room(gpu.model);
    let mut best: HashMap<Vec<(ProfileIdx, u32)>, Candidate> = HashMap::new();
    let mut order: Vec<Vec<(ProfileIdx, u32)>> = Vec::new();
    for (layout, room) in all.iter() {
        if !fixed.iter().all(|f| layout.contains(f)) {
            continue;
        }
        let mut free: Vec<(ProfileIdx, u32)> = Vec::new();
        for (p, s) in layout {
            if fixed.contains(&(*p, *s)) {
                continue;
            }
            match free.iter_mut().find(|(q, _)| q == p) {
                Some(e) => e.1 += 1,
                None => free.push((*p, 1)),
            }
        }
        free.sort();
        let destroyed = current.iter().filter(|c| !layout.contains(c)).count() as i32;
        let created = layout.iter().filter(|l| !current.contains(l)).count() as i32;
        let c = Candidate {
            room: *room,
            layout: layout.clone(),
            free: free.clone(),
            destroyed,
            created,
        };
        match best.get_mut(&free) {
            Some(b) => {
                let rank = |c: &Candidate| (c.destroyed, c.created, std::cmp::Reverse(c.room));
                if rank(&c) < rank(b) {
                    *b = c;
                }
            }
            None => {
                order.push(free.clone());
                best.insert(free, c);
            }
        }
    }
    order.into_iter().filter_map(|k| best.remove(&k)).collect()
}

/// What candidate `c` of GPU `g` serves of `left` (asks in order), and its score.
fn serve(
    g: usize,
    gpu: &GpuNow,
    c: &Candidate,
    asks: &[(Ask, Vec<Option<ProfileIdx>>)],
    left: &[u32],
) -> (Vec<u32>, Score) {
    let mut free = c.free.clone();
    let mut took = vec![0u32; asks.len()];
    let mut score = Score {
        neg_destroyed: -c.destroyed,
        neg_created: -c.created,
        room: c.room,
        ..Score::default()
    };
    for (i, (ask, idx)) in asks.iter().enumerate() {
        if !ask.eligible[g] || left[i] == 0 {
            continue;
        }
        let Some(p) = idx[g] else { continue };
        if let Some(slot) = free.iter_mut().find(|(q, _)| *q == p) {
            let n = slot.1.min(left[i]);
            slot.1 -= n;
            took[i] = n;
            score.served += n;
            score.served_slices += n * u32::from(gpu.model.profile(p).compute_slices);
        }
    }
    (took, score)
}

/// Packs `asks` onto `gpus`; see the module doc.
pub fn pack(gpus: &[GpuNow], asks: &[Ask]) -> Packed {
    let resolved: Vec<(Ask, Vec<Option<ProfileIdx>>)> = asks
        .iter()
        .map(|a| {
            let idx = gpus
                .iter()
                .map(|g| {
                    g.model
                        .resolve(&a.profile)
                        .ok()
                        .filter(|r| g.model.profile(r.gi).compute_slices == r.ci_slices)
                        .map(|r| r.gi)
                })
                .collect();
            (a.clone(), idx)
        })
        .collect();
    let cands: Vec<Vec<Candidate>> = gpus.iter().map(candidates).collect();
    let start: Vec<u32> = asks.iter().map(|a| a.count).collect();
    let states: u64 = start
        .iter()
        .map(|c| u64::from(*c) + 1)
        .try_fold(1u64, |acc, n| acc.checked_mul(n))
        .unwrap_or(u64::MAX);
    let exact = states.saturating_mul(gpus.len().max(1) as u64) <= STATE_LIMIT;
    let choice: Vec<usize> = if exact {
        let mut memo: HashMap<(usize, Vec<u32>), (Score, usize)> = HashMap::new();
        best_from(0, &start, gpus, &cands, &resolved, &mut memo);
        // Walk the memo along the best choices.
        let mut left = start.clone();
        let mut out = Vec::new();
        for g in 0..gpus.len() {
            let (_, k) = memo[&(g, left.clone())];
            let (took, _) = serve(g, &gpus[g], &cands[g][k], &resolved, &left);
            for (l, t) in left.iter_mut().zip(&took) {
                *l -= t;
            }
            out.push(k);
        }
        out
    } else {
        let mut left = start.clone();
        let mut out = Vec::new();
        for g in 0..gpus.len() {
            let mut best: Option<(Score, usize, Vec<u32>)> = None;
            for (k, c) in cands[g].iter().enumerate() {
                let (took, s) = serve(g, &gpus[g], c, &resolved, &left);
                if best.as_ref().is_none_or(|b| s > b.0) {
                    best = Some((s, k, took));
                }
            }
            let (_, k, took) = best.unwrap_or((Score::default(), 0, vec![0; asks.len()]));
            for (l, t) in left.iter_mut().zip(&took) {
                *l -= t;
            }
            out.push(k);
        }
        out
    };
    let mut left = start;
    let mut layouts = Vec::new();
    let mut served = Vec::new();
    let mut score = Score::default();
    for (g, k) in choice.into_iter().enumerate() {
        let c = &cands[g][k];
        let (took, s) = serve(g, &gpus[g], c, &resolved, &left);
        for (l, t) in left.iter_mut().zip(&took) {
            *l -= t;
        }
        score = score.add(s);
        layouts.push(c.layout.clone());
        served.push(took);
    }
    Packed {
        layouts,
        served,
        score,
        exact,
    }
}

/// The best score GPUs `g..` can add with `left` unserved; records the choice per state.
fn best_from(
    g: usize,
    left: &[u32],
    gpus: &[GpuNow],
    cands: &[Vec<Candidate>],
    asks: &[(Ask, Vec<Option<ProfileIdx>>)],
    memo: &mut HashMap<(usize, Vec<u32>), (Score, usize)>,
) -> Score {
    if g == gpus.len() {
        return Score::default();
    }
    if let Some((s, _)) = memo.get(&(g, left.to_vec())) {
        return *s;
    }
    let mut best: Option<(Score, usize)> = None;
    for (k, c) in cands[g].iter().enumerate() {
        let (took, s) = serve(g, &gpus[g], c, asks, left);
        let rest: Vec<u32> = left.iter().zip(&took).map(|(l, t)| l - t).collect();
        let total = s.add(best_from(g + 1, &rest, gpus, cands, asks, memo));
        if best.is_none_or(|b| total > b.0) {
            best = Some((total, k));
        }
    }
    let best = best.unwrap_or((Score::default(), 0));
    memo.insert((g, left.to_vec()), best);
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find_model;
    use crate::geometry::display;

    fn h100() -> &'static GpuModel {
        find_model("H100-80GB").unwrap()
    }

    fn ask(profile: &str, count: u32, gpus: usize) -> Ask {
        Ask {
            profile: profile.into(),
            count,
            eligible: vec![true; gpus],
        }
    }

    #[test]
    fn serves_what_fits_and_keeps_instances_in_use() {
        let m = h100();
        let p = |n: &str| m.resolve(n).unwrap().gi;
        // GPU 0 runs a job on 3g.40gb@4; its idle 4g.40gb@0 may go.
        let gpus = vec![
            GpuNow {
                model: m,
                instances: vec![(p("4g.40gb"), 0, false), (p("3g.40gb"), 4, true)],
            },
            GpuNow {
                model: m,
                instances: vec![],
            },
        ];
        let r = pack(&gpus, &[ask("1g.10gb", 4, 2), ask("7g.80gb", 1, 2)]);
        assert!(r.exact);
        assert_eq!(r.score.served, 5);
        // The 7g can only go on the empty GPU; the 1g's replace the idle 4g.
        assert_eq!(display(m, &r.layouts[1]), "7g.80gb@0");
        assert_eq!(
            display(m, &r.layouts[0]),
            "1g.10gb@0 1g.10gb@1 1g.10gb@2 1g.10gb@3 3g.40gb@4"
        );
        assert_eq!(r.destroyed(), 1);
    }

    #[test]
    fn nothing_asked_changes_nothing_and_eligibility_is_honoured() {
        let m = h100();
        let p = |n: &str| m.resolve(n).unwrap().gi;
        let gpus = vec![
            GpuNow {
                model: m,
                instances: vec![(p("2g.20gb"), 0, false)],
            },
            GpuNow {
                model: m,
                instances: vec![],
            },
        ];
        let r = pack(&gpus, &[]);
        assert_eq!(display(m, &r.layouts[0]), "2g.20gb@0");
        assert!(r.layouts[1].is_empty());
        // Only GPU 1 may serve: GPU 0 keeps its instance.
        let r = pack(
            &gpus,
            &[Ask {
                profile: "3g.40gb".into(),
                count: 2,
                eligible: vec![false, true],
            }],
        );
        assert_eq!(display(m, &r.layouts[0]), "2g.20gb@0");
        assert_eq!(r.score.served, 2);
        assert_eq!(r.served, vec![vec![0], vec![2]]);
    }

    #[test]
    fn the_greedy_fallback_still_keeps_what_must_stay() {
        let m = h100();
        let p = |n: &str| m.resolve(n).unwrap().gi;
        let gpus: Vec<GpuNow> = (0..4)
            .map(|i| GpuNow {
                model: m,
                instances: if i == 0 {
                    vec![(p("1g.10gb"), 6, true)]
                } else {
                    vec![]
                },
            })
            .collect();
        let big = [ask("1g.10gb", 700, 4), ask("2g.20gb", 700, 4)];
        let r = pack(&gpus, &big);
        assert!(!r.exact);
        assert!(r.layouts[0].contains(&(p("1g.10gb"), 6)));
        assert_eq!(r.score.served, 28 - 1);
    }
}
