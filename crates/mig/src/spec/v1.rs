//! Typed, strict decoding of mig-parted `version: v1` configs from a [`spanned`](crate::spec::spanned) tree.
//!
//! Every value keeps the position where it was written, and every problem is
//! reported with the position of the offending node. Decoding does not stop
//! at the first problem: all independent errors are collected and returned
//! sorted by position.
//!
//! Typing follows the YAML scalar style: only *plain* scalars can be
//! booleans or integers, so `mig-enabled: "true"` is a string and rejected.
//! Strings (`version`, `devices: all`, profile names, device filters) may be
//! written plain or quoted. Integers are decimal digits only; a leading zero
//! is rejected because YAML 1.1 readers (such as mig-parted itself) would
//! read it as octal. `null` is never accepted in place of a value.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

pub use crate::spec::spanned::Pos;
use crate::spec::spanned::{self, MapEntry, Node, NodeKind, Scalar, ScalarStyle, excerpt};

/// A decoded value together with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Spanned<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Self { value, pos }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    pub version: Spanned<String>,
    /// In file order.
    pub configs: Vec<NamedConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedConfig {
    pub name: Spanned<String>,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Position of the list item's mapping (its first key for block style,
    /// its `{` for flow style).
    pub pos: Pos,
    pub devices: Spanned<Devices>,
    pub device_filter: Option<Vec<Spanned<DeviceFilter>>>,
    pub mig_enabled: Spanned<bool>,
    /// Profile name -> instance count, in file order; empty if absent.
    pub mig_devices: Vec<(Spanned<String>, Spanned<u32>)>,
    /// Where the `mig-devices` key was, if present.
    pub mig_devices_pos: Option<Pos>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Devices {
    All,
    Indices(Vec<u32>),
}

/// A PCI id filter as packed by mig-parted: `0xDDDDVVVV[:0xSSSSssss]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct DeviceFilter {
    pub device_id: u16,
    pub vendor_id: u16,
    /// `(subsystem device id, subsystem vendor id)`.
    pub subsystem: Option<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SpecError {
    pub pos: Pos,
    pub message: String,
}

impl From<spanned::YamlError> for SpecError {
    fn from(e: spanned::YamlError) -> Self {
        Self {
            pos: e.pos,
            message: e.message,
        }
    }
}

const TOP_FIELDS: &str = "`version`, `mig-configs`";
const ENTRY_FIELDS: &str = "`devices`, `device-filter`, `mig-enabled`, `mig-devices`";
const PROFILE_SYNTAX: &str =
    "`<G>g.<N>gb` or `<C>c.<G>g.<N>gb`, optionally followed by `+me`, `+me.all`, `+gfx` or `-me`";
const FILTER_SYNTAX: &str = "`0xDDDDVVVV` (device id, vendor id), optionally followed by `:0xSSSSVVVV` (subsystem device id, subsystem vendor id)";

/// Parses a mig-parted v1 config. On failure returns every error found,
/// sorted by position; the vector is never empty.
pub fn parse(src: &str) -> Result<Config, Vec<SpecError>> {
    let loaded = spanned::load(src);
    let mut d = Decoder {
        errors: loaded.errors.into_iter().map(SpecError::from).collect(),
    };
    let config = match &loaded.root {
        Some(root) => d.config(root),
        None => {
            if d.errors.is_empty() {
                d.err(
                    Pos::new(1, 1),
                    "empty document: expected a mapping with `version` and `mig-configs`",
                );
            }
            None
        }
    };
    match config {
        Some(c) if d.errors.is_empty() => Ok(c),
        _ => {
            let mut errors = d.errors;
            // Should a bug ever make decoding fail silently, still honour
            // the "never empty" promise.
            if errors.is_empty() {
                errors.push(SpecError {
                    pos: Pos::new(1, 1),
                    message: "invalid config".to_owned(),
                });
            }
            errors.sort_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.message.cmp(&b.message)));
            errors.dedup();
            Err(errors)
        }
    }
}

