//! Packing benchmark: seeded demand traces (pods asking for one MIG instance each, of
//! sizes drawn from a fixed mix, arriving and leaving over time) played against fleets of
//! H100-80GB and A100-40GB GPUs, with five ways of deciding the instances:
//!
//! - `static`: mig-parted's `all-balanced` on every GPU, never changed (the GPU Operator
//!   with a fixed config);
//! - `first-fit`: one instance created per pod when it arrives, on the first GPU and the
//!   first placement where it fits, pods taken in profile-name order, the instance
//!   destroyed when its pod leaves (how the DRA driver's dynamic MIG places; those
//!   destructions count as reconfigurations);
//! - `nos-greedy`: nos' planner: pods smaller first, GPUs in order, each GPU given the
//!   allowed geometry (nos' 12 shapes) that keeps its used devices and provides the most
//!   of what is still lacking, and, as nos' agent does, every free device of a GPU that
//!   gets a new one deleted and created again;
//! - `migfleet`: `migfleet_mig::demand::pack` over the whole fleet;
//! - `optimum`: every combination of layouts, on fleets small enough to enumerate.
//!
//! Each step: pods whose time is up leave; new pods arrive; the strategy reconfigures; then
//! pending pods take idle instances of their profile. Measured per strategy (over all
//! seeds): demand satisfied (pods that got an instance at a step, over pods waiting at
//! that step, summed over steps), pods still waiting per step, fragmentation (free
//! compute slices, i.e. slices of no busy instance, on GPUs where the largest waiting
//! profile cannot be placed, per step), and idle instances destroyed per
//! reconfiguration. On the small fleets every decision of migfleet's packer is also
//! scored against the exhaustive optimum from the same state. Prints a Markdown block
//! for `docs/benchmarks.md`.
//!
//! Run with `cargo bench --bench packing`.

use migfleet_mig::catalog::{GpuModel, ProfileIdx, find_model};
use migfleet_mig::demand::{Ask, GpuNow, pack};
use migfleet_mig::geometry::{Geometry, ProfileSet, layouts};
use migfleet_mig::layout::{Placed, Want, place_wants, validate};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A small deterministic generator (64-bit LCG, high bits), so a seed means one trace.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

#[derive(Clone, Debug)]
struct Pod {
    id: usize,
    /// Compute slices of the profile asked for (1, 2, 3, 4 or 7).
    slices: u8,
    arrive: usize,
    leave_after: usize,
}

/// Profile sizes and their weights in the mix: mostly small asks, a few whole GPUs.
const MIX: [(u8, u32); 5] = [(1, 45), (2, 20), (3, 18), (4, 10), (7, 7)];

fn trace(seed: u64, steps: usize, rate: u32) -> Vec<Pod> {
    let mut rng = Rng(seed);
    let total: u32 = MIX.iter().map(|m| m.1).sum();
    let mut pods = Vec::new();
    for t in 0..steps {
        for _ in 0..rng.below(2 * rate + 1) {
            let mut r = rng.below(total);
            let mut slices = 1;
            for (s, w) in MIX {
                if r < w {
                    slices = s;
                    break;
                }
                r -= w;
            }
            pods.push(Pod {
                id: pods.len(),
                slices,
                arrive: t,
                leave_after: 1 + rng.below(8) as usize,
            });
        }
    }
    pods
}

/// The plain profile of a model with `slices` compute slices.
fn profile(model: &GpuModel, slices: u8) -> ProfileIdx {
    model
        .indexed_profiles()
        .find(|(i, p)| model.is_plain(*i) && p.compute_slices == slices)
        .map(|(i, _)| i)
        .expect("every model in the benchmark has plain profiles of 1, 2, 3, 4 and 7 slices")
}

#[derive(Clone, Debug)]
struct Inst {
    profile: ProfileIdx,
    start: u8,
    pod: Option<usize>,
}

#[derive(Clone)]
struct Gpu {
    model: &'static GpuModel,
    insts: Vec<Inst>,
}

