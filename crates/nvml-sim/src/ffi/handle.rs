//! Opaque handles: what an `nvmlDevice_t`, `nvmlGpuInstance_t` or `nvmlComputeInstance_t` names, encoded in the pointer value itself, and resolving them against the state.

use super::*;

/// What an opaque handle names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handle {
    /// A physical GPU (`nvmlDevice_t`).
    Gpu(u32),
    /// A MIG device (`nvmlDevice_t`): gpu, gi, ci.
    Mig(u32, u32, u32),
    /// A GPU instance (`nvmlGpuInstance_t`): gpu, gi.
    Gi(u32, u32),
    /// A compute instance (`nvmlComputeInstance_t`): gpu, gi, ci.
    Ci(u32, u32, u32),
}

impl Handle {
    pub(super) fn encode(self) -> usize {
        let (kind, gpu, gi, ci) = match self {
            Handle::Gpu(g) => (1u32, g, 0, 0),
            Handle::Mig(g, i, c) => (2, g, i, c),
            Handle::Gi(g, i) => (3, g, i, 0),
            Handle::Ci(g, i, c) => (4, g, i, c),
        };
        let v = (kind << 24) | ((gpu & 0xFF) << 16) | ((gi & 0xFF) << 8) | (ci & 0xFF);
        v as usize + 1
    }

    pub(super) fn decode(addr: usize) -> Option<Handle> {
        let v = u32::try_from(addr.checked_sub(1)?).ok()?;
        let (kind, gpu, gi, ci) = (v >> 24, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF);
        match kind {
            1 if gi == 0 && ci == 0 => Some(Handle::Gpu(gpu)),
            2 => Some(Handle::Mig(gpu, gi, ci)),
            3 if ci == 0 => Some(Handle::Gi(gpu, gi)),
            4 => Some(Handle::Ci(gpu, gi, ci)),
            _ => None,
        }
    }

    pub(super) fn ptr<T>(self) -> *mut T {
        std::ptr::without_provenance_mut(self.encode())
    }

    pub(super) fn of<T>(p: *mut T) -> Option<Handle> {
        Handle::decode(p.addr())
    }

    pub(super) fn json(h: Option<Handle>) -> Value {
        match h {
            Some(Handle::Gpu(g)) => json!({"gpu": g}),
            Some(Handle::Mig(g, i, c)) => json!({"gpu": g, "gi": i, "ci": c, "mig": true}),
            Some(Handle::Gi(g, i)) => json!({"gpu": g, "gi": i}),
            Some(Handle::Ci(g, i, c)) => json!({"gpu": g, "gi": i, "ci": c}),
            None => json!({"handle": "invalid"}),
        }
    }
}

/// Log arguments: the handle's fields merged with `extra`.
pub(super) fn hargs(h: Option<Handle>, extra: Value) -> Value {
    let mut base = Handle::json(h);
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// A device handle resolved against the state: the GPU and, for a MIG device, (gi, ci).
pub(super) fn resolve_device(
    s: &State,
    h: Option<Handle>,
) -> Result<(&Gpu, Option<MigDevice>), Code> {
    match h {
        Some(Handle::Gpu(g)) => Ok((s.gpu(g).ok_or(INVALID_ARGUMENT)?, None)),
        Some(Handle::Mig(g, gi, ci)) => {
            let gpu = s.gpu(g).ok_or(INVALID_ARGUMENT)?;
            if gpu.mig_device_exists(gi, ci) {
                Ok((gpu, Some((gi, ci))))
            } else {
                Err(NOT_FOUND)
            }
        }
        _ => Err(INVALID_ARGUMENT),
    }
}

/// A handle that must name a physical GPU (not a MIG device).
pub(super) fn parent(s: &State, h: Option<Handle>) -> Result<&Gpu, Code> {
    match h {
        Some(Handle::Gpu(g)) => s.gpu(g).ok_or(INVALID_ARGUMENT),
        _ => Err(INVALID_ARGUMENT),
    }
}

/// A GPU-instance handle resolved against the state.
pub(super) fn resolve_gi(s: &State, h: Option<Handle>) -> Result<(&Gpu, &GpuInstance), Code> {
    match h {
        Some(Handle::Gi(g, gi)) => {
            let gpu = s.gpu(g).ok_or(INVALID_ARGUMENT)?;
            gpu.mig_enabled_model()?;
            Ok((gpu, gpu.gi(gi).ok_or(NOT_FOUND)?))
        }
        _ => Err(INVALID_ARGUMENT),
    }
}
