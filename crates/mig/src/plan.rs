//! The minimal-change planner: from the instances on a GPU now to a wanted layout, the
//! shortest ordered list of NVML operations, never touching an instance in use.
//!
//! The search decides, for every existing GPU instance, whether it stays (matched to a
//! wanted instance of the same profile and compatible placement, its compute instances
//! edited if needed) or goes, such that the wanted instances that are left can be placed
//! in the free space. It is exhaustive with pruning (a GPU holds at most 7 GIs), so the
//! plan is minimal in operation count; ties go to the plan that keeps more GIs, then to
//! the first in a fixed order, so the same input always gives the same plan.

use crate::catalog::{GiConst, GpuModel, ProfileIdx};
use crate::layout::{self, Board, LayoutErrors, Placed, Want, place_on, validate};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A compute instance that exists now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentCi {
    pub ci_id: u32,
    /// Compute slices.
    pub slices: u8,
    /// Processes run on it: it must not be destroyed.
    pub in_use: bool,
}

/// A GPU instance that exists now, with its compute instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentGi {
    pub gi_id: u32,
    pub profile: ProfileIdx,
    pub start: u8,
    pub cis: Vec<CurrentCi>,
}

impl CurrentGi {
    pub fn in_use(&self) -> bool {
        self.cis.iter().any(|c| c.in_use)
    }

    /// The GI as a placed instance (CI sizes largest first).
    pub fn placed(&self) -> Placed {
        let mut cis: Vec<u8> = self.cis.iter().map(|c| c.slices).collect();
        cis.sort_by(|a, b| b.cmp(a));
        Placed {
            start: self.start,
            profile: self.profile,
            cis,
        }
    }
}

/// Which GPU instance an operation acts on: one that exists (by GI id) or one created
/// earlier in the same plan (by its position among the plan's creations, from 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiRef {
    Existing(u32),
    New(u32),
}

impl fmt::Display for GiRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiRef::Existing(id) => write!(f, "GI {id}"),
            GiRef::New(n) => write!(f, "new GI #{n}"),
        }
    }
}

/// One NVML operation. Executed in order; creations carry everything the agent needs
/// (`nvmlDeviceCreateGpuInstanceWithPlacement` takes the host's profile id for `nvml`
/// and the placement `{start, size}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    DestroyCi {
        gi_id: u32,
        ci_id: u32,
        profile: String,
    },
    DestroyGi {
        gi_id: u32,
        profile: String,
        start: u8,
    },
    CreateGi {
        new_gi: u32,
        profile: String,
        nvml: GiConst,
        start: u8,
        size: u8,
    },
    CreateCi {
        gi: GiRef,
        /// Driver spelling, e.g. `1c.3g.40gb` or `3g.40gb`.
        profile: String,
        /// Compute slices; also picks `NVML_COMPUTE_INSTANCE_PROFILE_<n>_SLICE`.
        slices: u8,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::DestroyCi {
                gi_id,
                ci_id,
                profile,
            } => {
                write!(f, "destroy CI {ci_id} ({profile}) in GI {gi_id}")
            }
            Op::DestroyGi {
                gi_id,
                profile,
                start,
            } => {
                write!(f, "destroy GI {gi_id} ({profile}@{start})")
            }
            Op::CreateGi {
                new_gi,
                profile,
                start,
                size,
                ..
            } => {
                write!(
                    f,
                    "create GI #{new_gi} {profile} at placement {{start {start}, size {size}}}"
                )
            }
            Op::CreateCi { gi, profile, .. } => write!(f, "create CI {profile} in {gi}"),
        }
    }
}

/// The planner's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// GI ids that stay (possibly with edited compute instances).
    pub kept: Vec<u32>,
    /// The layout after the plan, sorted by start.
    #[serde(skip)]
    pub after: Vec<Placed>,
}

/// An in-use instance that stands in the way of the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub gi_id: u32,
    pub instance: String,
    /// Compute instances with processes.
    pub ci_ids: Vec<u32>,
    pub reason: String,
}