impl Gpu {
    fn placed(&self) -> Vec<Placed> {
        self.insts
            .iter()
            .map(|i| Placed::whole(self.model, i.profile, i.start))
            .collect()
    }
    fn busy_placed(&self) -> Vec<Placed> {
        self.insts
            .iter()
            .filter(|i| i.pod.is_some())
            .map(|i| Placed::whole(self.model, i.profile, i.start))
            .collect()
    }
    /// Makes the GPU's layout `target`, keeping instances present in both; returns how
    /// many idle instances were destroyed and how many created.
    fn set(&mut self, target: &Geometry) -> (u32, u32) {
        let before = self.insts.clone();
        let destroyed = before
            .iter()
            .filter(|i| !target.contains(&(i.profile, i.start)))
            .count() as u32;
        assert!(
            before
                .iter()
                .filter(|i| i.pod.is_some())
                .all(|i| target.contains(&(i.profile, i.start))),
            "a busy instance would be destroyed"
        );
        let mut insts = Vec::new();
        let mut created = 0;
        for (p, s) in target {
            match before.iter().find(|i| i.profile == *p && i.start == *s) {
                Some(i) => insts.push(i.clone()),
                None => {
                    created += 1;
                    insts.push(Inst {
                        profile: *p,
                        start: *s,
                        pod: None,
                    });
                }
            }
        }
        self.insts = insts;
        (destroyed, created)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Strategy {
    Static,
    FirstFit,
    NosGreedy,
    Migfleet,
    Optimum,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Static => "static all-balanced",
            Strategy::FirstFit => "first-fit (DRA)",
            Strategy::NosGreedy => "nos-like greedy",
            Strategy::Migfleet => "migfleet packer",
            Strategy::Optimum => "exhaustive optimum",
        }
    }
}

/// nos' allowed geometries (its shipped A100 list), as compute-slice multisets.
const NOS_GEOMETRIES: [&[(u8, u8)]; 12] = [
    &[(1, 7)],
    &[(1, 5), (2, 1)],
    &[(1, 3), (2, 2)],
    &[(1, 1), (2, 3)],
    &[(1, 2), (2, 1), (3, 1)],
    &[(2, 2), (3, 1)],
    &[(1, 3), (3, 1)],
    &[(1, 1), (2, 1), (3, 1)],
    &[(3, 2)],
    &[(1, 3), (4, 1)],
    &[(1, 1), (2, 1), (4, 1)],
    &[(7, 1)],
];

#[derive(Default, Clone, Copy)]
struct Totals {
    waiting_at_decision: u64,
    served: u64,
    waiting_steps: u64,
    frag_slices: u64,
    steps: u64,
    destroyed: u64,
    reconfigs: u64,
    decide: Duration,
    /// Decisions scored against the optimum, and how many equalled it.
    decisions: u64,
    optimal: u64,
}

fn layout_of(g: &Gpu) -> Geometry {
    let mut l: Geometry = g.insts.iter().map(|i| (i.profile, i.start)).collect();
    l.sort_by_key(|(p, s)| (*s, *p));
    l
}

/// Largest waiting ask, in compute slices.
fn largest(pending: &[Pod]) -> Option<u8> {
    pending.iter().map(|p| p.slices).max()
}

/// Whether profile `p` can be placed on `gpu` around its busy instances.
fn fits_around_busy(gpu: &Gpu, p: ProfileIdx) -> bool {
    let busy = gpu.busy_placed();
    gpu.model.profile(p).starts.iter().any(|s| {
        let mut l = busy.clone();
        l.push(Placed::whole(gpu.model, p, *s));
        validate(gpu.model, &l).is_ok()
    })
}

/// Every valid layout of a GPU keeping its busy instances (plain profiles).
fn keeping(gpu: &Gpu) -> Vec<Geometry> {
    let busy: Vec<(ProfileIdx, u8)> = gpu
        .insts
        .iter()
        .filter(|i| i.pod.is_some())
        .map(|i| (i.profile, i.start))
        .collect();
    let mut all = layouts(gpu.model, ProfileSet::Plain);
    all.insert(0, Vec::new());
    all.into_iter()
        .filter(|l| busy.iter().all(|b| l.contains(b)))
        .collect()
}

fn asks(fleet: &[Gpu], pending: &[Pod]) -> Vec<Ask> {
    let mut by: BTreeMap<u8, u32> = BTreeMap::new();
    for p in pending {
        *by.entry(p.slices).or_default() += 1;
    }
    by.into_iter()
        .map(|(s, n)| Ask {
            profile: fleet[0]
                .model
                .profile(profile(fleet[0].model, s))
                .name
                .to_string(),
            count: n,
            eligible: vec![true; fleet.len()],
        })
        .collect()
}

