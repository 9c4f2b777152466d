//! Cost of evaluating a Lua partition policy for one GPU: a fresh sandboxed state per host
//! (as `migfleet run` makes), the policy loaded once, then called per GPU with the GPU's
//! facts as Lua tables. Run with `cargo bench --bench policy`.

#![allow(clippy::unwrap_used)]

use migfleet::playbook::{FnRef, Limits, new_lua, to_lua_value};
use serde_json::json;
use std::time::Instant;

fn main() {
    let gpu = json!({
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "model": "H100-80GB", "memory_mib": 81559,
        "mig_enabled": true, "instances": [],
        "profiles": [
            {"name": "1g.10gb", "plain": true, "compute_slices": 1, "memory_slices": 1, "max_instances": 7},
            {"name": "2g.20gb", "plain": true, "compute_slices": 2, "memory_slices": 2, "max_instances": 3},
            {"name": "3g.40gb", "plain": true, "compute_slices": 3, "memory_slices": 4, "max_instances": 2},
            {"name": "4g.40gb", "plain": true, "compute_slices": 4, "memory_slices": 4, "max_instances": 1},
            {"name": "7g.80gb", "plain": true, "compute_slices": 7, "memory_slices": 8, "max_instances": 1}
        ],
        "profile_by_slices": ["1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", null, null, "7g.80gb"]
    });
    let ctx = json!({"host": "h", "vars": {}, "gpus": [gpu.clone()]});
    let n = 20_000;
    println!("### Lua policy evaluation (one GPU per call, best of 5)\n");
    for name in ["balanced", "one-per-gpu"] {
        let src = std::fs::read_to_string(format!("lua/policies/{name}.lua")).unwrap();
        let mut best = f64::MAX;
        for _ in 0..5 {
            let lua = new_lua(&Limits::default()).unwrap();
            let mlua::Value::Function(f) =
                migfleet::playbook::sandbox::eval(&lua, name, &src).unwrap()
            else {
                panic!("{name} does not return a function");
            };
            let f = FnRef::new(f);
            let t = Instant::now();
            for _ in 0..n {
                let g = to_lua_value(&lua, &gpu).unwrap();
                let c = to_lua_value(&lua, &ctx).unwrap();
                let _: mlua::Value = f.call(&lua, (g, c)).unwrap();
            }
            best = best.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        println!("- `{name}`: {best:.1} µs per GPU (including converting the GPU's facts to Lua)");
    }
    let t = Instant::now();
    for _ in 0..200 {
        let _ = new_lua(&Limits::default()).unwrap();
    }
    println!(
        "- a fresh sandboxed Lua state (one per host): {:.0} µs",
        t.elapsed().as_secs_f64() * 1e6 / 200.0
    );
}
