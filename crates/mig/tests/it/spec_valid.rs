//! Decoding of well-formed mig-parted v1 files, asserting on values and positions.

use migfleet_mig::spec::v1::{DeviceFilter, Devices, Pos, parse};

fn p(line: u32, column: u32) -> Pos {
    Pos { line, column }
}

const FULL: &str = r#"# A realistic file exercising every feature.
version: v1
mig-configs:
  all-disabled:
    - devices: all
      mig-enabled: false

  all-enabled:
    - devices: all
      mig-enabled: true
      mig-devices: {}

  # A100-40GB and A100-80GB share a name but need different layouts.
  "all-1g.10gb":
    - device-filter: "0x20B010DE"
      devices: all
      mig-enabled: true
      mig-devices:
        "1g.5gb": 7
    - device-filter: ["0x20B210DE", "0x20B510DE:0x147E10DE"]
      devices: [0, 1, 3]
      mig-enabled: true
      mig-devices:
        1g.10gb+me: 1
        '1c.3g.20gb': 2
        2c.3g.20gb: 0
  mixed:
    - {devices: [2], mig-enabled: true, mig-devices: {3g.40gb: 1, 1g.10gb: 2}}
    - devices:
        - 4
        - 5
      "mig-enabled": false
      mig-devices: {}
      device-filter:
        - 0x233010de
"#;

#[test]
fn full_file_decodes() {
    let cfg = match parse(FULL) {
        Ok(c) => c,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(cfg.version.value, "v1");
    assert_eq!(cfg.version.pos, p(2, 10));
    let names: Vec<_> = cfg.configs.iter().map(|c| c.name.value.as_str()).collect();
    assert_eq!(
        names,
        ["all-disabled", "all-enabled", "all-1g.10gb", "mixed"]
    );

    let disabled = &cfg.configs[0];
    assert_eq!(disabled.name.pos, p(4, 3));
    let e = &disabled.entries[0];
    assert_eq!(e.pos, p(5, 7));
    assert_eq!(e.devices.value, Devices::All);
    assert_eq!(e.devices.pos, p(5, 16));
    assert!(!e.mig_enabled.value);
    assert!(e.mig_devices.is_empty());
    assert_eq!(e.mig_devices_pos, None);
    assert_eq!(e.device_filter, None);

    let enabled = &cfg.configs[1].entries[0];
    assert!(enabled.mig_enabled.value);
    assert!(enabled.mig_devices.is_empty());
    assert_eq!(enabled.mig_devices_pos, Some(p(11, 7)));

    let a100 = &cfg.configs[2];
    assert_eq!(a100.name.pos, p(14, 3));
    assert_eq!(a100.entries.len(), 2);
    let first = &a100.entries[0];
    let filters = first.device_filter.as_ref().unwrap();
    assert_eq!(filters.len(), 1);
    assert_eq!(
        filters[0].value,
        DeviceFilter {
            device_id: 0x20B0,
            vendor_id: 0x10DE,
            subsystem: None
        }
    );
    assert_eq!(filters[0].pos, p(15, 22));
    assert_eq!(first.mig_devices.len(), 1);
    assert_eq!(first.mig_devices[0].0.value, "1g.5gb");
    assert_eq!(first.mig_devices[0].0.pos, p(19, 9));
    assert_eq!(first.mig_devices[0].1.value, 7);
    assert_eq!(first.mig_devices[0].1.pos, p(19, 19));

    let second = &a100.entries[1];
    assert_eq!(second.devices.value, Devices::Indices(vec![0, 1, 3]));
    let filters = second.device_filter.as_ref().unwrap();
    assert_eq!(
        filters.iter().map(|f| f.value).collect::<Vec<_>>(),
        [
            DeviceFilter {
                device_id: 0x20B2,
                vendor_id: 0x10DE,
                subsystem: None
            },
            DeviceFilter {
                device_id: 0x20B5,
                vendor_id: 0x10DE,
                subsystem: Some((0x147E, 0x10DE))
            },
        ]
    );
    let profiles: Vec<_> = second
        .mig_devices
        .iter()
        .map(|(n, c)| (n.value.as_str(), c.value))
        .collect();
    assert_eq!(
        profiles,
        [("1g.10gb+me", 1), ("1c.3g.20gb", 2), ("2c.3g.20gb", 0)]
    );

    let mixed = &cfg.configs[3];
    let flow = &mixed.entries[0];
    assert_eq!(flow.pos, p(28, 7));
    assert_eq!(flow.devices.value, Devices::Indices(vec![2]));
    let profiles: Vec<_> = flow
        .mig_devices
        .iter()
        .map(|(n, c)| (n.value.as_str(), c.value))
        .collect();
    assert_eq!(profiles, [("3g.40gb", 1), ("1g.10gb", 2)]);
    let block = &mixed.entries[1];
    assert_eq!(block.devices.value, Devices::Indices(vec![4, 5]));
    assert_eq!(block.devices.pos, p(30, 9));
    assert!(!block.mig_enabled.value);
    assert_eq!(block.mig_devices_pos, Some(p(33, 7)));
    assert_eq!(
        block.device_filter.as_ref().unwrap()[0].value,
        DeviceFilter {
            device_id: 0x2330,
            vendor_id: 0x10DE,
            subsystem: None
        }
    );
}

#[test]
fn flow_style_whole_document() {
    let src = r#"{version: "v1", "mig-configs": {a: [{devices: "all", mig-enabled: true, mig-devices: {"7g.80gb": 1}}]}}"#;
    let cfg = parse(src).unwrap();
    assert_eq!(cfg.configs.len(), 1);
    let e = &cfg.configs[0].entries[0];
    assert_eq!(e.devices.value, Devices::All);
    assert_eq!(e.mig_devices[0].0.value, "7g.80gb");
    assert_eq!(e.pos, p(1, 37));
}

#[test]
fn explicit_document_markers_and_empty_device_list() {
    let src = "---\nversion: v1\nmig-configs:\n  none:\n    - devices: []\n      mig-enabled: false\n...\n";
    let cfg = parse(src).unwrap();
    assert_eq!(
        cfg.configs[0].entries[0].devices.value,
        Devices::Indices(vec![])
    );
}

#[test]
fn output_serializes() {
    // Serialize is part of the public contract; make sure it is derived on
    // the whole tree by checking it compiles for the root type.
    fn assert_serialize<T: serde::Serialize>(_: &T) {}
    let cfg = parse(FULL).unwrap();
    assert_serialize(&cfg);
}
