//! Shows a run as it happens. The fleet emits events; this consumes them, one of three
//! ways chosen once: progress bars on a terminal, plain lines otherwise, JSON lines for
//! `--output json`. Results (banners, per-host task lines) go to stdout; progress goes to
//! stderr. It never calls back into the fleet.

use super::Output;
use super::text::{self, Detail};
use crate::fleet::{Event, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};
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

/// What to show besides the results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Show {
    /// `-v` count.
    pub verbosity: u8,
    /// `--diff`.
    pub diff: bool,
}

/// A plain progress line for the same host at most this often: a drain can wait for
/// minutes, and a log should not get a line a second for it.
pub const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Consumes events until the channel closes.
pub async fn watch(mode: Mode, verbosity: u8, rx: UnboundedReceiver<Event>) {
    watch_with(
        mode,
        Show {
            verbosity,
            diff: false,
        },
        rx,
    )
    .await;
}

/// [`watch`] with all the display options.
pub async fn watch_with(mode: Mode, show: Show, mut rx: UnboundedReceiver<Event>) {
    let mut m = Monitor::new(mode, show);
    while let Some(e) = rx.recv().await {
        m.show(&e);
    }
    m.finish();
}

struct Monitor {
    mode: Mode,
    show: Show,
    check: bool,
    bars: Bars,
    /// Plain mode: when each host last got a progress line.
    plain_progress: Throttle,
    /// Stdout went away (`| head`): stop writing to it.
    stdout_closed: bool,
}

impl Monitor {
    fn new(mode: Mode, show: Show) -> Monitor {
        Monitor {
            mode,
            show,
            check: false,
            bars: Bars::new(mode == Mode::Bars),
            plain_progress: Throttle::new(PLAIN_PROGRESS_EVERY),
            stdout_closed: false,
        }
    }

    fn detail(&self) -> Detail {
        Detail {
            check: self.check,
            diff: self.show.diff,
            verbose: self.show.verbosity > 0,
        }
    }

    /// A result line (or lines) on stdout, above the bars.
    fn out(&mut self, text: &str) {
        if self.stdout_closed {
            return;
        }
        let write = || {
            let mut o = std::io::stdout().lock();
            writeln!(o, "{text}").and_then(|()| o.flush())
        };
        let r = if self.mode == Mode::Bars {
            self.bars.multi.suspend(write)
        } else {
            write()
        };
        if r.is_err() {
            self.stdout_closed = true;
        }
    }