/// (served, served slices, -destroyed, -created) of giving each GPU `choice`.
fn score(fleet: &[Gpu], choice: &[&Geometry], pending: &[Pod]) -> (u32, u32, i32, i32) {
    let mut want: BTreeMap<u8, u32> = BTreeMap::new();
    for p in pending {
        *want.entry(p.slices).or_default() += 1;
    }
    let (mut served, mut slices, mut destroyed, mut created) = (0, 0, 0, 0);
    for (g, l) in fleet.iter().zip(choice) {
        for (p, s) in l.iter() {
            let present = g.insts.iter().find(|i| i.profile == *p && i.start == *s);
            if present.is_none() {
                created += 1;
            }
            if present.is_some_and(|i| i.pod.is_some()) {
                continue;
            }
            let c = g.model.profile(*p).compute_slices;
            if let Some(n) = want.get_mut(&c).filter(|n| **n > 0) {
                *n -= 1;
                served += 1;
                slices += u32::from(c);
            }
        }
        destroyed += g
            .insts
            .iter()
            .filter(|i| !l.contains(&(i.profile, i.start)))
            .count() as i32;
    }
    (served, slices, -destroyed, -created)
}

fn optimum(fleet: &[Gpu], pending: &[Pod]) -> Vec<Geometry> {
    let options: Vec<Vec<Geometry>> = fleet.iter().map(keeping).collect();
    let mut idx = vec![0usize; fleet.len()];
    type Best = ((u32, u32, i32, i32), Vec<usize>);
    let mut best: Option<Best> = None;
    loop {
        let choice: Vec<&Geometry> = idx.iter().zip(&options).map(|(i, o)| &o[*i]).collect();
        let s = score(fleet, &choice, pending);
        if best.as_ref().is_none_or(|b| s > b.0) {
            best = Some((s, idx.clone()));
        }
        let mut k = 0;
        loop {
            if k == idx.len() {
                let (_, b) = best.expect("the empty layout is always a choice");
                return b.iter().zip(&options).map(|(i, o)| o[*i].clone()).collect();
            }
            idx[k] += 1;
            if idx[k] < options[k].len() {
                break;
            }
            idx[k] = 0;
            k += 1;
        }
    }
}

/// Reconfigures the fleet for the waiting pods; returns idle instances destroyed, and
/// whether anything changed.
fn reconfigure(s: Strategy, fleet: &mut [Gpu], pending: &[Pod]) -> (u32, bool) {
    match s {
        Strategy::Static => (0, false),
        Strategy::FirstFit => {
            let mut order: Vec<&Pod> = pending.iter().collect();
            // Profile-name order: "1g..." < "2g..." < ... < "7g...".
            order.sort_by_key(|p| (p.slices, p.id));
            let mut changed = false;
            for pod in order {
                'gpus: for g in fleet.iter_mut() {
                    let p = profile(g.model, pod.slices);
                    // An idle instance of its own (made for an earlier pod this step).
                    let mut l = g.placed();
                    for start in g.model.profile(p).starts {
                        l.push(Placed::whole(g.model, p, *start));
                        if validate(g.model, &l).is_ok() {
                            g.insts.push(Inst {
                                profile: p,
                                start: *start,
                                pod: None,
                            });
                            changed = true;
                            break 'gpus;
                        }
                        l.pop();
                    }
                }
            }
            (0, changed)
        }
        Strategy::NosGreedy => {
            // What is lacking: asks beyond the idle instances there are.
            let mut lacking: BTreeMap<u8, u32> = BTreeMap::new();
            for p in pending {
                *lacking.entry(p.slices).or_default() += 1;
            }
            for g in fleet.iter() {
                for i in g.insts.iter().filter(|i| i.pod.is_none()) {
                    let c = g.model.profile(i.profile).compute_slices;
                    if let Some(n) = lacking.get_mut(&c).filter(|n| **n > 0) {
                        *n -= 1;
                    }
                }
            }
            if lacking.values().all(|n| *n == 0) {
                return (0, false);
            }
            let (mut destroyed, mut changed) = (0, false);
            for g in fleet.iter_mut() {
                if lacking.values().all(|n| *n == 0) {
                    break;
                }
                let used: BTreeMap<u8, u8> =
                    g.insts
                        .iter()
                        .filter(|i| i.pod.is_some())
                        .fold(BTreeMap::new(), |mut m, i| {
                            *m.entry(g.model.profile(i.profile).compute_slices)
                                .or_default() += 1;
                            m
                        });
                let mut best: Option<(u32, Vec<Placed>, BTreeMap<u8, u8>)> = None;
                for geo in NOS_GEOMETRIES {
                    let counts: BTreeMap<u8, u8> = geo.iter().copied().collect();
                    if used
                        .iter()
                        .any(|(s, n)| counts.get(s).copied().unwrap_or(0) < *n)
                    {
                        continue;
                    }
                    // Placements around the busy instances (the agent's create order).
                    let mut wants: Vec<Want> = g
                        .insts
                        .iter()
                        .filter(|i| i.pod.is_some())
                        .map(|i| Want {
                            profile: i.profile,
                            start: Some(i.start),
                            cis: vec![g.model.profile(i.profile).compute_slices],
                        })
                        .collect();
                    for (s, n) in &counts {
                        let free = n - used.get(s).copied().unwrap_or(0);
                        for _ in 0..free {
                            wants.push(Want::whole(g.model, profile(g.model, *s)));
                        }
                    }
                    let Ok(placed) = place_wants(g.model, &wants) else {
                        continue;
                    };
                    let provides: u32 = counts
                        .iter()
                        .map(|(s, n)| {
                            u32::from(n - used.get(s).copied().unwrap_or(0))
                                .min(lacking.get(s).copied().unwrap_or(0))
                        })
                        .sum();
                    if best.as_ref().is_none_or(|b| provides > b.0) {
                        best = Some((provides, placed, counts));
                    }
                }
                let Some((provides, placed, counts)) = best else {
                    continue;
                };
                if provides == 0 {
                    continue;
                }
                let target: Geometry = placed.iter().map(|p| (p.profile, p.start)).collect();
                // nos' agent: a GPU that gets a new device has all its free devices
                // deleted and created again.
                let idle = g.insts.iter().filter(|i| i.pod.is_none()).count() as u32;
                g.insts.retain(|i| i.pod.is_some());
                let (_, created) = g.set(&target);
                if created > 0 || idle > 0 {
                    destroyed += idle;
                    changed = true;
                }
                for (s, n) in &counts {
                    if let Some(l) = lacking.get_mut(s) {
                        *l = l.saturating_sub(u32::from(*n));
                    }
                }
            }
            (destroyed, changed)
        }
        Strategy::Migfleet | Strategy::Optimum => {
            let targets = if s == Strategy::Migfleet {
                let now: Vec<GpuNow> = fleet
                    .iter()
                    .map(|g| GpuNow {
                        model: g.model,
                        instances: g
                            .insts
                            .iter()
                            .map(|i| (i.profile, i.start, i.pod.is_some()))
                            .collect(),
                    })
                    .collect();
                pack(&now, &asks(fleet, pending)).layouts
            } else {
                optimum(fleet, pending)
            };
            let (mut destroyed, mut changed) = (0, false);
            for (g, t) in fleet.iter_mut().zip(&targets) {
                let (d, c) = g.set(t);
                destroyed += d;
                changed |= d + c > 0;
            }
            (destroyed, changed)
        }
    }
}