/// Why no plan exists.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PlanError {
    #[error("the target layout is not valid on {model}: {errors}")]
    Target {
        model: &'static str,
        errors: LayoutErrors,
    },
    #[error("the current layout is not valid on {model}: {errors}")]
    Current {
        model: &'static str,
        errors: LayoutErrors,
    },
    #[error("the target cannot be reached without destroying instances in use: {}", blockers.iter().map(|b| format!("{} (GI {}, CI {} busy): {}", b.instance, b.gi_id, join_ids(&b.ci_ids), b.reason)).collect::<Vec<_>>().join("; "))]
    InUse { blockers: Vec<Blocker> },
}

fn join_ids(ids: &[u32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Plans the change from `current` to `target` on one GPU of `model`.
pub fn plan(model: &GpuModel, current: &[CurrentGi], target: &[Want]) -> Result<Plan, PlanError> {
    let placed_now: Vec<Placed> = current.iter().map(CurrentGi::placed).collect();
    validate(model, &placed_now).map_err(|errors| PlanError::Current {
        model: model.name,
        errors,
    })?;
    check_target(model, target)?;

    let mut gis: Vec<&CurrentGi> = current.iter().collect();
    gis.sort_by_key(|g| (g.start, g.gi_id));
    let mut wants: Vec<Want> = target.to_vec();
    wants.sort();

    let must_keep = |g: &CurrentGi| g.in_use();
    let Some(best) = search(model, &gis, &wants, &must_keep) else {
        return Err(explain_in_use(model, &gis, &wants));
    };
    Ok(build(model, &gis, &wants, &best))
}

fn check_target(model: &GpuModel, target: &[Want]) -> Result<(), PlanError> {
    layout::place_wants(model, target)
        .map(|_| ())
        .map_err(|errors| PlanError::Target {
            model: model.name,
            errors,
        })
}

/// The decision for one existing GI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Destroy,
    /// Stays as the wanted instance with this index.
    Keep(usize),
}

#[derive(Clone, Debug)]
struct Best {
    fates: Vec<Fate>,
    cost: (usize, usize),
}

/// Branch and bound over the fates of the existing GIs. `must_keep` GIs cannot be
/// destroyed. Returns the cheapest feasible assignment, or `None`.
fn search(
    model: &GpuModel,
    gis: &[&CurrentGi],
    wants: &[Want],
    must_keep: &dyn Fn(&CurrentGi) -> bool,
) -> Option<Best> {
    let mut s = Searcher {
        model,
        gis,
        wants,
        must_keep,
        fates: Vec::with_capacity(gis.len()),
        used: vec![false; wants.len()],
        best: None,
    };
    s.go(0, (0, 0), Board::default());
    s.best
}

struct Searcher<'a> {
    model: &'a GpuModel,
    gis: &'a [&'a CurrentGi],
    wants: &'a [Want],
    must_keep: &'a dyn Fn(&CurrentGi) -> bool,
    fates: Vec<Fate>,
    used: Vec<bool>,
    best: Option<Best>,
}

