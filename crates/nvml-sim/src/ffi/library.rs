//! Exports: library and system (`nvmlInit*`, `nvmlShutdown`, versions, `nvmlErrorString`).

use super::*;

pub(super) fn init_impl(name: &'static str, args: Value) -> nvmlReturn_t {
    let r = catch_unwind(AssertUnwindSafe(|| {
        let Some(path) = std::env::var_os(STATE_ENV) else {
            eprintln!(
                "nvml-sim: {STATE_ENV} is not set; point it at a state file made by `nvml-sim init`"
            );
            return LIBRARY_NOT_FOUND;
        };
        let store = Store::new(path);
        if let Some(spec) = std::env::var_os(INIT_ENV)
            && !store.path().exists()
        {
            if let Some(dir) = store.path().parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let made = crate::sim::parse_init_spec(&spec.to_string_lossy())
                .and_then(|spec| crate::sim::new_state(&spec));
            match made {
                // Another process may have created it meanwhile: then it exists, fine.
                Ok(st) => {
                    let _ = store.create(&st, false);
                }
                Err(e) => {
                    eprintln!("nvml-sim: {INIT_ENV}: {e}");
                    return LIBRARY_NOT_FOUND;
                }
            }
        }
        let state = match store.load() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("nvml-sim: {STATE_ENV}: {e}");
                return LIBRARY_NOT_FOUND;
            }
        };
        if state.has_injection(name) {
            // Saved either way: a call let through by `skip` counts down.
            let injected = store.update(|s| (s.take_injection(name), true));
            if let Ok(Some(code)) = injected {
                log(&store, name, args, code);
                return code;
            }
        }
        {
            let mut s = session();
            if s.refcount == 0 || s.store.is_none() {
                s.store = Some(store.clone());
            }
            s.refcount += 1;
        }
        log(&store, name, args, SUCCESS);
        SUCCESS
    }));
    r.unwrap_or(UNKNOWN)
}

/// `nvmlInit_v2`: reads `NVML_SIM_STATE`; `LIBRARY_NOT_FOUND` when unset or unreadable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    init_impl("nvmlInit_v2", json!({}))
}

/// `nvmlInitWithFlags`: flags are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlInitWithFlags(flags: c_uint) -> nvmlReturn_t {
    init_impl("nvmlInitWithFlags", json!({"flags": flags}))
}

/// `nvmlShutdown`: drops one init reference.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    let ret = call("nvmlShutdown", json!({}), Access::Read, |_| Ok(()));
    if ret == SUCCESS {
        let mut s = session();
        s.refcount = s.refcount.saturating_sub(1);
        if s.refcount == 0 {
            s.store = None;
        }
    }
    ret
}

/// `nvmlErrorString`: static description of a return code.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    let r = catch_unwind(|| {
        if let Some(store) = current_store() {
            log(
                &store,
                "nvmlErrorString",
                json!({"result": result}),
                SUCCESS,
            );
        }
        error_string(result).as_ptr()
    });
    r.unwrap_or(c"Unknown Error".as_ptr())
}

/// `nvmlSystemGetDriverVersion`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: NVML contract: `version` is null or has `length` writable bytes.
    let buf = unsafe { out_slice(version, length as usize) };
    call("nvmlSystemGetDriverVersion", json!({}), Access::Read, |s| {
        put_str(buf, s.driver())
    })
}

/// `nvmlSystemGetNVMLVersion`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetNVMLVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: NVML contract: `version` is null or has `length` writable bytes.
    let buf = unsafe { out_slice(version, length as usize) };
    call("nvmlSystemGetNVMLVersion", json!({}), Access::Read, |_| {
        put_str(buf, NVML_VERSION)
    })
}