/// Describes a node for "found ..." in messages.
struct Found<'a>(&'a Node);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.kind {
            NodeKind::Sequence(_) => f.write_str("a sequence"),
            NodeKind::Mapping(_) => f.write_str("a mapping"),
            NodeKind::Invalid => f.write_str("an alias"),
            NodeKind::Scalar(s) => {
                let kind = if matches!(s.style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    "block string"
                } else if !s.is_plain() {
                    "quoted string"
                } else if s.is_null() {
                    return f.write_str("null");
                } else if matches!(
                    s.value.as_str(),
                    "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
                ) {
                    "boolean"
                } else if looks_like_int(&s.value) {
                    "integer"
                } else if s.value.bytes().any(|b| b.is_ascii_digit())
                    && s.value.parse::<f64>().is_ok()
                {
                    "number"
                } else {
                    "string"
                };
                write!(f, "{kind} `{}`", excerpt(&s.value))
            }
        }
    }
}

fn looks_like_int(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Decimal digits, no sign, no leading zero (except `0` itself).
fn parse_decimal_u32(s: &str) -> Result<u32, &'static str> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a decimal integer");
    }
    if s.len() > 1 && s.starts_with('0') {
        return Err("leading zeros are not allowed");
    }
    s.parse::<u32>().map_err(|_| "too large")
}

/// Text of a scalar usable as a string (plain or quoted), or `None`.
fn string_text(node: &Node) -> Option<&str> {
    match &node.kind {
        NodeKind::Scalar(s) if !s.is_null() => Some(s.value.as_str()),
        _ => None,
    }
}

struct Decoder {
    errors: Vec<SpecError>,
}

impl Decoder {
    fn err(&mut self, pos: Pos, message: impl Into<String>) {
        self.errors.push(SpecError {
            pos,
            message: message.into(),
        });
    }

    /// Reports a type mismatch unless the node is an already-reported alias.
    fn mismatch(&mut self, node: &Node, expected: &str) {
        if node.kind != NodeKind::Invalid {
            self.err(
                node.pos,
                format!("expected {expected}, found {}", Found(node)),
            );
        }
    }

