//! Shows a run as it happens. The fleet emits events; this consumes them, one of three
//! ways chosen once: progress bars on a terminal, plain lines otherwise, JSON lines for
//! `--output json`. It never calls back into the fleet.

use super::Output;
use crate::fleet::{Event, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    Json,
}

impl Mode {
    /// Bars on a terminal stderr, plain lines otherwise, JSON when asked.
    pub fn choose(output: Output) -> Mode {
        match output {
            Output::Json => Mode::Json,
            Output::Text if std::io::stderr().is_terminal() => Mode::Bars,
            Output::Text => Mode::Plain,
        }
    }
}

/// Consumes events until the channel closes.
pub async fn watch(mode: Mode, mut rx: UnboundedReceiver<Event>) {
    let mut bars = Bars::new(mode == Mode::Bars);
    while let Some(e) = rx.recv().await {
        match mode {
            Mode::Json => {
                if let Ok(line) = serde_json::to_string(&e) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                }
            }
            Mode::Plain => plain(&e),
            Mode::Bars => bars.show(&e),
        }
    }
    bars.finish();
}

fn plain(e: &Event) {
    let line = match e {
        Event::Start { hosts, batches } if *batches > 1 => {
            format!("{hosts} hosts in {batches} batches")
        }
        Event::Start { .. } => return,
        Event::Batch { index, hosts } => format!("batch {}: {}", index + 1, hosts.join(", ")),
        Event::HostStart { .. } => return,
        Event::HostProgress { host, message } => format!("{host}: {message}"),
        Event::HostDetail { .. } => return,
        Event::HostDone { host, outcome } => {
            format!("{}: [{host}] {}", word(outcome.status), outcome.message)
        }
        Event::Aborted { reason, not_run } => {
            format!("stopping: {reason}; not run: {}", not_run.join(", "))
        }
    };
    eprintln!("{line}");
}

fn word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Changed => "changed",
        Status::Failed => "failed",
        Status::Unreachable => "unreachable",
        Status::Skipped => "skipping",
    }
}

/// A line per active host under an overall bar.
struct Bars {
    multi: MultiProgress,
    total: Option<ProgressBar>,
    hosts: HashMap<String, ProgressBar>,
}

impl Bars {
    fn new(on: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(if on {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Bars {
            multi,
            total: None,
            hosts: HashMap::new(),
        }
    }

    fn show(&mut self, e: &Event) {
        match e {
            Event::Start { hosts, .. } => {
                let bar = self.multi.add(ProgressBar::new(*hosts as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{bar:30.cyan/blue} {pos}/{len} hosts {elapsed} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                self.total = Some(bar);
            }
            Event::Batch { index, hosts } => {
                if let Some(t) = &self.total {
                    t.set_message(format!("batch {} ({} hosts)", index + 1, hosts.len()));
                }
            }
            Event::HostStart { host } => {
                let bar = self.multi.insert_from_back(1, ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix:.bold} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_prefix(host.clone());
                bar.set_message("connecting");
                bar.enable_steady_tick(Duration::from_millis(120));
                self.hosts.insert(host.clone(), bar);
            }
            Event::HostProgress { host, message } | Event::HostDetail { host, message } => {
                if let Some(b) = self.hosts.get(host) {
                    b.set_message(message.clone());
                }
            }
            Event::HostDone { host, outcome } => {
                if let Some(b) = self.hosts.remove(host) {
                    b.finish_and_clear();
                    self.multi.remove(&b);
                }
                if outcome.status != Status::Ok && outcome.status != Status::Changed {
                    let _ = self.multi.println(format!(
                        "{}: [{host}] {}",
                        word(outcome.status),
                        outcome.message
                    ));
                }
                if let Some(t) = &self.total {
                    t.inc(1);
                }
            }
            Event::Aborted { reason, not_run } => {
                let _ = self.multi.println(format!(
                    "stopping: {reason}; not run: {}",
                    not_run.join(", ")
                ));
            }
        }
    }

    fn finish(&mut self) {
        for (_, b) in self.hosts.drain() {
            b.finish_and_clear();
        }
        if let Some(t) = self.total.take() {
            t.finish_and_clear();
        }
    }
}
