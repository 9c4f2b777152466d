//! `migfleet facts -i INV [--limit P]`: every host's GPUs and MIG state.

use super::fleet_args::FleetArgs;
use super::ping::finish;
use crate::error::Failure;
use crate::fleet::Outcome;
use crate::fleet::fanout::run_on_hosts;
use crate::fleet::session::Opening;
use crate::report::Output;
use migfleet_proto::Facts;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub fleet: FleetArgs,
}

pub fn exec(args: Args, output: Output) -> Result<(), Failure> {
    let mut fleet = args.fleet.fleet()?;
    // The facts come with the session's start (no round trip of their own).
    let (outcomes, code) = run_on_hosts(&mut fleet, output, Opening::Facts, |mut s| async move {
        match s.facts().await {
            Ok(f) => Outcome::ok(
                format!("{} GPU(s)", f.gpus.len()),
                serde_json::to_value(f).ok(),
            ),
            Err(e) => Outcome::failed(e.message()),
        }
    })?;
    if output == Output::Text {
        crate::out!("{}", table(&outcomes))?;
    }
    finish(&outcomes, code, output)
}

/// What `mig.persist` left for this GPU at boot: `-` (nothing), `same` (the live state),
/// `differs`.
fn at_boot(f: &Facts, g: &migfleet_proto::GpuFacts) -> &'static str {
    let Some(p) = &f.persisted else { return "-" };
    match (
        p.gpus.iter().find(|b| b.index == g.index),
        migfleet_proto::PersistedGpu::of(g),
    ) {
        (None, _) => "-",
        (Some(b), Some(live)) if *b == live => "same",
        _ => "differs",
    }
}

/// The facts a host's outcome carries, if it got that far.
fn facts_of(o: &Outcome) -> Option<Facts> {
    o.data
        .as_ref()
        .and_then(|d| serde_json::from_value::<Facts>(d.clone()).ok())
}

/// One row per GPU: host, index, model, MIG mode, what boot restores, instances.
fn table(outcomes: &[(String, Outcome)]) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "HOST".into(),
        "GPU".into(),
        "MODEL".into(),
        "MEMORY".into(),
        "MIG".into(),
        "AT BOOT".into(),
        "INSTANCES".into(),
    ]];
    for (host, o) in outcomes {
        let Some(f) = facts_of(o) else {
            continue;
        };
        for g in &f.gpus {
            let mig = match &g.mig {
                None => "n/a".to_string(),
                Some(m) if m.current == m.pending => {
                    if m.current { "on" } else { "off" }.to_string()
                }
                Some(m) => format!(
                    "{} (pending {})",
                    if m.current { "on" } else { "off" },
                    if m.pending { "on" } else { "off" }
                ),
            };
            let instances = g.mig.as_ref().map_or_else(String::new, |m| {
                let mut v: Vec<String> = m
                    .instances
                    .iter()
                    .map(|i| {
                        let busy = i.cis.iter().any(|c| !c.processes.is_empty());
                        format!("{}@{}{}", i.profile, i.start, if busy { "*" } else { "" })
                    })
                    .collect();
                if v.is_empty() {
                    v.push("-".into());
                }
                v.join(" ")
            });
            rows.push([
                host.clone(),
                g.index.to_string(),
                g.model.clone().unwrap_or_else(|| g.name.clone()),
                format!("{} MiB", g.memory_mib),
                mig,
                at_boot(&f, g).to_string(),
                instances,
            ]);
        }
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 6 {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str("(* = instance with processes; AT BOOT: what mig.persist restores at boot, against the live state)\n");
    out.push_str(&catalog_differences(outcomes));
    out
}

/// The drivers' profile tables where they differ from the catalog: once per model, driver
/// and set of differences across the fleet, naming the hosts and GPUs. The driver's table
/// is what migfleet plans with on those hosts.
fn catalog_differences(outcomes: &[(String, Outcome)]) -> String {
    type Key = (String, String, Vec<String>);
    let mut groups: Vec<(Key, Vec<String>)> = Vec::new();
    for (host, o) in outcomes {
        let Some(f) = facts_of(o) else {
            continue;
        };
        for r in f.catalog {
            let key = (r.model, r.driver_version, r.differences);
            let gpus: Vec<String> = r.gpus.iter().map(u32::to_string).collect();
            let at = format!("{host} (GPU {})", gpus.join(","));
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, hosts)) => hosts.push(at),
                None => groups.push((key, vec![at])),
            }
        }
    }
    let mut out = String::new();
    for ((model, driver, differences), hosts) in groups {
        out.push_str(&format!(
            "\n{model} on driver {driver} differs from migfleet's catalog (the driver's table is used): {}\n",
            hosts.join(", ")
        ));
        for d in differences {
            out.push_str(&format!("  {d}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use migfleet_proto::CatalogReport;

    fn host(driver: &str, reports: Vec<CatalogReport>) -> Outcome {
        let f = Facts {
            driver_version: driver.into(),
            gpus: vec![],
            persisted: None,
            catalog: reports,
        };
        Outcome::ok("", serde_json::to_value(f).ok())
    }

    fn report(gpus: &[u32], driver: &str) -> CatalogReport {
        CatalogReport {
            model: "H100-80GB".into(),
            driver_version: driver.into(),
            gpus: gpus.to_vec(),
            differences: vec![
                "1g.10gb: memory MiB is 9984 on the driver, 9856 in the catalog".into(),
            ],
        }
    }

    #[test]
    fn catalog_differences_are_told_once_per_model_and_driver_across_hosts() {
        let outcomes = vec![
            (
                "a".to_string(),
                host("525.85.12", vec![report(&[0, 1], "525.85.12")]),
            ),
            (
                "b".to_string(),
                host("525.85.12", vec![report(&[3], "525.85.12")]),
            ),
            (
                "c".to_string(),
                host("550.54.15", vec![report(&[0], "550.54.15")]),
            ),
            ("d".to_string(), host("550.54.15", vec![])),
        ];
        let text = catalog_differences(&outcomes);
        assert_eq!(text.matches("differs from").count(), 2, "{text}");
        assert!(
            text.contains("H100-80GB on driver 525.85.12 differs from migfleet's catalog (the driver's table is used): a (GPU 0,1), b (GPU 3)"),
            "{text}"
        );
        assert_eq!(text.matches("  1g.10gb: memory").count(), 2, "{text}");
        assert!(catalog_differences(&outcomes[3..]).is_empty());
    }
}
