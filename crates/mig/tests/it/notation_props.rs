//! No input to the layout notation, and nothing it parses into, makes the planner panic:
//! whatever a user types on `migfleet mig plan` ends in a plan or an error.

use migfleet_mig::catalog::models;
use migfleet_mig::layout::{Placed, validate};
use migfleet_mig::notation::parse_layout;
use migfleet_mig::plan::{CurrentCi, CurrentGi, plan};
use proptest::prelude::*;

/// Mostly well-formed items (a profile name of the model, any start, any CI sizes), so
/// that parsing succeeds and the planner sees out-of-range and overlapping values; the
/// rest is noise.
fn item(names: Vec<String>) -> impl Strategy<Value = String> {
    let well_formed = (
        prop::sample::select(names),
        prop::option::of(any::<u8>()),
        prop::option::of(prop::collection::vec(0u8..10, 1..4)),
        0usize..3,
    )
        .prop_map(|(name, start, cis, count)| {
            let mut s = if count > 1 && start.is_none() {
                format!("{count}x{name}")
            } else {
                name
            };
            if let Some(st) = start {
                s.push_str(&format!("@{st}"));
            }
            if let Some(cis) = cis {
                let c: Vec<String> = cis.iter().map(|c| format!("{c}c")).collect();
                s.push_str(&format!("[{}]", c.join(",")));
            }
            s
        });
    prop_oneof![8 => well_formed, 1 => "\\PC{0,8}", 1 => "[0-9@x+,\\[\\] ]{0,6}"]
}

fn layout_text(names: Vec<String>) -> impl Strategy<Value = String> {
    prop::collection::vec(item(names), 0..8).prop_map(|v| v.join(", "))
}

fn case() -> impl Strategy<Value = (usize, String, String)> {
    (0..models().len()).prop_flat_map(|m| {
        let names = models()[m].profile_names();
        (Just(m), layout_text(names.clone()), layout_text(names))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn any_text_ends_in_a_plan_or_an_error((m, from, to) in case()) {
        let model = models()[m];
        let (Ok(from), Ok(to)) = (parse_layout(model, &from), parse_layout(model, &to)) else {
            return Ok(());
        };
        // Treat every parsed instance as existing at its start (0 when none), valid or not.
        let current: Vec<CurrentGi> = from
            .iter()
            .enumerate()
            .map(|(i, w)| CurrentGi {
                gi_id: i as u32,
                profile: w.profile,
                start: w.start.unwrap_or(0),
                cis: w.cis.iter().enumerate().map(|(k, s)| CurrentCi { ci_id: k as u32, slices: *s, in_use: k == 0 }).collect(),
            })
            .collect();
        let placed: Vec<Placed> = current.iter().map(CurrentGi::placed).collect();
        let _ = validate(model, &placed);
        let _ = plan(model, &current, &to);
    }
}