    /// A progress line on stderr, above the bars.
    fn err(&self, text: &str) {
        if self.mode == Mode::Bars {
            let _ = self.bars.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn show(&mut self, e: &Event) {
        if self.mode == Mode::Json {
            if !self.stdout_closed
                && let Ok(line) = serde_json::to_string(e)
            {
                self.out(&line);
            }
            return;
        }
        match e {
            Event::Start { hosts, .. } => self.bars.total(*hosts as u64, ""),
            Event::Batch { index, hosts } => {
                self.bars
                    .message(&format!("batch {} ({} hosts)", index + 1, hosts.len()));
            }
            Event::HostStart { host } => self.bars.host(host, "connecting"),
            Event::HostProgress {
                host,
                message,
                waiting,
            } => {
                self.bars.host(host, message);
                if self.mode == Mode::Plain
                    && *waiting
                    && self.plain_progress.due(host, Instant::now())
                {
                    self.err(&format!("[{host}] {message}"));
                }
            }
            Event::HostDone { host, outcome } => {
                self.bars.done(host);
                let quiet = matches!(outcome.status, Status::Ok | Status::Changed);
                if self.mode == Mode::Plain || !quiet {
                    self.err(&format!(
                        "{}: [{host}] {}",
                        text::status_word(outcome.status),
                        outcome.message
                    ));
                }
            }
            Event::Aborted { reason, not_run } => {
                let rest = if not_run.is_empty() {
                    String::new()
                } else {
                    format!("; not run: {}", not_run.join(", "))
                };
                self.out(&format!("\nstopping: {reason}{rest}"));
            }
            Event::PlayStart {
                name, hosts, check, ..
            } => {
                self.check = *check;
                let suffix = if *check { " [CHECK MODE]" } else { "" };
                self.out(&format!("\n{}", text::banner("PLAY", name, suffix)));
                if hosts.is_empty() {
                    self.out("skipping: no hosts matched");
                }
            }
            Event::TaskStart { name, hosts, .. } => {
                self.out(&format!("\n{}", text::banner("TASK", name, "")));
                self.bars.total(*hosts as u64, name);
            }
            Event::TaskResult { host, result, .. } => {
                self.bars.done(host);
                let detail = self.detail();
                self.out(&text::task_result(host, result, detail));
            }
            Event::HostDown {
                host,
                status,
                message,
                hints,
            } => {
                self.bars.done(host);
                self.out(&text::host_down(host, *status, message, hints));
            }
            Event::Nvml {
                host,
                gpu,
                step,
                of,
                op,
            } => self
                .bars
                .host(host, &format!("GPU {gpu}: {step}/{of} {op}")),
            Event::HostFinished { .. } => {}
            Event::Interrupted => self.err(
                "Ctrl-C: finishing the operations in flight, starting nothing new (Ctrl-C again to abort)",
            ),
            Event::Print { host, line } => self.err(&format!("[{host}] print: {line}")),
            Event::AgentStderr { host, line } => {
                if self.show.verbosity > 0 {
                    self.err(&format!("[{host}] agent: {line}"));
                }
            }
        }
    }

    fn finish(&mut self) {
        self.bars.finish();
    }
}

/// At most one line per host per `every`.
struct Throttle {
    every: Duration,
    last: HashMap<String, Instant>,
}

impl Throttle {
    fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: HashMap::new(),
        }
    }

    /// Whether `host` may have a line at `now` (and if so, that it had one).
    fn due(&mut self, host: &str, now: Instant) -> bool {
        let due = self
            .last
            .get(host)
            .is_none_or(|t| now.saturating_duration_since(*t) >= self.every);
        if due {
            self.last.insert(host.to_string(), now);
        }
        due
    }
}

/// A line per active host under an overall bar (hidden when not on a terminal).
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

    fn total(&mut self, len: u64, message: &str) {
        if let Some(t) = self.total.take() {
            t.finish_and_clear();
            self.multi.remove(&t);
        }
        let bar = self.multi.add(ProgressBar::new(len));
        bar.set_style(
            ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} hosts {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(message.to_string());
        self.total = Some(bar);
    }

    fn message(&self, message: &str) {
        if let Some(t) = &self.total {
            t.set_message(message.to_string());
        }
    }

    fn host(&mut self, host: &str, message: &str) {
        if let Some(b) = self.hosts.get(host) {
            b.set_message(message.to_string());
            return;
        }
        let bar = self.multi.insert_from_back(1, ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {prefix:.bold} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(host.to_string());
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        self.hosts.insert(host.to_string(), bar);
    }

    fn done(&mut self, host: &str) {
        if let Some(b) = self.hosts.remove(host) {
            b.finish_and_clear();
            self.multi.remove(&b);
        }
        if let Some(t) = &self.total {
            t.inc(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_progress_is_one_line_per_host_per_period() {
        let mut t = Throttle::new(PLAIN_PROGRESS_EVERY);
        let t0 = Instant::now();
        assert!(t.due("a", t0));
        assert!(t.due("b", t0), "hosts are throttled separately");
        // A drain that reports every 200 ms for 30 s: three lines, not 150.
        let lines = (1..=150)
            .filter(|i| t.due("a", t0 + Duration::from_millis(200 * i)))
            .count();
        assert_eq!(lines, 3);
    }
}