impl Searcher<'_> {
    fn go(&mut self, k: usize, cost: (usize, usize), board: Board) {
        if self.best.as_ref().is_some_and(|b| cost >= b.cost) {
            return;
        }
        let Some(gi) = self.gis.get(k).copied() else {
            self.leaf(cost, board);
            return;
        };
        for j in 0..self.wants.len() {
            let w = &self.wants[j];
            if self.used[j] || w.profile != gi.profile || w.start.is_some_and(|s| s != gi.start) {
                continue;
            }
            // Equal wants are interchangeable: only try the first free one.
            if (0..j).any(|i| !self.used[i] && self.wants[i] == *w) {
                continue;
            }
            let Some((destroy, create)) = ci_edit(gi, &w.cis) else {
                continue;
            };
            let mut next = board;
            next.add(self.model, gi.profile, gi.start);
            self.used[j] = true;
            self.fates.push(Fate::Keep(j));
            self.go(k + 1, (cost.0 + destroy.len() + create.len(), cost.1), next);
            self.fates.pop();
            self.used[j] = false;
        }
        if !(self.must_keep)(gi) {
            self.fates.push(Fate::Destroy);
            self.go(k + 1, (cost.0 + gi.cis.len() + 1, cost.1 + 1), board);
            self.fates.pop();
        }
    }

    fn leaf(&mut self, cost: (usize, usize), board: Board) {
        let rest: Vec<Want> = self
            .wants
            .iter()
            .zip(&self.used)
            .filter(|(_, used)| !**used)
            .map(|(w, _)| w.clone())
            .collect();
        let cost = (
            cost.0 + rest.iter().map(|w| 1 + w.cis.len()).sum::<usize>(),
            cost.1,
        );
        if self.best.as_ref().is_some_and(|b| cost >= b.cost) {
            return;
        }
        if place_on(self.model, board, &rest, false).is_some() {
            self.best = Some(Best {
                fates: self.fates.clone(),
                cost,
            });
        }
    }
}

/// Compute-instance edits that turn `gi`'s CIs into `want` (sizes): the CI ids to destroy
/// and the sizes to create. `None` when an in-use CI would have to go.
fn ci_edit(gi: &CurrentGi, want: &[u8]) -> Option<(Vec<u32>, Vec<u8>)> {
    let mut wanted: BTreeMap<u8, usize> = BTreeMap::new();
    for c in want {
        *wanted.entry(*c).or_default() += 1;
    }
    // In-use CIs claim the wanted slots first, then idle ones by ascending id.
    let mut cis: Vec<&CurrentCi> = gi.cis.iter().collect();
    cis.sort_by_key(|c| (!c.in_use, c.ci_id));
    let mut destroy = Vec::new();
    for c in cis {
        match wanted.get_mut(&c.slices) {
            Some(n) if *n > 0 => *n -= 1,
            _ if c.in_use => return None,
            _ => destroy.push(c.ci_id),
        }
    }
    destroy.sort_unstable();
    let mut create: Vec<u8> = wanted
        .iter()
        .flat_map(|(size, n)| std::iter::repeat_n(*size, *n))
        .collect();
    create.sort_by(|a, b| b.cmp(a));
    Some((destroy, create))
}

