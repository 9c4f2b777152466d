//! Malformed mig-parted v1 files: every error must carry the exact position and a useful message.

use migfleet_mig::spec::v1::{SpecError, parse};

fn errors(src: &str) -> Vec<SpecError> {
    match parse(src) {
        Ok(cfg) => panic!("expected errors, got {cfg:?}"),
        Err(e) => {
            assert!(!e.is_empty());
            e
        }
    }
}

/// Asserts that parsing fails with exactly one error at `line:column` whose
/// message contains `needle`.
#[track_caller]
fn single(src: &str, line: u32, column: u32, needle: &str) {
    let errs = errors(src);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert_eq!((e.pos.line, e.pos.column), (line, column), "{e}");
    assert!(
        e.message.contains(needle),
        "`{}` lacks `{needle}`",
        e.message
    );
}

const HEADER: &str = "version: v1\nmig-configs:\n  c:\n";

/// A one-config file whose single entry body starts on line 4, column 7.
fn entry(body: &str) -> String {
    let mut s = HEADER.to_owned();
    for (i, line) in body.lines().enumerate() {
        s.push_str(if i == 0 { "    - " } else { "      " });
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[test]
fn wrong_version() {
    single(
        "version: v2\nmig-configs:\n  c: [{devices: all, mig-enabled: false}]\n",
        1,
        10,
        "found string `v2`",
    );
    single(
        "version: 1\nmig-configs:\n  c: [{devices: all, mig-enabled: false}]\n",
        1,
        10,
        "expected `v1`, found integer `1`",
    );
}

#[test]
fn missing_version() {
    single(
        "mig-configs:\n  c: [{devices: all, mig-enabled: false}]\n",
        1,
        1,
        "missing required field `version`",
    );
}

#[test]
fn missing_mig_configs_and_empty_configs() {
    single(
        "version: v1\n",
        1,
        1,
        "missing required field `mig-configs`",
    );
    single(
        "version: v1\nmig-configs: {}\n",
        2,
        14,
        "at least one config",
    );
    single(
        "version: v1\nmig-configs:\n  c: []\n",
        3,
        6,
        "config `c` must have at least one entry",
    );
}

#[test]
fn unknown_top_level_field() {
    single(
        "version: v1\nextra: 1\nmig-configs:\n  c: [{devices: all, mig-enabled: false}]\n",
        2,
        1,
        "unknown field `extra`, expected one of `version`, `mig-configs`",
    );
}

#[test]
fn unknown_entry_field() {
    single(
        &entry("devices: all\nmig-enabled: false\nmig-device: {}"),
        6,
        7,
        "unknown field `mig-device`, expected one of `devices`, `device-filter`, `mig-enabled`, `mig-devices`",
    );
}

#[test]
fn missing_devices() {
    single(
        &entry("mig-enabled: false"),
        4,
        7,
        "missing required field `devices`",
    );
}

#[test]
fn missing_mig_enabled_and_mig_devices() {
    single(
        &entry("devices: all"),
        4,
        7,
        "missing required field `mig-enabled`",
    );
    single(
        &entry("devices: all\nmig-enabled: true"),
        4,
        7,
        "missing required field `mig-devices`",
    );
}

#[test]
fn devices_wrong_string() {
    single(
        &entry("devices: some\nmig-enabled: false"),
        4,
        16,
        "expected `all` or a list of device indices, found string `some`",
    );
    single(
        &entry("devices: 3\nmig-enabled: false"),
        4,
        16,
        "found integer `3`",
    );
}

#[test]
fn devices_negative_and_bad_indices() {
    single(
        &entry("devices: [0, -1]\nmig-enabled: false"),
        4,
        20,
        "expected a non-negative device index, found integer `-1`",
    );
    single(
        &entry("devices: [\"0\"]\nmig-enabled: false"),
        4,
        17,
        "found quoted string `0`",
    );
    single(
        &entry("devices: [07]\nmig-enabled: false"),
        4,
        17,
        "leading zeros",
    );
    single(
        &entry("devices: [4294967296]\nmig-enabled: false"),
        4,
        17,
        "too large",
    );
    single(
        &entry("devices: [1.5]\nmig-enabled: false"),
        4,
        17,
        "found number `1.5`",
    );
}

#[test]
fn duplicate_device_index() {
    single(
        &entry("devices: [0, 1, 0]\nmig-enabled: false"),
        4,
        23,
        "duplicate device index 0 (first listed at 4:17)",
    );
}

#[test]
fn mig_enabled_not_a_bool() {
    single(
        &entry("devices: all\nmig-enabled: yes\nmig-devices: {}"),
        5,
        20,
        "expected a boolean (true or false), found string `yes`",
    );
    single(
        &entry("devices: all\nmig-enabled: \"true\"\nmig-devices: {}"),
        5,
        20,
        "found quoted string `true`",
    );
    single(
        &entry("devices: all\nmig-enabled: True\nmig-devices: {}"),
        5,
        20,
        "found boolean `True`",
    );
    single(
        &entry("devices: all\nmig-enabled:\nmig-devices: {}"),
        5,
        18,
        "found null",
    );
}

#[test]
fn mig_devices_with_mig_disabled() {
    single(
        &entry("devices: all\nmig-enabled: false\nmig-devices:\n  1g.10gb: 7"),
        6,
        7,
        "`mig-enabled` is false",
    );
}

#[test]
fn mig_devices_shape_and_counts() {
    single(
        &entry("devices: all\nmig-enabled: true\nmig-devices: [1g.10gb]"),
        6,
        20,
        "expected a mapping of MIG profile names",
    );
    single(
        &entry("devices: all\nmig-enabled: true\nmig-devices: {1g.10gb: -1}"),
        6,
        30,
        "found integer `-1`",
    );
    single(
        &entry("devices: all\nmig-enabled: true\nmig-devices: {1g.10gb: \"2\"}"),
        6,
        30,
        "found quoted string `2`",
    );
    single(
        &entry("devices: all\nmig-enabled: true\nmig-devices: {1g.10gb: 0, 2g.20gb: 0}"),
        6,
        20,
        "all MIG device counts are zero",
    );
}

#[test]
fn bad_profile_syntax() {
    single(
        &entry("devices: all\nmig-enabled: true\nmig-devices:\n  1g.10gb: 1\n  1g10gb: 2"),
        8,
        9,
        "invalid MIG profile name `1g10gb`",
    );
    single(
        &entry("devices: all\nmig-enabled: true\nmig-devices: {1g.10gb+foo: 1}"),
        6,
        21,
        "invalid MIG profile name `1g.10gb+foo`",
    );
}

#[test]
fn bad_device_filter() {
    single(
        &entry("device-filter: 0x20B010\ndevices: all\nmig-enabled: false"),
        4,
        22,
        "invalid device filter `0x20B010`",
    );
    // A device id alone (how lspci prints it) is explained with the filter to write.
    single(
        &entry("device-filter: \"0x2330\"\ndevices: all\nmig-enabled: false"),
        4,
        22,
        "device filter `0x2330` is a PCI device id alone; mig-parted's filter is the device id followed by the vendor id, so for device 0x2330 from NVIDIA (vendor 0x10DE) write `0x233010DE`",
    );
    single(
        &entry(
            "device-filter: [\"0x20B010DE\", \"0x20B010DE:147E10DE\"]\ndevices: all\nmig-enabled: false",
        ),
        4,
        37,
        "invalid device filter `0x20B010DE:147E10DE`",
    );
    single(
        &entry("device-filter: {a: 1}\ndevices: all\nmig-enabled: false"),
        4,
        22,
        "found a mapping",
    );
    single(
        &entry("device-filter: []\ndevices: all\nmig-enabled: false"),
        4,
        22,
        "must not be empty",
    );
}

#[test]
fn duplicate_key() {
    single(
        &entry("devices: all\nmig-enabled: false\ndevices: [0]"),
        6,
        7,
        "duplicate key `devices`: first defined on line 4, repeated on line 6",
    );
    single(
        "version: v1\nmig-configs:\n  c: [{devices: all, mig-enabled: false}]\n  c: [{devices: all, mig-enabled: false}]\n",
        4,
        3,
        "duplicate key `c`",
    );
}

#[test]
fn yaml_syntax_errors() {
    single(
        "version: v1\nmig-configs:\n  c:\n    - devices: [0, 1\n      mig-enabled: false\n",
        5,
        18,
        "invalid YAML",
    );
    single(
        "version: v1\nmig-configs:\n  c:\n    - devices: all\n     mig-enabled: false\n",
        5,
        6,
        "invalid YAML",
    );
    single("version: \"v1\nmig-configs: {}\n", 1, 10, "invalid YAML");
}

#[test]
fn empty_document() {
    single("", 1, 1, "empty document");
    single("# only a comment\n\n", 1, 1, "empty document");
    single("---\n", 2, 1, "found null");
}

#[test]
fn document_is_a_list() {
    single(
        "- version: v1\n",
        1,
        1,
        "expected a mapping with `version` and `mig-configs`, found a sequence",
    );
    single("just text\n", 1, 1, "found string `just text`");
}

#[test]
fn anchors_and_aliases_rejected() {
    let errs = errors(
        "version: v1\nmig-configs:\n  a: &e [{devices: all, mig-enabled: false}]\n  b: *e\n",
    );
    let got: Vec<_> = errs.iter().map(|e| (e.pos.line, e.pos.column)).collect();
    assert_eq!(got, [(3, 6), (4, 6)], "{errs:#?}");
    assert!(errs[0].message.contains("anchors"));
    assert!(errs[1].message.contains("aliases"));
}

#[test]
fn several_errors_all_reported_sorted() {
    let src = "\
version: v2
mig-configs:
  first:
    - devices: some
      mig-enabled: \"true\"
      mig-devices: {1g.10gb: 1}
  second:
    - devices: [0, 0]
      mig-enabled: false
      mig-devices: {bogus: 1}
      colour: blue
  third:
    - mig-enabled: true
bonus: 1
";
    let errs = errors(src);
    let got: Vec<_> = errs.iter().map(|e| (e.pos.line, e.pos.column)).collect();
    assert_eq!(
        got,
        [
            (1, 10),
            (4, 16),
            (5, 20),
            (8, 20),
            (10, 21),
            (11, 7),
            (13, 7),
            (13, 7),
            (14, 1)
        ],
        "{errs:#?}"
    );
    let text: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        text[0].starts_with("1:10: unsupported version"),
        "{}",
        text[0]
    );
    assert!(text[6].contains("`devices`") || text[7].contains("`devices`"));
    assert!(text[6].contains("`mig-devices`") || text[7].contains("`mig-devices`"));
    assert!(text[8].contains("unknown field `bonus`"));
}

#[test]
fn display_and_error_trait() {
    let errs = errors("version: v1\n");
    let e: &dyn std::error::Error = &errs[0];
    assert_eq!(e.to_string(), "1:1: missing required field `mig-configs`");
}
