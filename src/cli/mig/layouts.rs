//! `migfleet mig layouts <model> [--maximal] [--plain] [--multisets]`.

use super::model_arg;
use crate::error::Failure;
use crate::report::{Output, print_json};
use migfleet_mig::geometry::{self, ProfileSet};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// GPU model (see `migfleet mig models`).
    pub model: String,
    /// Only layouts to which no further instance fits at any placement.
    #[arg(long)]
    pub maximal: bool,
    /// Only plain profiles: no `+me` variants, no double-memory 1g.
    #[arg(long)]
    pub plain: bool,
    /// List multisets of profiles instead of placed layouts (with `--maximal`: those that
    /// cannot take one more profile however they are placed).
    #[arg(long)]
    pub multisets: bool,
}

#[derive(Serialize)]
struct Out {
    model: &'static str,
    maximal: bool,
    plain: bool,
    count: usize,
    layouts: Vec<Vec<Item>>,
}

#[derive(Serialize)]
struct Item {
    profile: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u8>,
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let model = model_arg(&args.model)?;
    let set = if args.plain {
        ProfileSet::Plain
    } else {
        ProfileSet::All
    };
    let (lines, items): (Vec<String>, Vec<Vec<Item>>) = if args.multisets {
        let sets: Vec<geometry::Multiset> = if args.maximal {
            geometry::maximal_multisets(model, set)
        } else {
            geometry::multisets(model, set).into_iter().collect()
        };
        sets.iter()
            .map(|m| {
                let items = m
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(i, n)| Item {
                        profile: model.profiles[i].name,
                        start: None,
                        count: Some(*n),
                    })
                    .collect();
                (geometry::display_multiset(model, m), items)
            })
            .unzip()
    } else {
        let layouts = if args.maximal {
            geometry::maximal_layouts(model, set)
        } else {
            geometry::layouts(model, set)
        };
        layouts
            .iter()
            .map(|g| {
                let items = g
                    .iter()
                    .map(|(p, s)| Item {
                        profile: model.profile(*p).name,
                        start: Some(*s),
                        count: None,
                    })
                    .collect();
                (geometry::display(model, g), items)
            })
            .unzip()
    };
    if output == Output::Json {
        return print_json(&Out {
            model: model.name,
            maximal: args.maximal,
            plain: args.plain,
            count: items.len(),
            layouts: items,
        });
    }
    let what = match (args.maximal, args.multisets) {
        (true, false) => "maximal placed layouts",
        (false, false) => "valid placed layouts",
        (true, true) => "maximal multisets",
        (false, true) => "placeable multisets",
    };
    let profiles = if args.plain {
        "plain profiles"
    } else {
        "all profiles"
    };
    crate::outln!("{} {what} on {} ({profiles}):", lines.len(), model.name)?;
    let width = lines.len().to_string().len();
    for (i, l) in lines.iter().enumerate() {
        crate::outln!("{:>width$}. {l}", i + 1)?;
    }
    Ok(())
}