    fn mapping<'n>(&mut self, node: &'n Node, expected: &str) -> Option<&'n [MapEntry]> {
        match &node.kind {
            NodeKind::Mapping(m) => Some(m),
            _ => {
                self.mismatch(node, expected);
                None
            }
        }
    }

    /// The text of a mapping key; keys must be non-null scalars.
    fn key<'n>(&mut self, key: &'n Node) -> Option<&'n str> {
        let text = string_text(key);
        if text.is_none() {
            self.mismatch(key, "a string key");
        }
        text
    }

    fn config(&mut self, root: &Node) -> Option<Config> {
        let map = self.mapping(root, "a mapping with `version` and `mig-configs`")?;
        let mut version = None;
        let mut configs = None;
        let mut ok = true;
        for entry in map {
            let Some(key) = self.key(&entry.key) else {
                ok = false;
                continue;
            };
            match key {
                "version" => version = Some(self.version(&entry.value)),
                "mig-configs" => configs = Some(self.configs(&entry.value)),
                other => {
                    ok = false;
                    self.err(
                        entry.key.pos,
                        format!(
                            "unknown field `{}`, expected one of {TOP_FIELDS}",
                            excerpt(other)
                        ),
                    );
                }
            }
        }
        if version.is_none() {
            self.err(root.pos, "missing required field `version`");
        }
        if configs.is_none() {
            self.err(root.pos, "missing required field `mig-configs`");
        }
        match (version.flatten(), configs.flatten()) {
            (Some(version), Some(configs)) if ok => Some(Config { version, configs }),
            _ => None,
        }
    }

    fn version(&mut self, node: &Node) -> Option<Spanned<String>> {
        match &node.kind {
            NodeKind::Scalar(s) if s.value == "v1" => Some(Spanned::new(s.value.clone(), node.pos)),
            NodeKind::Scalar(_) if string_text(node).is_some() => {
                self.err(
                    node.pos,
                    format!("unsupported version: expected `v1`, found {}", Found(node)),
                );
                None
            }
            _ => {
                self.mismatch(node, "version string `v1`");
                None
            }
        }
    }

    fn configs(&mut self, node: &Node) -> Option<Vec<NamedConfig>> {
        let map = self.mapping(node, "a mapping of config names to lists of entries")?;
        if map.is_empty() {
            self.err(node.pos, "`mig-configs` must contain at least one config");
            return None;
        }
        let mut out = Vec::with_capacity(map.len());
        let mut ok = true;
        for entry in map {
            match self.named_config(entry) {
                Some(c) => out.push(c),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn named_config(&mut self, entry: &MapEntry) -> Option<NamedConfig> {
        let name = self.key(&entry.key);
        let name = match name {
            Some("") => {
                self.err(entry.key.pos, "config name must not be empty");
                None
            }
            Some(n) => Some(Spanned::new(n.to_owned(), entry.key.pos)),
            None => None,
        };
        let label = name
            .as_ref()
            .map(|n| format!("config `{}`", excerpt(&n.value)))
            .unwrap_or_else(|| "config".to_owned());
        let entries = match &entry.value.kind {
            NodeKind::Sequence(items) if items.is_empty() => {
                self.err(
                    entry.value.pos,
                    format!("{label} must have at least one entry"),
                );
                None
            }
            NodeKind::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.entry(item) {
                        Some(e) => out.push(e),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.mismatch(&entry.value, &format!("a list of entries for {label}"));
                None
            }
        };
        Some(NamedConfig {
            name: name?,
            entries: entries?,
        })
    }

    fn entry(&mut self, node: &Node) -> Option<Entry> {
        let map = self.mapping(
            node,
            "a config entry (a mapping with `devices`, `mig-enabled` and `mig-devices`)",
        )?;
        // Each field is Option<Option<T>>: outer = key present, inner = valid.
        let mut devices = None;
        let mut filter = None;
        let mut enabled = None;
        let mut mig_devices: Option<(Pos, Option<Vec<_>>)> = None;
        let mut ok = true;
        for e in map {
            let Some(key) = self.key(&e.key) else {
                ok = false;
                continue;
            };
            match key {
                "devices" => devices = Some(self.devices(&e.value)),
                "device-filter" => filter = Some(self.device_filter(&e.value)),
                "mig-enabled" => enabled = Some(self.mig_enabled(&e.value)),
                "mig-devices" => {
                    mig_devices = Some((e.key.pos, self.mig_devices(&e.value)));
                }
                other => {
                    ok = false;
                    self.err(
                        e.key.pos,
                        format!(
                            "unknown field `{}`, expected one of {ENTRY_FIELDS}",
                            excerpt(other)
                        ),
                    );
                }
            }
        }
        if devices.is_none() {
            self.err(node.pos, "missing required field `devices`");
        }
        if enabled.is_none() {
            self.err(node.pos, "missing required field `mig-enabled`");
        }
        let enabled = enabled.flatten();
        match (enabled.as_ref().map(|e| e.value), &mig_devices) {
            (Some(true), None) => self.err(
                node.pos,
                "missing required field `mig-devices` (required when `mig-enabled` is true; use `mig-devices: {}` for no MIG devices)",
            ),
            (Some(false), Some((pos, Some(profiles)))) if !profiles.is_empty() => self.err(
                *pos,
                format!(
                    "`mig-devices` lists {} profile(s) but `mig-enabled` is false; remove them or set `mig-enabled: true`",
                    profiles.len()
                ),
            ),
            _ => {}
        }
        let (mig_devices_pos, mig_devices) = match mig_devices {
            None => (None, Vec::new()),
            Some((pos, profiles)) => (Some(pos), profiles?),
        };
        let device_filter = match filter {
            None => None,
            Some(f) => Some(f?),
        };
        if !ok {
            return None;
        }
        Some(Entry {
            pos: node.pos,
            devices: devices.flatten()?,
            device_filter,
            mig_enabled: enabled?,
            mig_devices,
            mig_devices_pos,
        })
    }

    fn devices(&mut self, node: &Node) -> Option<Spanned<Devices>> {
        const EXPECTED: &str = "`all` or a list of device indices";
        match &node.kind {
            NodeKind::Scalar(Scalar { value, .. }) if value == "all" => {
                Some(Spanned::new(Devices::All, node.pos))
            }
            NodeKind::Sequence(items) => {
                let mut indices = Vec::with_capacity(items.len());
                let mut first_seen: HashMap<u32, Pos> = HashMap::new();
                let mut ok = true;
                for item in items {
                    let Some(index) = self.uint(item, "a non-negative device index") else {
                        ok = false;
                        continue;
                    };
                    if let Some(first) = first_seen.get(&index) {
                        ok = false;
                        self.err(
                            item.pos,
                            format!("duplicate device index {index} (first listed at {first})"),
                        );
                    } else {
                        first_seen.insert(index, item.pos);
                        indices.push(index);
                    }
                }
                ok.then(|| Spanned::new(Devices::Indices(indices), node.pos))
            }
            _ => {
                self.mismatch(node, EXPECTED);
                None
            }
        }
    }

    /// A plain, decimal, non-negative integer.
    fn uint(&mut self, node: &Node, expected: &str) -> Option<u32> {
        match &node.kind {
            NodeKind::Scalar(s) if s.is_plain() => match parse_decimal_u32(&s.value) {
                Ok(n) => Some(n),
                Err(why) if looks_like_int(&s.value) && !s.value.starts_with(['-', '+']) => {
                    self.err(
                        node.pos,
                        format!(
                            "expected {expected}, found integer `{}` ({why})",
                            excerpt(&s.value)
                        ),
                    );
                    None
                }
                Err(_) => {
                    self.mismatch(node, expected);
                    None
                }
            },
            _ => {
                self.mismatch(node, expected);
                None
            }
        }
    }

    fn mig_enabled(&mut self, node: &Node) -> Option<Spanned<bool>> {
        let value = match &node.kind {
            NodeKind::Scalar(s) if s.is_plain() && s.value == "true" => Some(true),
            NodeKind::Scalar(s) if s.is_plain() && s.value == "false" => Some(false),
            _ => None,
        };
        if value.is_none() {
            self.mismatch(node, "a boolean (true or false)");
        }
        value.map(|v| Spanned::new(v, node.pos))
    }

    fn mig_devices(&mut self, node: &Node) -> Option<Vec<(Spanned<String>, Spanned<u32>)>> {
        let map = self.mapping(node, "a mapping of MIG profile names to instance counts")?;
        let mut out = Vec::with_capacity(map.len());
        let mut ok = true;
        for e in map {
            let name = self.key(&e.key).and_then(|k| {
                if is_valid_profile(k) {
                    Some(Spanned::new(k.to_owned(), e.key.pos))
                } else {
                    self.err(
                        e.key.pos,
                        format!(
                            "invalid MIG profile name `{}`, expected {PROFILE_SYNTAX}",
                            excerpt(k)
                        ),
                    );
                    None
                }
            });
            let count = self.uint(&e.value, "a non-negative instance count");
            match (name, count) {
                (Some(n), Some(c)) => out.push((n, Spanned::new(c, e.value.pos))),
                _ => ok = false,
            }
        }
        if ok && !out.is_empty() && out.iter().all(|(_, c)| c.value == 0) {
            self.err(
                node.pos,
                "all MIG device counts are zero; use `mig-devices: {}` to enable MIG with no devices",
            );
            return None;
        }
        ok.then_some(out)
    }

    fn device_filter(&mut self, node: &Node) -> Option<Vec<Spanned<DeviceFilter>>> {
        const EXPECTED: &str = "a device filter string or a list of them";
        match &node.kind {
            NodeKind::Scalar(_) if string_text(node).is_some() => {
                self.one_filter(node).map(|f| vec![f])
            }
            NodeKind::Sequence(items) if items.is_empty() => {
                self.err(node.pos, "`device-filter` list must not be empty");
                None
            }
            NodeKind::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for item in items {
                    match self.one_filter(item) {
                        Some(f) => out.push(f),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.mismatch(node, EXPECTED);
                None
            }
        }
    }

    fn one_filter(&mut self, node: &Node) -> Option<Spanned<DeviceFilter>> {
        let Some(text) = string_text(node) else {
            self.mismatch(node, &format!("a device filter {FILTER_SYNTAX}"));
            return None;
        };
        match parse_device_filter(text) {
            Some(f) => Some(Spanned::new(f, node.pos)),
            None => {
                let message = match short_device_id(text) {
                    // A bare PCI device id is the common slip (it is how lspci and
                    // pci.ids print it); say what it means and what to write instead.
                    Some(id) => format!(
                        "device filter `{text}` is a PCI device id alone; mig-parted's filter is the device id followed by the vendor id, so for device 0x{id:04X} from NVIDIA (vendor 0x{NVIDIA:04X}) write `0x{id:04X}{NVIDIA:04X}`",
                        NVIDIA = crate::catalog::NVIDIA_VENDOR_ID
                    ),
                    None => format!(
                        "invalid device filter `{}`, expected {FILTER_SYNTAX}",
                        excerpt(text)
                    ),
                };
                self.err(node.pos, message);
                None
            }
        }
    }
}

/// `0xDDDD` (four hex digits, nothing else): a device id written without its vendor id.
fn short_device_id(s: &str) -> Option<u16> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if hex.len() != 4 {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// `0x` + exactly 8 hex digits, split into (high 16 bits, low 16 bits).
fn parse_packed_id(s: &str) -> Option<(u16, u16)> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let packed = u32::from_str_radix(hex, 16).ok()?;
    let high = u16::try_from(packed >> 16).ok()?;
    let low = u16::try_from(packed & 0xFFFF).ok()?;
    Some((high, low))
}

/// Parses `0xDDDDVVVV` or `0xDDDDVVVV:0xSSSSssss`.
pub fn parse_device_filter(s: &str) -> Option<DeviceFilter> {
    let (main, sub) = match s.split_once(':') {
        Some((m, sub)) => (m, Some(sub)),
        None => (s, None),
    };
    let (device_id, vendor_id) = parse_packed_id(main)?;
    let subsystem = match sub {
        Some(sub) => Some(parse_packed_id(sub)?),
        None => None,
    };
    Some(DeviceFilter {
        device_id,
        vendor_id,
        subsystem,
    })
}

/// Checks MIG profile *syntax* only; whether a GPU model offers the
/// profile is decided elsewhere. Stricter than the catalog's forgiving parser: the name
/// must be written exactly as the driver prints it (lower case, no `mig-` prefix, no
/// leading zeros).
pub fn is_valid_profile(s: &str) -> bool {
    crate::catalog::ProfileName::parse(s).is_ok_and(|p| p.to_string() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_syntax() {
        for ok in [
            "1g.5gb",
            "1g.10gb",
            "7g.80gb",
            "1c.3g.20gb",
            "2c.7g.80gb",
            "1g.10gb+me",
            "1g.12gb+me.all",
            "1g.20gb+gfx",
            "7g.80gb-me",
            "3g.40gb",
        ] {
            assert!(is_valid_profile(ok), "{ok}");
        }
        for bad in [
            "",
            "1g",
            "g.5gb",
            "0g.5gb",
            "1g.0gb",
            "1g.5GB",
            "1g.5gb+foo",
            "1g.5gb+me+gfx",
            "1c.1g",
            "c.1g.5gb",
            "1x.1g.5gb",
            "1c.2c.1g.5gb",
            "1g.5",
            "01g.5gb",
            " 1g.5gb",
            "1g.5gb ",
            "1g..5gb",
            "-1g.5gb",
            "1g.5gb-gfx",
            "+me",
        ] {
            assert!(!is_valid_profile(bad), "{bad}");
        }
    }

    #[test]
    fn device_filter_syntax() {
        assert_eq!(
            parse_device_filter("0x20B010DE"),
            Some(DeviceFilter {
                device_id: 0x20B0,
                vendor_id: 0x10DE,
                subsystem: None
            })
        );
        assert_eq!(
            parse_device_filter("0X20b010de:0x147E10DE"),
            Some(DeviceFilter {
                device_id: 0x20B0,
                vendor_id: 0x10DE,
                subsystem: Some((0x147E, 0x10DE))
            })
        );
        for bad in [
            "",
            "0x",
            "20B010DE",
            "0x20B010D",
            "0x20B010DEE",
            "0x20B010DG",
            "0x20B010DE:",
            "0x20B010DE:147E10DE",
            "0x20B010DE:0x147E10DE:0x1",
            "0x+0B010DE",
            "0x20B0 10DE",
        ] {
            assert_eq!(parse_device_filter(bad), None, "{bad}");
        }
    }

    #[test]
    fn decimal_parsing() {
        assert_eq!(parse_decimal_u32("0"), Ok(0));
        assert_eq!(parse_decimal_u32("4294967295"), Ok(u32::MAX));
        assert!(parse_decimal_u32("4294967296").is_err());
        assert!(parse_decimal_u32("07").is_err());
        assert!(parse_decimal_u32("+7").is_err());
        assert!(parse_decimal_u32("0x7").is_err());
        assert!(parse_decimal_u32("").is_err());
    }
}