fn build(model: &GpuModel, gis: &[&CurrentGi], wants: &[Want], best: &Best) -> Plan {
    let mut ops = Vec::new();
    let mut kept = Vec::new();
    let mut board = Board::default();
    let mut used = vec![false; wants.len()];
    // Kept GIs that need CIs created after the destroys: (start, gi, sizes).
    let mut ci_creates: Vec<(u8, u32, &GpuModel, ProfileIdx, Vec<u8>)> = Vec::new();
    let mut after = Vec::new();

    for (gi, fate) in gis.iter().zip(&best.fates) {
        let p = model.profile(gi.profile);
        match fate {
            Fate::Destroy => {
                let mut ids: Vec<&CurrentCi> = gi.cis.iter().collect();
                ids.sort_by_key(|c| c.ci_id);
                for c in ids {
                    ops.push(Op::DestroyCi {
                        gi_id: gi.gi_id,
                        ci_id: c.ci_id,
                        profile: ci_name(model, gi.profile, c.slices),
                    });
                }
                ops.push(Op::DestroyGi {
                    gi_id: gi.gi_id,
                    profile: p.name.to_string(),
                    start: gi.start,
                });
            }
            Fate::Keep(j) => {
                used[*j] = true;
                kept.push(gi.gi_id);
                board.add(model, gi.profile, gi.start);
                let (destroy, create) = ci_edit(gi, &wants[*j].cis).unwrap_or_default();
                for ci_id in destroy {
                    let slices = gi
                        .cis
                        .iter()
                        .find(|c| c.ci_id == ci_id)
                        .map_or(0, |c| c.slices);
                    ops.push(Op::DestroyCi {
                        gi_id: gi.gi_id,
                        ci_id,
                        profile: ci_name(model, gi.profile, slices),
                    });
                }
                if !create.is_empty() {
                    ci_creates.push((gi.start, gi.gi_id, model, gi.profile, create));
                }
                after.push(Placed {
                    start: gi.start,
                    profile: gi.profile,
                    cis: wants[*j].cis.clone(),
                });
            }
        }
    }

    let rest: Vec<Want> = wants
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(w, _)| w.clone())
        .collect();
    let starts = place_on(model, board, &rest, true).unwrap_or_default();
    let mut creations: Vec<(u8, Option<u32>, ProfileIdx, Vec<u8>)> = ci_creates
        .into_iter()
        .map(|(start, id, _, profile, sizes)| (start, Some(id), profile, sizes))
        .collect();
    for (w, start) in rest.iter().zip(starts) {
        creations.push((start, None, w.profile, w.cis.clone()));
        after.push(Placed {
            start,
            profile: w.profile,
            cis: w.cis.clone(),
        });
    }
    creations.sort_by_key(|(start, _, _, _)| *start);
    let mut next_new = 0u32;
    for (start, existing, profile, sizes) in creations {
        let gi = match existing {
            Some(id) => GiRef::Existing(id),
            None => {
                let p = model.profile(profile);
                ops.push(Op::CreateGi {
                    new_gi: next_new,
                    profile: p.name.to_string(),
                    nvml: p.nvml,
                    start,
                    size: p.placement_size,
                });
                next_new += 1;
                GiRef::New(next_new - 1)
            }
        };
        for slices in sizes {
            ops.push(Op::CreateCi {
                gi,
                profile: ci_name(model, profile, slices),
                slices,
            });
        }
    }
    after.sort();
    Plan { ops, kept, after }
}

fn ci_name(model: &GpuModel, profile: ProfileIdx, slices: u8) -> String {
    let p = model.profile(profile);
    match p.ci_profile(slices) {
        Some(ci) => ci.name(),
        None => format!("{slices}c.{}", p.name),
    }
}

/// Names the in-use instances that make the target unreachable, each with the reason.
fn explain_in_use(model: &GpuModel, gis: &[&CurrentGi], wants: &[Want]) -> PlanError {
    let busy: Vec<&CurrentGi> = gis.iter().copied().filter(|g| g.in_use()).collect();
    let blocker = |g: &CurrentGi, reason: String| Blocker {
        gi_id: g.gi_id,
        instance: g.placed().display(model),
        ci_ids: g.cis.iter().filter(|c| c.in_use).map(|c| c.ci_id).collect(),
        reason,
    };
    let mut blockers = Vec::new();
    for g in &busy {
        let compatible = wants.iter().any(|w| {
            w.profile == g.profile
                && w.start.is_none_or(|s| s == g.start)
                && ci_edit(g, &w.cis).is_some()
        });
        if !compatible {
            blockers.push(blocker(
                g,
                "the target has no matching instance to keep it as".into(),
            ));
            continue;
        }
        let alone = |other: &CurrentGi| other.gi_id == g.gi_id;
        if search(model, gis, wants, &alone).is_none() {
            blockers.push(blocker(
                g,
                "keeping it leaves no room for the rest of the target".into(),
            ));
        }
    }
    if blockers.is_empty() {
        for g in &busy {
            blockers.push(blocker(
                g,
                "these in-use instances together leave no room for the rest of the target".into(),
            ));
        }
    }
    PlanError::InUse { blockers }
}

