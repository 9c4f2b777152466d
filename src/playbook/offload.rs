//! Lua runs off the async workers. Every entry into a host's Lua state (loading the
//! playbook, `when`, `run`, a policy) happens on tokio's blocking pool, so a host whose
//! legal policy takes seconds delays no other host, and is bounded by a deadline beyond
//! its own budgets: Lua that is stuck where the budget hook cannot reach it (in C) is
//! given up on, its host fails, and the run goes on to its recap. The state of a host
//! given up on is never touched again (see [`abandon`]).

use std::time::Duration;

use super::sandbox::Limits;

/// How long past its budgets a Lua entry may run before it is given up on.
const GRACE: Duration = Duration::from_secs(5);

/// The deadline for an entry that may run `calls` budgeted calls (each with its own
/// wall-clock budget) one after another.
pub fn deadline(limits: &Limits, calls: usize) -> Duration {
    let per_call = if limits.wall.is_zero() {
        Duration::from_secs(300)
    } else {
        limits.wall
    };
    per_call
        .saturating_mul(u32::try_from(calls.max(1)).unwrap_or(u32::MAX))
        .saturating_add(GRACE)
}

/// Lua that did not come back by its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    pub after: Duration,
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Lua did not return within {} s (stuck outside its budget's reach); this host's Lua state is given up",
            self.after.as_secs()
        )
    }
}

/// Runs `f` on the blocking pool, giving up after `limit`. A panic in `f` is reported as
/// the string it carried.
pub async fn run<R, F>(limit: Duration, f: F) -> Result<Result<R, String>, Stuck>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    let task = tokio::task::spawn_blocking(f);
    match tokio::time::timeout(limit, task).await {
        Ok(Ok(r)) => Ok(Ok(r)),
        Ok(Err(e)) => Ok(Err(format!(
            "internal error (a bug in migfleet, please report it): {e}"
        ))),
        Err(_) => Err(Stuck { after: limit }),
    }
}

/// Lets go of a Lua state that a stuck call may still be inside, without touching it:
/// dropping the owning handle would run a garbage collection, which waits for the stuck
/// call's lock. Its memory is given up with it (the process ends soon enough).
pub fn abandon<T>(state: T) {
    std::mem::forget(state);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_call_that_does_not_return_is_given_up_on_and_others_go_on() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // Stands in for Lua stuck in C: it returns only when told to.
        let stuck = run(Duration::from_millis(100), move || {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        })
        .await;
        assert_eq!(
            stuck,
            Err(Stuck {
                after: Duration::from_millis(100)
            })
        );
        // The pool is not blocked by it.
        assert_eq!(run(Duration::from_secs(5), || 41 + 1).await, Ok(Ok(42)));
        let _ = tx.send(());
        let panicked = run(Duration::from_secs(5), || -> u32 { panic!("policy bug") }).await;
        assert!(
            matches!(panicked, Ok(Err(ref m)) if m.contains("policy bug")),
            "{panicked:?}"
        );
    }

    #[test]
    fn deadlines_cover_every_call_plus_grace() {
        let l = Limits::default();
        assert_eq!(deadline(&l, 1), Duration::from_secs(10));
        assert_eq!(deadline(&l, 8), Duration::from_secs(45));
    }
}
