//! The init refcount: `nvmlInit` and `nvmlShutdown` pair up; the state store lives while the count is above zero.

use super::*;

pub(super) struct Session {
    pub(super) refcount: u32,
    pub(super) store: Option<Store>,
}

pub(super) static SESSION: Mutex<Session> = Mutex::new(Session {
    refcount: 0,
    store: None,
});

pub(super) fn session() -> MutexGuard<'static, Session> {
    SESSION.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn current_store() -> Option<Store> {
    let s = session();
    if s.refcount > 0 {
        s.store.clone()
    } else {
        None
    }
}
