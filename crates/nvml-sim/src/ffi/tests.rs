//! Unit tests of the ABI layer: handles, pointers, the call wrapper.

use super::device::nvmlDeviceGetCount_v2;
use super::library::{nvmlErrorString, nvmlShutdown};
use super::*;

#[test]
fn handles_round_trip() {
    for h in [
        Handle::Gpu(0),
        Handle::Gpu(63),
        Handle::Mig(3, 7, 6),
        Handle::Gi(1, 1),
        Handle::Ci(2, 5, 0),
    ] {
        assert_eq!(Handle::decode(h.encode()), Some(h));
        assert_ne!(h.encode(), 0);
    }
    assert_eq!(Handle::decode(0), None);
    assert_eq!(Handle::decode(0xdead_beef_0000), None);
    assert_eq!(Handle::decode(0x1234), None);
}

#[test]
fn calls_before_init_are_uninitialized() {
    // No unit test initialises the library, so the refcount is 0 here.
    let mut count = 0;
    // SAFETY: `count` is a valid out pointer for the call.
    assert_eq!(unsafe { nvmlDeviceGetCount_v2(&mut count) }, UNINITIALIZED);
    // SAFETY: no arguments.
    assert_eq!(unsafe { nvmlShutdown() }, UNINITIALIZED);
    // SAFETY: returns a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(nvmlErrorString(23)) };
    assert_eq!(text.to_str().unwrap(), "Insufficient Resources");
}

#[test]
fn strings() {
    let mut buf = [1 as c_char; 4];
    assert_eq!(put_str(Some(&mut buf), "abcd"), Err(INSUFFICIENT_SIZE));
    assert_eq!(put_str(Some(&mut buf), "abc"), Ok(()));
    assert_eq!(buf[3], 0);
    let mut small = [1 as c_char; 3];
    fill_chars(&mut small, "hello");
    assert_eq!(small, [b'h' as c_char, b'e' as c_char, 0]);
}
