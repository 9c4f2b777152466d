//! Planner benchmark: (a) plans between every pair of maximal H100-80GB layouts, (b) plans
//! for 10,000 GPUs of mixed models with mixed current states and targets. Prints a
//! Markdown block for `docs/benchmarks.md`. Run with `cargo bench --bench planner`.
//!
//! A plain `harness = false` timer: the numbers that matter are wall time per batch and
//! the ratio between the cases, measured side by side in one run on one core.

use migfleet_mig::catalog::{GpuModel, find_model, models};
use migfleet_mig::geometry::{Geometry, ProfileSet, layouts, maximal_layouts};
use migfleet_mig::layout::Want;
use migfleet_mig::plan::{CurrentCi, CurrentGi, plan};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn current(model: &GpuModel, g: &Geometry, busy: impl Fn(usize) -> bool) -> Vec<CurrentGi> {
    g.iter()
        .enumerate()
        .map(|(i, (p, s))| CurrentGi {
            gi_id: i as u32 + 1,
            profile: *p,
            start: *s,
            cis: vec![CurrentCi {
                ci_id: 0,
                slices: model.profile(*p).compute_slices,
                in_use: busy(i),
            }],
        })
        .collect()
}

fn target(model: &GpuModel, g: &Geometry) -> Vec<Want> {
    g.iter().map(|(p, _)| Want::whole(model, *p)).collect()
}

/// Best of `runs` timings of `f`, to shave scheduler noise off a shared machine.
fn best_of(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..runs {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed());
    }
    (best, out)
}

/// A small deterministic generator so every run plans the same 10,000 GPUs.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn main() {
    let h100 = find_model("H100-80GB").expect("H100-80GB is in the catalog");
    println!("### Planner\n");
    for (label, set) in [
        ("plain", ProfileSet::Plain),
        ("all profiles", ProfileSet::All),
    ] {
        let maximal = maximal_layouts(h100, set);
        let pairs: Vec<(Vec<CurrentGi>, Vec<Want>)> = maximal
            .iter()
            .flat_map(|a| {
                maximal
                    .iter()
                    .map(move |b| (current(h100, a, |_| false), target(h100, b)))
            })
            .collect();
        let (t, ops) = best_of(5, || {
            pairs
                .iter()
                .map(|(c, w)| black_box(plan(h100, c, w)).map_or(0, |p| p.ops.len()))
                .sum()
        });
        // What mig-parted does for the same pairs: skip when the multisets are equal,
        // otherwise destroy every CI and GI and create the whole target.
        let teardown: usize = pairs
            .iter()
            .map(|(c, w)| {
                let mut have: Vec<_> = c.iter().map(|g| g.profile).collect();
                let mut want: Vec<_> = w.iter().map(|x| x.profile).collect();
                have.sort();
                want.sort();
                if have == want {
                    0
                } else {
                    2 * c.len() + 2 * w.len()
                }
            })
            .sum();
        println!(
            "- (a) every pair of maximal H100-80GB layouts ({label}): {} layouts, {} plans: {:.2} ms ({:.1} µs per plan); {} NVML operations in all, against {} for destroy-everything-and-recreate ({:.0}%)",
            maximal.len(),
            pairs.len(),
            t.as_secs_f64() * 1e3,
            t.as_secs_f64() * 1e6 / pairs.len() as f64,
            ops,
            teardown,
            100.0 * ops as f64 / teardown as f64
        );
    }

    // (b) 10,000 GPUs: each a random model, a random valid current layout with about one
    // GI in five busy, and a random maximal target of the same model.
    let per_model: Vec<(Vec<Geometry>, Vec<Geometry>)> = models()
        .iter()
        .map(|m| {
            (
                layouts(m, ProfileSet::All),
                maximal_layouts(m, ProfileSet::All),
            )
        })
        .collect();
    let mut rng = SplitMix(0x6d69_6766_6c65_6574);
    let mut gpus = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let mi = rng.below(models().len());
        let m = models()[mi];
        let (all, maximal) = &per_model[mi];
        let cur = &all[rng.below(all.len())];
        let busy: Vec<bool> = (0..cur.len()).map(|_| rng.below(5) == 0).collect();
        let current = current(m, cur, |i| busy[i]);
        let want = target(m, &maximal[rng.below(maximal.len())]);
        gpus.push((m, current, want));
    }
    let (t, ok) = best_of(5, || {
        gpus.iter()
            .filter(|(m, c, w)| black_box(plan(m, c, w)).is_ok())
            .count()
    });
    println!(
        "- (b) 10,000 GPUs, mixed models, current states and targets: {:.1} ms on one core ({:.1} µs per GPU); {} planned, {} refused because an in-use instance was in the way",
        t.as_secs_f64() * 1e3,
        t.as_secs_f64() * 1e6 / 10_000.0,
        ok,
        10_000 - ok
    );
}