fn play(s: Strategy, model: &'static GpuModel, n: usize, pods: &[Pod], steps: usize) -> Totals {
    let mut fleet: Vec<Gpu> = (0..n)
        .map(|_| Gpu {
            model,
            insts: Vec::new(),
        })
        .collect();
    if s == Strategy::Static {
        for g in &mut fleet {
            let wants: Vec<Want> = [1, 1, 2, 3]
                .iter()
                .map(|c| Want::whole(model, profile(model, *c)))
                .collect();
            let placed = place_wants(model, &wants).expect("all-balanced fits every 7-slice model");
            g.set(&placed.iter().map(|p| (p.profile, p.start)).collect());
        }
    }
    let mut t = Totals::default();
    let mut pending: Vec<Pod> = Vec::new();
    let mut running: Vec<(usize, usize)> = Vec::new(); // (pod id, leaves at)
    for step in 0..steps {
        // Departures: the instance goes idle (first-fit destroys it, as DRA does).
        let leaving: Vec<usize> = running
            .iter()
            .filter(|(_, at)| *at == step)
            .map(|(id, _)| *id)
            .collect();
        running.retain(|(_, at)| *at != step);
        let mut gone = 0;
        for g in &mut fleet {
            for i in &mut g.insts {
                if i.pod.is_some_and(|p| leaving.contains(&p)) {
                    i.pod = None;
                }
            }
            if s == Strategy::FirstFit {
                let before = g.insts.len();
                g.insts.retain(|i| i.pod.is_some());
                gone += (before - g.insts.len()) as u64;
            }
        }
        let arriving: Vec<Pod> = pods.iter().filter(|p| p.arrive == step).cloned().collect();
        pending.extend(arriving);
        t.waiting_at_decision += pending.len() as u64;
        if s == Strategy::Migfleet && fleet.len() <= 2 {
            // The packer's decision against the exhaustive optimum, from this state.
            let mut a = fleet.clone();
            let mut b = fleet.clone();
            reconfigure(Strategy::Migfleet, &mut a, &pending);
            reconfigure(Strategy::Optimum, &mut b, &pending);
            let la: Vec<Geometry> = a.iter().map(layout_of).collect();
            let lb: Vec<Geometry> = b.iter().map(layout_of).collect();
            let sa = score(&fleet, &la.iter().collect::<Vec<_>>(), &pending);
            let sb = score(&fleet, &lb.iter().collect::<Vec<_>>(), &pending);
            t.decisions += 1;
            t.optimal += u64::from(sa == sb);
        }
        let started = Instant::now();
        let (destroyed, changed) = reconfigure(s, &mut fleet, &pending);
        t.decide += started.elapsed();
        // First-fit's instances go with their pods: those are reconfigurations too.
        t.destroyed += u64::from(destroyed) + gone;
        t.reconfigs += u64::from(changed || gone > 0);
        // Pending pods (in arrival order) take idle instances of their size.
        let mut still = Vec::new();
        for pod in pending.drain(..) {
            let slot = fleet.iter_mut().find_map(|g| {
                let m = g.model;
                g.insts
                    .iter_mut()
                    .find(|i| i.pod.is_none() && m.profile(i.profile).compute_slices == pod.slices)
            });
            match slot {
                Some(i) => {
                    i.pod = Some(pod.id);
                    running.push((pod.id, step + pod.leave_after));
                    t.served += 1;
                }
                None => still.push(pod),
            }
        }
        pending = still;
        t.waiting_steps += pending.len() as u64;
        if let Some(big) = largest(&pending) {
            for g in &fleet {
                if !fits_around_busy(g, profile(g.model, big)) {
                    let busy: u8 = g
                        .insts
                        .iter()
                        .filter(|i| i.pod.is_some())
                        .map(|i| g.model.profile(i.profile).compute_slices)
                        .sum();
                    t.frag_slices += u64::from(g.model.compute_slices - busy);
                }
            }
        }
        t.steps += 1;
    }
    t
}

