//! The `nvmlReturn_t` values the simulator returns, and their `nvmlErrorString` texts.

/// An `nvmlReturn_t` value.
pub type Code = u32;

/// `NVML_SUCCESS`.
pub const SUCCESS: Code = 0;
/// `NVML_ERROR_UNINITIALIZED`.
pub const UNINITIALIZED: Code = 1;
/// `NVML_ERROR_INVALID_ARGUMENT`.
pub const INVALID_ARGUMENT: Code = 2;
/// `NVML_ERROR_NOT_SUPPORTED`.
pub const NOT_SUPPORTED: Code = 3;
/// `NVML_ERROR_NO_PERMISSION`.
pub const NO_PERMISSION: Code = 4;
/// `NVML_ERROR_NOT_FOUND`.
pub const NOT_FOUND: Code = 6;
/// `NVML_ERROR_INSUFFICIENT_SIZE`.
pub const INSUFFICIENT_SIZE: Code = 7;
/// `NVML_ERROR_LIBRARY_NOT_FOUND`.
pub const LIBRARY_NOT_FOUND: Code = 12;
/// `NVML_ERROR_RESET_REQUIRED`.
pub const RESET_REQUIRED: Code = 16;
/// `NVML_ERROR_IN_USE`.
pub const IN_USE: Code = 19;
/// `NVML_ERROR_INSUFFICIENT_RESOURCES`.
pub const INSUFFICIENT_RESOURCES: Code = 23;
/// `NVML_ERROR_ARGUMENT_VERSION_MISMATCH`.
pub const ARGUMENT_VERSION_MISMATCH: Code = 25;
/// `NVML_ERROR_UNKNOWN`.
pub const UNKNOWN: Code = 999;

/// The NUL-terminated description `nvmlErrorString` returns for `code`.
pub fn error_string(code: Code) -> &'static std::ffi::CStr {
    match code {
        SUCCESS => c"Success",
        UNINITIALIZED => c"Uninitialized",
        INVALID_ARGUMENT => c"Invalid Argument",
        NOT_SUPPORTED => c"Not Supported",
        NO_PERMISSION => c"Insufficient Permissions",
        5 => c"Already Initialized",
        NOT_FOUND => c"Not Found",
        INSUFFICIENT_SIZE => c"Insufficient Size",
        8 => c"Insufficient External Power",
        9 => c"Driver Not Loaded",
        10 => c"Timeout",
        11 => c"Interrupt received",
        LIBRARY_NOT_FOUND => c"NVML Shared Library Not Found",
        13 => c"Function Not Found",
        14 => c"Corrupted infoROM",
        15 => c"GPU is lost",
        RESET_REQUIRED => c"GPU requires reset",
        17 => c"GPU access blocked by the operating system",
        18 => c"RM has detected an NVML/RM version mismatch",
        IN_USE => c"In use by another client",
        20 => c"Insufficient Memory",
        21 => c"No data",
        22 => c"The requested vgpu operation is not available on target device, because ECC is enabled",
        INSUFFICIENT_RESOURCES => c"Insufficient Resources",
        24 => c"Requested frequency not supported",
        ARGUMENT_VERSION_MISMATCH => c"Argument version mismatch",
        26 => c"Deprecated",
        27 => c"Not Ready",
        28 => c"GPU Not Found",
        29 => c"Invalid State",
        _ => c"Unknown Error",
    }
}
