//! `migfleet mig plan --model <model> --from LAYOUT --to LAYOUT [--in-use ...]`.

use super::model_arg;
use crate::error::Failure;
use crate::report::{Output, print_json};
use migfleet_mig::GpuModel;
use migfleet_mig::layout::{self, Want};
use migfleet_mig::notation::parse_layout;
use migfleet_mig::plan::{CurrentCi, CurrentGi, Op, PlanError, plan};
use serde::Serialize;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "LAYOUT notation: items separated by commas or spaces, each \
`[Nx]PROFILE[@START][[Cc,...]]`, e.g. `3g.40gb@4, 2x1g.10gb, 3g.40gb[1c,1c,1c]`; \
`none` is the empty GPU. Instances in --from without @START are placed as migfleet would."
)]
pub struct Args {
    /// GPU model (see `migfleet mig models`).
    #[arg(long)]
    pub model: String,
    /// The instances on the GPU now.
    #[arg(long, default_value = "none")]
    pub from: String,
    /// The wanted instances; a @START pins a placement.
    #[arg(long)]
    pub to: String,
    /// Placement starts (or `PROFILE@START`) of instances in --from that have processes:
    /// the plan must keep them.
    #[arg(long, value_delimiter = ',')]
    pub in_use: Vec<String>,
}

#[derive(Serialize)]
struct Instance {
    gi_id: u32,
    instance: String,
    in_use: bool,
}

#[derive(Serialize)]
struct Out {
    model: &'static str,
    from: Vec<Instance>,
    to: Vec<String>,
    ops: Vec<Op>,
    kept: Vec<u32>,
    after: Vec<String>,
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let model = model_arg(&args.model)?;
    let bad = |what: &str, e: String| {
        Failure::options(format!("--{what}: {e}"))
            .hint("see `migfleet mig plan --help` for the layout notation")
    };
    let from = parse_layout(model, &args.from).map_err(|e| bad("from", e))?;
    let to = parse_layout(model, &args.to).map_err(|e| bad("to", e))?;
    let current = current_state(model, &from, &args.in_use).map_err(|e| bad("from", e))?;

    let result = plan(model, &current, &to);
    let from_view: Vec<Instance> = current
        .iter()
        .map(|g| Instance {
            gi_id: g.gi_id,
            instance: g.placed().display(model),
            in_use: g.in_use(),
        })
        .collect();
    let to_view: Vec<String> = to.iter().map(|w| w.display(model)).collect();
    let p = match result {
        Ok(p) => p,
        Err(e) => {
            if output == Output::Json {
                print_json(&serde_json::json!({ "model": model.name, "error": &e }))?;
            }
            let hint = match e {
                PlanError::InUse { .. } => {
                    "drain the named instances first, or choose a target that keeps them"
                }
                _ => "`migfleet mig layouts <model> --maximal` lists layouts that fit",
            };
            return Err(Failure::error(e.to_string()).hint(hint));
        }
    };
    let after: Vec<String> = p.after.iter().map(|x| x.display(model)).collect();
    if output == Output::Json {
        return print_json(&Out {
            model: model.name,
            from: from_view,
            to: to_view,
            ops: p.ops,
            kept: p.kept,
            after,
        });
    }
    crate::outln!("{}", model.name)?;
    let from_text: Vec<String> = from_view
        .iter()
        .map(|i| format!("{}{}", i.instance, if i.in_use { " (in use)" } else { "" }))
        .collect();
    crate::outln!("  from:  {}", or_none(&from_text))?;
    crate::outln!("  to:    {}", or_none(&to_view))?;
    let kept: Vec<String> = p.kept.iter().map(|k| format!("GI {k}")).collect();
    crate::outln!(
        "  plan:  {} operation{}{}",
        p.ops.len(),
        if p.ops.len() == 1 { "" } else { "s" },
        if kept.is_empty() {
            String::new()
        } else {
            format!(", keeps {}", kept.join(", "))
        }
    )?;
    for (i, op) in p.ops.iter().enumerate() {
        crate::outln!("    {:>2}. {op}", i + 1)?;
    }
    crate::outln!("  after: {}", or_none(&after))?;
    Ok(())
}

fn or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(empty)".to_string()
    } else {
        items.join(" ")
    }
}

/// Builds the current GPU state from `--from`: unplaced instances are placed around the
/// placed ones, GI ids are numbered from 1 by placement, CI ids from 0 within each GI.
fn current_state(
    model: &GpuModel,
    from: &[Want],
    in_use: &[String],
) -> Result<Vec<CurrentGi>, String> {
    let mut all = layout::place_wants(model, from).map_err(|e| e.to_string())?;
    all.sort();
    let mut busy_starts = Vec::new();
    for item in in_use {
        let start_text = item
            .rsplit_once('@')
            .map_or(item.as_str(), |(_, s)| s)
            .trim();
        let start: u8 = start_text
            .parse()
            .map_err(|_| format!("--in-use `{item}` is not a placement start"))?;
        if !all.iter().any(|p| p.start == start) {
            return Err(format!("--in-use {start}: no instance starts at {start}"));
        }
        busy_starts.push(start);
    }
    Ok(all
        .iter()
        .enumerate()
        .map(|(i, p)| CurrentGi {
            gi_id: i as u32 + 1,
            profile: p.profile,
            start: p.start,
            cis: p
                .cis
                .iter()
                .enumerate()
                .map(|(k, s)| CurrentCi {
                    ci_id: k as u32,
                    slices: *s,
                    in_use: busy_starts.contains(&p.start),
                })
                .collect(),
        })
        .collect())
}
