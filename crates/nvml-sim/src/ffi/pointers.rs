//! Raw pointers from C turned into references and strings, each checked for null.

use super::*;

/// Writes `s` NUL-terminated into `buf`; `INSUFFICIENT_SIZE` when it does not fit.
pub(super) fn put_str(buf: Option<&mut [c_char]>, s: &str) -> Result<(), Code> {
    let buf = buf.ok_or(INVALID_ARGUMENT)?;
    if buf.len() < s.len() + 1 {
        return Err(INSUFFICIENT_SIZE);
    }
    for (d, b) in buf.iter_mut().zip(s.bytes().chain(std::iter::once(0))) {
        *d = b as c_char;
    }
    Ok(())
}

/// Copies `s` into a fixed C char array, truncating, always NUL-terminated.
pub(super) fn fill_chars(dst: &mut [c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst
        .iter_mut()
        .zip(s.bytes().take(n).chain(std::iter::repeat(0)))
    {
        *d = b as c_char;
    }
}

/// # Safety
/// `p` must be null or point to `len` writable `T`s for the duration of the call.
pub(super) unsafe fn out_slice<'a, T>(p: *mut T, len: usize) -> Option<&'a mut [T]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and, per this function's contract, valid for `len` elements.
        Some(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }
}

/// # Safety
/// `p` must be null or point to a NUL-terminated string valid for the call.
pub(super) unsafe fn in_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-null and NUL-terminated per this function's contract.
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// `sizeof(T) | (ver << 24)`, nvml.h's `NVML_STRUCT_VERSION`.
pub(super) fn struct_version<T>(ver: u32) -> u32 {
    (std::mem::size_of::<T>() as u32) | (ver << 24)
}
