//! The call wrapper every export runs its body through: initialisation check, error injection, the state under the file lock, the call-log line, and a panic guard.

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Reads the state under a shared lock.
    Read,
    /// Read-modify-write under the exclusive lock; saved only when the body succeeds.
    Write,
}

pub(super) fn code_of(r: Result<(), Code>) -> Code {
    match r {
        Ok(()) => SUCCESS,
        Err(c) => c,
    }
}

pub(super) fn store_failed(e: impl std::fmt::Display) -> Code {
    eprintln!("nvml-sim: {e}");
    UNKNOWN
}

pub(super) fn run(
    store: &Store,
    name: &str,
    access: Access,
    body: impl FnOnce(&mut State) -> Result<(), Code>,
) -> Code {
    if access == Access::Read {
        match store.load() {
            Ok(mut state) if !state.has_injection(name) => return code_of(body(&mut state)),
            Ok(_) => {}
            Err(e) => return store_failed(e),
        }
    }
    if access == Access::Write
        && let Some(ms) = std::env::var(crate::state::WRITE_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
    }
    let r = store.update(|s| {
        let pending = s.injections.len();
        let skips: u32 = s.injections.iter().map(|i| i.skip).sum();
        if let Some(code) = s.take_injection(name) {
            return (code, true);
        }
        // A call let through by an injection's `skip` counts down: keep that.
        let counted = pending != s.injections.len()
            || skips != s.injections.iter().map(|i| i.skip).sum::<u32>();
        let mut work = s.clone();
        match body(&mut work) {
            Ok(()) if access == Access::Write => {
                *s = work;
                (SUCCESS, true)
            }
            other => (code_of(other), counted),
        }
    });
    r.unwrap_or_else(store_failed)
}

/// Runs one exported call: panic guard, init check, injection, body, call log.
pub(super) fn call(
    name: &'static str,
    args: Value,
    access: Access,
    body: impl FnOnce(&mut State) -> Result<(), Code>,
) -> nvmlReturn_t {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let Some(store) = current_store() else {
            if let Some(path) = std::env::var_os(STATE_ENV) {
                log(&Store::new(path), name, args, UNINITIALIZED);
            }
            return UNINITIALIZED;
        };
        let ret = run(&store, name, access, body);
        log(&store, name, args, ret);
        ret
    }));
    r.unwrap_or(UNKNOWN)
}

pub(super) fn log(store: &Store, name: &str, args: Value, ret: Code) {
    // The call log is best effort: a failure to log never changes the NVML result.
    // Built by hand so `fn` comes first in each line (serde_json sorts object keys).
    let line = format!(
        "{{\"fn\":{},\"args\":{args},\"ret\":{ret}}}",
        Value::from(name)
    );
    let _ = store.append_line(&line);
}