fn main() {
    let steps = 60;
    let seeds: Vec<u64> = (1..=5).collect();
    println!(
        "| fleet | strategy | demand satisfied | waiting pods / step | fragmented slices / step | idle destroyed / reconfig | decide time / step |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut checks = Vec::new();
    let fleets: [(&str, usize, u32); 6] = [
        ("H100-80GB", 2, 1),
        ("A100-40GB", 2, 1),
        ("H100-80GB", 8, 3),
        ("A100-40GB", 8, 3),
        ("H100-80GB", 32, 10),
        ("A100-40GB", 32, 10),
    ];
    for (name, n, rate) in fleets {
        let model = find_model(name).expect("the benchmark models are in the catalog");
        let mut strategies = vec![
            Strategy::Static,
            Strategy::FirstFit,
            Strategy::NosGreedy,
            Strategy::Migfleet,
        ];
        if n <= 2 {
            strategies.push(Strategy::Optimum);
        }
        for s in strategies {
            let mut sum = Totals::default();
            for seed in &seeds {
                let pods = trace(
                    *seed * 1000 + n as u64 + u64::from(model.memory_mib_seed()),
                    steps,
                    rate,
                );
                let t = play(s, model, n, &pods, steps);
                sum.waiting_at_decision += t.waiting_at_decision;
                sum.served += t.served;
                sum.decisions += t.decisions;
                sum.optimal += t.optimal;
                sum.waiting_steps += t.waiting_steps;
                sum.frag_slices += t.frag_slices;
                sum.steps += t.steps;
                sum.destroyed += t.destroyed;
                sum.reconfigs += t.reconfigs;
                sum.decide += t.decide;
            }
            println!(
                "| {n}× {name} | {} | {:.1}% | {:.2} | {:.2} | {:.2} | {:.1} µs |",
                s.name(),
                100.0 * sum.served as f64 / sum.waiting_at_decision.max(1) as f64,
                sum.waiting_steps as f64 / sum.steps as f64,
                sum.frag_slices as f64 / sum.steps as f64,
                sum.destroyed as f64 / sum.reconfigs.max(1) as f64,
                sum.decide.as_secs_f64() * 1e6 / sum.steps as f64,
            );
            if sum.decisions > 0 {
                checks.push(format!(
                    "- {n}× {name}: the packer's decision equalled the exhaustive optimum's score in {} of {} decisions",
                    sum.optimal, sum.decisions
                ));
            }
        }
    }
    println!();
    for c in checks {
        println!("{c}");
    }
}

/// A per-model offset for the trace seeds, so the two models get different traces.
trait SeedOf {
    fn memory_mib_seed(&self) -> u32;
}

impl SeedOf for GpuModel {
    fn memory_mib_seed(&self) -> u32 {
        self.name.bytes().map(u32::from).sum()
    }
}
