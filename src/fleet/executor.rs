//! Runs one piece of work per host: hosts split into `serial` batches, at most `forks` at
//! a time, stopping between batches when the failure budget is spent. Every host's outcome
//! is kept; an unreachable host never stops the others.

use super::event::{Event, Outcome, Status};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc::UnboundedSender};

/// The default `-f/--forks`. Ansible's is 5 because each fork is a Python process; here a
/// host costs a tokio task and one SSH connection, and the limit that matters is the
/// controller's CPU during key exchange (about 4 ms per handshake here) and the targets'
/// `MaxStartups` — which, for a fleet, are spread over many hosts. 64 keeps a 2-core
/// controller busy without queueing handshakes behind each other for long.
pub const DEFAULT_FORKS: usize = 64;

/// One `serial` step: a host count or a percentage of all hosts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Serial {
    Count(usize),
    Percent(f64),
}

#[derive(Clone, Debug)]
pub struct FleetOptions {
    pub forks: usize,
    /// Batch sizes, the last repeating (Ansible's `serial`); empty = one batch.
    pub serial: Vec<Serial>,
    /// Stop after a batch in which more than this share of hosts failed.
    pub max_fail_percentage: Option<f64>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            forks: DEFAULT_FORKS,
            serial: Vec::new(),
            max_fail_percentage: None,
        }
    }
}

/// Splits `n` hosts into batch sizes as Ansible does: percentages of the whole, floored,
/// at least 1; the last entry repeats.
pub fn batch_sizes(n: usize, serial: &[Serial]) -> Vec<usize> {
    if serial.is_empty() || n == 0 {
        return vec![n];
    }
    let mut sizes = Vec::new();
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let s = serial[i.min(serial.len() - 1)];
        let size = match s {
            Serial::Count(c) => c,
            Serial::Percent(p) => ((p / 100.0) * n as f64).floor() as usize,
        }
        .max(1)
        .min(left);
        sizes.push(size);
        left -= size;
        i += 1;
    }
    sizes
}

/// Runs `work` for every host and returns each host's outcome, in host order.
pub async fn run<W, F>(
    hosts: Vec<String>,
    opts: &FleetOptions,
    events: UnboundedSender<Event>,
    work: W,
) -> Vec<(String, Outcome)>
where
    W: Fn(String, UnboundedSender<Event>) -> F + Send + Sync + 'static,
    F: Future<Output = Outcome> + Send + 'static,
{
    let sizes = batch_sizes(hosts.len(), &opts.serial);
    let _ = events.send(Event::Start {
        hosts: hosts.len(),
        batches: sizes.len(),
    });
    let forks = Arc::new(Semaphore::new(opts.forks.max(1)));
    let work = Arc::new(work);
    let mut results: Vec<(String, Outcome)> = Vec::new();
    let mut offset = 0;
    for (index, size) in sizes.iter().enumerate() {
        let batch: Vec<String> = hosts[offset..offset + size].to_vec();
        offset += size;
        if sizes.len() > 1 {
            let _ = events.send(Event::Batch {
                index,
                hosts: batch.clone(),
            });
        }
        let mut set = tokio::task::JoinSet::new();
        for (pos, host) in batch.iter().enumerate() {
            let (forks, work, events, host) =
                (forks.clone(), work.clone(), events.clone(), host.clone());
            set.spawn(async move {
                // The semaphore is never closed, so acquire cannot fail; if it ever did,
                // running unthrottled is better than dropping the host.
                let _permit = forks.acquire_owned().await.ok();
                let _ = events.send(Event::HostStart { host: host.clone() });
                let outcome = work(host.clone(), events.clone()).await;
                let _ = events.send(Event::HostDone {
                    host: host.clone(),
                    outcome: outcome.clone(),
                });
                (pos, host, outcome)
            });
        }
        let mut batch_results: Vec<(usize, String, Outcome)> = Vec::new();
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok(r) => batch_results.push(r),
                // A panicking host task is a bug; report it against no host rather than
                // lose the others' results.
                Err(e) => eprintln!("migfleet: a host task failed: {e}"),
            }
        }
        batch_results.sort_by_key(|r| r.0);
        let failed = batch_results
            .iter()
            .filter(|r| matches!(r.2.status, Status::Failed | Status::Unreachable))
            .count();
        results.extend(batch_results.into_iter().map(|(_, h, o)| (h, o)));
        let rest: Vec<String> = hosts[offset..].to_vec();
        if rest.is_empty() {
            break;
        }
        let over_budget = opts
            .max_fail_percentage
            .is_some_and(|pct| failed as f64 / *size as f64 * 100.0 > pct);
        if failed == *size || over_budget {
            let _ = events.send(Event::Aborted {
                reason: format!("{failed} of {size} hosts in batch {} failed", index + 1),
                not_run: rest,
            });
            break;
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_ansible() {
        assert_eq!(batch_sizes(20, &[Serial::Percent(30.0)]), vec![6, 6, 6, 2]);
        assert_eq!(
            batch_sizes(10, &[Serial::Count(1), Serial::Count(5)]),
            vec![1, 5, 4]
        );
        assert_eq!(batch_sizes(3, &[Serial::Percent(10.0)]), vec![1, 1, 1]);
        assert_eq!(batch_sizes(4, &[]), vec![4]);
    }

    #[tokio::test]
    async fn failure_budget_stops_between_batches_and_forks_limit_concurrency() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hosts: Vec<String> = (0..8).map(|i| format!("h{i}")).collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (running.clone(), peak.clone());
        let opts = FleetOptions {
            forks: 2,
            serial: vec![Serial::Count(4)],
            max_fail_percentage: Some(49.0),
        };
        let out = run(hosts, &opts, tx, move |host, _| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                r.fetch_sub(1, Ordering::SeqCst);
                if host == "h0" || host == "h1" {
                    Outcome::failed("boom")
                } else {
                    Outcome::ok("fine", None)
                }
            }
        })
        .await;
        // 2 of 4 failed in the first batch: 50% > 49%, so the second batch never runs.
        assert_eq!(out.len(), 4);
        assert!(peak.load(Ordering::SeqCst) <= 2);
        let mut aborted = None;
        while let Ok(e) = rx.try_recv() {
            if let Event::Aborted { not_run, .. } = e {
                aborted = Some(not_run);
            }
        }
        assert_eq!(
            aborted,
            Some(vec!["h4".into(), "h5".into(), "h6".into(), "h7".into()])
        );
    }
}
