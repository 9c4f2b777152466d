//! Provenance of catalog values: each number says whether it was read off real hardware,
//! taken from NVIDIA's documentation, assumed from a sibling model, or is not known.

use serde::Serialize;

/// Where a catalog value comes from. Callers that must not guess (the agent cross-check,
/// `migfleet mig profiles`) show this next to the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Seen in a real `nvidia-smi mig -lgip`/`-lgipp` capture or NVML answer.
    Measured,
    /// Stated by NVIDIA's MIG user guide or mig-parted's shipped configs, not captured.
    Documented,
    /// Not seen for this model; taken from a sibling model of the same class.
    Assumed,
    /// No source found; the value is absent.
    Unknown,
}

/// A catalog value with its provenance. `value` is `None` exactly when the source is
/// [`Source::Unknown`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Fact<T> {
    pub value: Option<T>,
    pub source: Source,
}

impl<T: Copy> Fact<T> {
    pub const fn measured(v: T) -> Self {
        Fact {
            value: Some(v),
            source: Source::Measured,
        }
    }
    pub const fn documented(v: T) -> Self {
        Fact {
            value: Some(v),
            source: Source::Documented,
        }
    }
    pub const fn assumed(v: T) -> Self {
        Fact {
            value: Some(v),
            source: Source::Assumed,
        }
    }
    pub const fn unknown() -> Self {
        Fact {
            value: None,
            source: Source::Unknown,
        }
    }
    /// True when the value was seen on hardware or documented, not inferred.
    pub fn is_sourced(&self) -> bool {
        matches!(self.source, Source::Measured | Source::Documented)
    }
}

impl<T: std::fmt::Display + Copy> Fact<T> {
    /// Text for tables: the value, with `?` appended when assumed and `?` alone when unknown.
    pub fn display(&self) -> String {
        match (self.value, self.source) {
            (Some(v), Source::Assumed) => format!("{v}?"),
            (Some(v), _) => v.to_string(),
            (None, _) => "?".to_string(),
        }
    }
}