/// Applies a plan to a current state the way the driver would, checking each operation:
/// destroys only of idle instances (and of GIs without CIs), creations only at free, valid
/// placements. New GIs get ids above the existing ones, new CIs ids from 0 per GI. Used by
/// tests and by dry runs to show the state after a plan.
pub fn simulate(
    model: &GpuModel,
    current: &[CurrentGi],
    ops: &[Op],
) -> Result<Vec<CurrentGi>, String> {
    let mut state: Vec<CurrentGi> = current.to_vec();
    let mut next_gi = state.iter().map(|g| g.gi_id).max().map_or(1, |m| m + 1);
    let mut new_ids: BTreeMap<u32, u32> = BTreeMap::new();
    for op in ops {
        match op {
            Op::DestroyCi { gi_id, ci_id, .. } => {
                let gi = state
                    .iter_mut()
                    .find(|g| g.gi_id == *gi_id)
                    .ok_or(format!("{op}: no such GI"))?;
                let pos = gi
                    .cis
                    .iter()
                    .position(|c| c.ci_id == *ci_id)
                    .ok_or(format!("{op}: no such CI"))?;
                if gi.cis[pos].in_use {
                    return Err(format!("{op}: CI is in use"));
                }
                gi.cis.remove(pos);
            }
            Op::DestroyGi { gi_id, .. } => {
                let pos = state
                    .iter()
                    .position(|g| g.gi_id == *gi_id)
                    .ok_or(format!("{op}: no such GI"))?;
                if !state[pos].cis.is_empty() {
                    return Err(format!("{op}: GI still has compute instances"));
                }
                state.remove(pos);
            }
            Op::CreateGi {
                new_gi,
                nvml,
                start,
                size,
                ..
            } => {
                let profile = model
                    .profile_by_const(*nvml)
                    .ok_or(format!("{op}: profile not on {}", model.name))?;
                if model.profile(profile).placement_size != *size {
                    return Err(format!("{op}: wrong placement size"));
                }
                let placed: Vec<Placed> = state.iter().map(CurrentGi::placed).collect();
                if !Board::of(model, &placed).can_add(model, profile, *start) {
                    return Err(format!("{op}: placement not free or not valid"));
                }
                new_ids.insert(*new_gi, next_gi);
                state.push(CurrentGi {
                    gi_id: next_gi,
                    profile,
                    start: *start,
                    cis: Vec::new(),
                });
                next_gi += 1;
            }
            Op::CreateCi { gi, slices, .. } => {
                let id = match gi {
                    GiRef::Existing(id) => *id,
                    GiRef::New(n) => *new_ids.get(n).ok_or(format!("{op}: GI not created yet"))?,
                };
                let g = state
                    .iter_mut()
                    .find(|g| g.gi_id == id)
                    .ok_or(format!("{op}: no such GI"))?;
                let mut sizes: Vec<u8> = g.cis.iter().map(|c| c.slices).collect();
                sizes.push(*slices);
                if layout::check_cis(model, g.profile, &sizes).is_err() {
                    return Err(format!("{op}: does not fit"));
                }
                let ci_id = g.cis.iter().map(|c| c.ci_id + 1).max().unwrap_or(0);
                g.cis.push(CurrentCi {
                    ci_id,
                    slices: *slices,
                    in_use: false,
                });
            }
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::find_model;

    fn gi(model: &GpuModel, id: u32, name: &str, start: u8, busy: bool) -> CurrentGi {
        let r = model.resolve(name).unwrap();
        CurrentGi {
            gi_id: id,
            profile: r.gi,
            start,
            cis: vec![CurrentCi {
                ci_id: 0,
                slices: r.ci_slices,
                in_use: busy,
            }],
        }
    }

    fn want(model: &GpuModel, name: &str, n: usize) -> Vec<Want> {
        (0..n)
            .map(|_| Want::whole(model, model.resolve(name).unwrap().gi))
            .collect()
    }

    fn texts(p: &Plan) -> Vec<String> {
        p.ops.iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn keeps_busy_instance_and_fills_around_it() {
        let m = find_model("H100-80GB").unwrap();
        let current = vec![gi(m, 1, "3g.40gb", 4, true), gi(m, 2, "3g.40gb", 0, false)];
        let mut target = want(m, "3g.40gb", 1);
        target.extend(want(m, "1g.10gb", 4));
        let p = plan(m, &current, &target).unwrap();
        assert_eq!(p.kept, vec![1]);
        assert_eq!(
            texts(&p),
            vec![
                "destroy CI 0 (3g.40gb) in GI 2",
                "destroy GI 2 (3g.40gb@0)",
                "create GI #0 1g.10gb at placement {start 0, size 1}",
                "create CI 1g.10gb in new GI #0",
                "create GI #1 1g.10gb at placement {start 1, size 1}",
                "create CI 1g.10gb in new GI #1",
                "create GI #2 1g.10gb at placement {start 2, size 1}",
                "create CI 1g.10gb in new GI #2",
                "create GI #3 1g.10gb at placement {start 3, size 1}",
                "create CI 1g.10gb in new GI #3",
            ]
        );
    }

    #[test]
    fn moves_an_idle_instance_when_its_placement_wastes_a_slice() {
        // 3g@0 leaves room for three 1g only; the target needs four, so the idle 3g moves.
        let m = find_model("A100-40GB").unwrap();
        let current = vec![gi(m, 1, "3g.20gb", 0, false), gi(m, 2, "1g.5gb", 4, false)];
        let mut target = want(m, "3g.20gb", 1);
        target.extend(want(m, "1g.5gb", 4));
        let p = plan(m, &current, &target).unwrap();
        let after: Vec<String> = p.after.iter().map(|x| x.display(m)).collect();
        assert_eq!(
            after,
            ["1g.5gb@0", "1g.5gb@1", "1g.5gb@2", "1g.5gb@3", "3g.20gb@4"]
        );
        assert!(p.kept.is_empty());
    }

    #[test]
    fn refuses_to_destroy_a_busy_instance_and_names_it() {
        let m = find_model("H100-80GB").unwrap();
        let current = vec![gi(m, 7, "2g.20gb", 2, true), gi(m, 8, "1g.10gb", 0, false)];
        let err = plan(m, &current, &want(m, "7g.80gb", 1)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("2g.20gb@2 (GI 7, CI 0 busy): the target has no matching instance"),
            "{text}"
        );
        assert!(!text.contains("GI 8"), "idle instance named: {text}");

        // Kept individually possible, but it blocks the 3g that must go to 0 or 4.
        let current = vec![gi(m, 3, "1g.10gb", 4, true)];
        let mut target = want(m, "4g.40gb", 1);
        target.extend(want(m, "3g.40gb", 1));
        let err = plan(m, &current, &target).unwrap_err().to_string();
        assert!(err.contains("1g.10gb@4"), "{err}");
    }

    #[test]
    fn edits_compute_instances_inside_a_kept_gpu_instance() {
        let m = find_model("H100-80GB").unwrap();
        let g3 = m.resolve("3g.40gb").unwrap().gi;
        let current = vec![CurrentGi {
            gi_id: 5,
            profile: g3,
            start: 0,
            cis: vec![
                CurrentCi {
                    ci_id: 0,
                    slices: 1,
                    in_use: true,
                },
                CurrentCi {
                    ci_id: 1,
                    slices: 2,
                    in_use: false,
                },
            ],
        }];
        let target = vec![Want {
            profile: g3,
            start: None,
            cis: vec![1, 1, 1],
        }];
        let p = plan(m, &current, &target).unwrap();
        assert_eq!(
            texts(&p),
            vec![
                "destroy CI 1 (2c.3g.40gb) in GI 5",
                "create CI 1c.3g.40gb in GI 5",
                "create CI 1c.3g.40gb in GI 5",
            ]
        );
    }

    #[test]
    fn invalid_target_is_explained() {
        let m = find_model("A30").unwrap();
        let err = plan(m, &[], &want(m, "2g.12gb", 3))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the target layout is not valid on A30-24GB: 3 instances of 2g.12gb exceed its maximum of 2 on A30-24GB"
        );
    }
}
