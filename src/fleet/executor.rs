//! Runs work over hosts: hosts split into `serial` batches, at most `forks` at a time,
//! stopping between batches when the failure budget is spent. Every host's result is
//! kept, in host order; an unreachable host never stops the others, and a host whose
//! task panics is that host's failure, not a lost result.

use super::event::{Event, Events, Outcome};
use std::future::Future;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The default `-f/--forks`. Ansible's is 5 because each fork is a Python process; here a
/// host costs a tokio task and one SSH connection, and the limit that matters is the
/// controller's CPU during key exchange (about 4 ms per handshake here) and the targets'
/// `MaxStartups` — which, for a fleet, are spread over many hosts. 64 keeps a 2-core
/// controller busy without queueing handshakes behind each other for long.
pub const DEFAULT_FORKS: usize = 64;

/// One `serial` step: a host count or a percentage of all hosts (`0 < p <= 100`).
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
/// at least 1; the last entry repeats. `batch_sizes(20, &[Percent(30.0)]) == [6, 6, 6, 2]`.
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
            // Truncation is Ansible's `int(pct / 100 * n)`.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
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

/// Ansible's failure budget for a batch: stop when every host of it failed, or when more
/// than `max_fail_percentage` did (strictly more: to stop at 2 of 4, say 49).
pub fn budget_spent(failed: usize, batch: usize, max_fail_percentage: Option<f64>) -> bool {
    if batch == 0 {
        return false;
    }
    failed == batch
        || max_fail_percentage.is_some_and(|pct| failed as f64 * 100.0 / batch as f64 > pct)
}

/// Runs `work` on every item, at most `forks` at once, and returns the results in the
/// items' order. A task that panics comes back as `Err` with the panic's message.
pub async fn for_each<T, R, W, F>(items: Vec<T>, forks: usize, work: W) -> Vec<Result<R, String>>
where
    T: Send + 'static,
    R: Send + 'static,
    W: Fn(T) -> F + Send + Sync + 'static,
    F: Future<Output = R> + Send + 'static,
{
    // Tokio's semaphore holds at most `Semaphore::MAX_PERMITS`.
    let forks = Arc::new(Semaphore::new(forks.clamp(1, Semaphore::MAX_PERMITS)));
    let work = Arc::new(work);
    let mut handles = Vec::with_capacity(items.len());
    for item in items {
        let (forks, work) = (forks.clone(), work.clone());
        handles.push(tokio::spawn(async move {
            // The semaphore is never closed, so acquire cannot fail; if it ever did,
            // running unthrottled is better than dropping the host.
            let _permit = forks.acquire_owned().await.ok();
            work(item).await
        }));
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.map_err(|e| panic_message(&e)));
    }
    out
}

/// "panicked: <message>" for a task that panicked, "cancelled" for one that was not run.
fn panic_message(e: &tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return "the task was cancelled".to_string();
    }
    // The payload is only reachable by value; the message is all we need of it.
    let text = e.to_string();
    format!("internal error (a bug in migfleet, please report it): {text}")
}

/// Runs one step of `work` per host (`ping`, `facts`): batches, forks, failure budget.
/// Returns each host's outcome, in host order; hosts not run after the budget was spent
/// are absent (an `Aborted` event names them).
pub async fn run<W, F>(
    hosts: Vec<String>,
    opts: &FleetOptions,
    events: Events,
    work: W,
) -> Vec<(String, Outcome)>
where
    W: Fn(String, Events) -> F + Send + Sync + 'static,
    F: Future<Output = Outcome> + Send + 'static,
{
    let sizes = batch_sizes(hosts.len(), &opts.serial);
    events.send(Event::Start {
        hosts: hosts.len(),
        batches: sizes.len(),
    });
    let work = Arc::new(work);
    let mut results: Vec<(String, Outcome)> = Vec::new();
    let mut offset = 0;
    for (index, size) in sizes.iter().enumerate() {
        let batch: Vec<String> = hosts[offset..offset + size].to_vec();
        offset += size;
        if sizes.len() > 1 {
            events.send(Event::Batch {
                index,
                hosts: batch.clone(),
            });
        }
        let (w, ev) = (work.clone(), events.clone());
        let outcomes = for_each(batch.clone(), opts.forks, move |host: String| {
            let (w, ev) = (w.clone(), ev.clone());
            async move {
                ev.send(Event::HostStart { host: host.clone() });
                let outcome = w(host.clone(), ev.clone()).await;
                ev.send(Event::HostDone {
                    host,
                    outcome: outcome.clone(),
                });
                outcome
            }
        })
        .await;
        let mut failed = 0;
        for (host, r) in batch.into_iter().zip(outcomes) {
            let outcome = r.unwrap_or_else(|panic| {
                let o = Outcome::failed(panic);
                events.send(Event::HostDone {
                    host: host.clone(),
                    outcome: o.clone(),
                });
                o
            });
            if outcome.status.is_failure() {
                failed += 1;
            }
            results.push((host, outcome));
        }
        let rest: Vec<String> = hosts[offset..].to_vec();
        if rest.is_empty() {
            break;
        }
        if budget_spent(failed, *size, opts.max_fail_percentage) {
            events.send(Event::Aborted {
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
    use crate::fleet::Status;

    #[test]
    fn batches_follow_ansible() {
        assert_eq!(batch_sizes(20, &[Serial::Percent(30.0)]), vec![6, 6, 6, 2]);
        assert_eq!(
            batch_sizes(10, &[Serial::Count(1), Serial::Count(5)]),
            vec![1, 5, 4]
        );
        assert_eq!(
            batch_sizes(
                20,
                &[Serial::Count(1), Serial::Count(5), Serial::Percent(20.0)]
            ),
            vec![1, 5, 4, 4, 4, 2]
        );
        assert_eq!(batch_sizes(3, &[Serial::Percent(10.0)]), vec![1, 1, 1]);
        assert_eq!(batch_sizes(4, &[]), vec![4]);
    }

    #[test]
    fn max_fail_is_strictly_greater_and_a_whole_failed_batch_stops() {
        assert!(!budget_spent(2, 4, Some(50.0)));
        assert!(budget_spent(3, 4, Some(50.0)));
        assert!(budget_spent(2, 4, Some(49.0)));
        assert!(budget_spent(4, 4, None));
        assert!(!budget_spent(3, 4, None));
    }

    #[tokio::test]
    async fn a_panicking_task_is_that_items_error_and_order_is_kept() {
        let out = for_each(vec![1u32, 2, 3], 2, |n| async move {
            assert!(n != 2, "boom on {n}");
            n * 10
        })
        .await;
        assert_eq!(out[0], Ok(10));
        assert!(
            out[1].as_ref().is_err_and(|e| e.contains("boom on 2")),
            "{out:?}"
        );
        assert_eq!(out[2], Ok(30));
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
        let out = run(hosts, &opts, Events::new(tx), move |host, _| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                r.fetch_sub(1, Ordering::SeqCst);
                if host == "h0" {
                    panic!("a bug on h0");
                }
                if host == "h1" {
                    Outcome::failed("boom")
                } else {
                    Outcome::ok("fine", None)
                }
            }
        })
        .await;
        // 2 of 4 failed in the first batch (one of them by panicking): 50% > 49%, so the
        // second batch never runs; the panicking host is in the results as failed.
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].0, "h0");
        assert_eq!(out[0].1.status, Status::Failed);
        assert!(out[0].1.message.contains("a bug on h0"), "{:?}", out[0]);
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
