//! Resolution of our own mig-parted v1 fixture files (`tests/configs/*.yaml`) against a
//! mixed host: config selection, device filters (single, list, subsystem-qualified),
//! index lists, last-match-wins, untouched GPUs, GPUs without MIG, per-model profile names,
//! `+me` and compute-instance sub-slicing, and the located errors for layouts a model
//! cannot hold.

use std::path::Path;

use migfleet_mig::catalog::{NVIDIA_VENDOR_ID, ProfileKind};
use migfleet_mig::layout::validate;
use migfleet_mig::spec::v1::{Config, NamedConfig, Pos, SpecError, parse};
use migfleet_mig::spec::{GpuTarget, HostGpu, ResolvedGpu, resolve, select};
use migfleet_mig::{find_model, model_by_pci};

const FLEET: &str = include_str!("../configs/fleet.yaml");
const SINGLE: &str = include_str!("../configs/single.yaml");
const PROFILE_NOT_ON_MODEL: &str = include_str!("../configs/profile-not-on-model.yaml");
const COUNT_ABOVE_MAX: &str = include_str!("../configs/count-above-max.yaml");
const UNPLACEABLE: &str = include_str!("../configs/unplaceable.yaml");
const NO_MIG_GPU: &str = include_str!("../configs/no-mig-gpu.yaml");
const MALFORMED: &str = include_str!("../configs/malformed.yaml");

/// PCI device id of a GPU without MIG (a T4); the catalog must not know it.
const NO_MIG_DEVICE: u16 = 0x1eb8;

fn parsed(src: &str) -> Config {
    match parse(src) {
        Ok(c) => c,
        Err(errs) => panic!("fixture does not parse: {errs:#?}"),
    }
}

fn named<'c>(config: &'c Config, name: &str) -> &'c NamedConfig {
    match select(config, Some(name)) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    }
}

/// A MIG GPU whose PCI device id is entry `variant` of the model's `pci` list, with the
/// model looked up by that id as the agent does.
fn gpu(index: u32, model: &str, variant: usize, subsystem: Option<(u16, u16)>) -> HostGpu {
    let m = match find_model(model) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    };
    let device_id = m.pci[variant].device_id;
    let by_pci = model_by_pci(device_id);
    assert_eq!(by_pci.map(|b| b.name), Some(m.name), "0x{device_id:04x}");
    HostGpu {
        index,
        device_id,
        vendor_id: NVIDIA_VENDOR_ID,
        subsystem,
        model: by_pci,
    }
}

fn no_mig_gpu(index: u32) -> HostGpu {
    let model = model_by_pci(NO_MIG_DEVICE);
    assert!(model.is_none());
    HostGpu {
        index,
        device_id: NO_MIG_DEVICE,
        vendor_id: NVIDIA_VENDOR_ID,
        subsystem: Some((0x12a2, 0x10de)),
        model,
    }
}

/// The host the fixtures are written for (see the head of `fleet.yaml`).
fn host() -> Vec<HostGpu> {
    vec![
        gpu(0, "A100-40GB", 0, Some((0x134f, 0x10de))),
        gpu(1, "A100-40GB", 1, Some((0x145f, 0x10de))),
        gpu(2, "H100-80GB", 0, Some((0x16c0, 0x10de))),
        gpu(3, "H100-80GB", 0, Some((0x16c1, 0x10de))),
        no_mig_gpu(4),
    ]
}

fn resolved(named: &NamedConfig, gpus: &[HostGpu]) -> Vec<ResolvedGpu> {
    match resolve(named, gpus) {
        Ok(r) => r,
        Err(errs) => panic!("`{}` does not resolve: {errs:#?}", named.name.value),
    }
}

fn resolve_errors(named: &NamedConfig, gpus: &[HostGpu]) -> Vec<String> {
    match resolve(named, gpus) {
        Ok(r) => panic!("`{}` resolved, expected errors: {r:#?}", named.name.value),
        Err(errs) => errs.iter().map(SpecError::to_string).collect(),
    }
}

/// One line per GPU: `index: untouched | disabled | enabled [instances...]`. For enabled
/// GPUs also checks that the instance strings are the placed layout's and that the layout
/// is valid on the GPU's model.
fn summary(out: &[ResolvedGpu], gpus: &[HostGpu]) -> Vec<String> {
    assert_eq!(out.len(), gpus.len(), "one outcome per GPU");
    out.iter()
        .zip(gpus)
        .map(|(r, g)| {
            assert_eq!(r.index, g.index);
            assert_eq!(r.model, g.model.map(|m| m.name));
            match &r.target {
                GpuTarget::Untouched => format!("{}: untouched", r.index),
                GpuTarget::Disabled => format!("{}: disabled", r.index),
                GpuTarget::Enabled { layout, instances } => {
                    let model = g.model.expect("enabled GPU has a model");
                    let shown: Vec<String> = layout.iter().map(|p| p.display(model)).collect();
                    assert_eq!(&shown, instances);
                    if let Err(e) = validate(model, layout) {
                        panic!("GPU {}: invalid layout: {e}", r.index);
                    }
                    format!("{}: enabled [{}]", r.index, instances.join(" "))
                }
            }
        })
        .collect()
}

fn entries(out: &[ResolvedGpu]) -> Vec<Option<Pos>> {
    out.iter().map(|r| r.entry).collect()
}

fn at(line: u32, column: u32) -> Option<Pos> {
    Some(Pos::new(line, column))
}

#[test]
fn every_fixture_parses_except_the_malformed_one() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(&path).unwrap();
        assert!(src.starts_with("# migfleet test fixture:"), "{name}");
        match (name.as_str(), parse(&src)) {
            ("malformed.yaml", Ok(_)) => panic!("malformed.yaml parsed"),
            ("malformed.yaml", Err(_)) | (_, Ok(_)) => {}
            (_, Err(errs)) => panic!("{name}: {errs:#?}"),
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "count-above-max.yaml",
            "fleet.yaml",
            "malformed.yaml",
            "no-mig-gpu.yaml",
            "profile-not-on-model.yaml",
            "single.yaml",
            "unplaceable.yaml",
        ]
    );
}

#[test]
fn host_ids_are_the_ones_the_fixture_filters_name() {
    // fleet.yaml filters on 0x20B010DE, 0x20F110DE and 0x233010DE[:0x16C{0,1}10DE].
    let ids: Vec<(u16, Option<(u16, u16)>)> =
        host().iter().map(|g| (g.device_id, g.subsystem)).collect();
    assert_eq!(
        ids,
        [
            (0x20b0, Some((0x134f, 0x10de))),
            (0x20f1, Some((0x145f, 0x10de))),
            (0x2330, Some((0x16c0, 0x10de))),
            (0x2330, Some((0x16c1, 0x10de))),
            (NO_MIG_DEVICE, Some((0x12a2, 0x10de))),
        ]
    );
}

#[test]
fn select_by_name_needs_a_name_for_several_configs() {
    let fleet = parsed(FLEET);
    let names: Vec<&str> = fleet
        .configs
        .iter()
        .map(|c| c.name.value.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "all-off",
            "all-on-empty",
            "balanced-per-model",
            "four-1g.10gb",
            "h100-inference",
            "h100-ci-mix",
            "by-board",
            "layered",
        ]
    );
    let layered = select(&fleet, Some("layered")).unwrap();
    assert_eq!(layered.name.value, "layered");
    assert_eq!(layered.name.pos, Pos::new(71, 3));

    // Unknown name: reported at `version`'s value (4:10), listing the configs there are.
    let err = select(&fleet, Some("all-balanced")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "4:10: no config named `all-balanced` in `mig-configs`; configs there: all-off, \
         all-on-empty, balanced-per-model, four-1g.10gb, h100-inference, h100-ci-mix, \
         by-board, layered"
    );

    // No name with several configs: an error, never a silent pick of the first.
    let err = select(&fleet, None).unwrap_err();
    assert_eq!(err.pos, Pos::new(4, 10));
    assert!(
        err.message
            .starts_with("the file holds several configs; choose one of: all-off, all-on-empty,"),
        "{err}"
    );
    assert!(err.message.ends_with("by-board, layered"), "{err}");
}

#[test]
fn single_config_is_selected_without_a_name() {
    let single = parsed(SINGLE);
    let named = select(&single, None).unwrap();
    assert_eq!(named.name.value, "whole-gpus");
    assert_eq!(
        select(&single, Some("whole-gpus")).unwrap().name.pos,
        Pos::new(4, 3)
    );
    // `devices: [0, 1]` without a filter: only those two indices; the flow-style
    // `mig-devices: {7g.40gb: 1}` is read like the block style.
    let gpus = host();
    let out = resolved(named, &gpus);
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: enabled [7g.40gb@0]",
            "1: enabled [7g.40gb@0]",
            "2: untouched",
            "3: untouched",
            "4: untouched",
        ]
    );
}

#[test]
fn all_off_disables_mig_gpus_and_leaves_the_one_without_mig() {
    let fleet = parsed(FLEET);
    let gpus = host();
    let out = resolved(named(&fleet, "all-off"), &gpus);
    // mig-parted skips GPUs that cannot do MIG when the entry says `mig-enabled: false`:
    // there is nothing to switch off on GPU 4.
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: disabled",
            "1: disabled",
            "2: disabled",
            "3: disabled",
            "4: untouched",
        ]
    );
    assert_eq!(entries(&out), [at(7, 7); 5]);
}

#[test]
fn all_on_empty_enables_mig_with_no_instances() {
    let fleet = parsed(FLEET);
    let gpus = host();
    let out = resolved(named(&fleet, "all-on-empty"), &gpus);
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: enabled []",
            "1: enabled []",
            "2: enabled []",
            "3: enabled []",
            // `devices: all` skips the GPU without MIG instead of failing.
            "4: untouched",
        ]
    );
    for r in &out[..4] {
        assert!(
            matches!(&r.target, GpuTarget::Enabled { layout, instances } if layout.is_empty() && instances.is_empty())
        );
    }
}

#[test]
fn balanced_layout_per_model_is_chosen_by_device_filter() {
    let fleet = parsed(FLEET);
    let gpus = host();
    let out = resolved(named(&fleet, "balanced-per-model"), &gpus);
    // 3g + 2g + 1g + 1g fills all 8 memory slices. A 1g can never start at slice 7, so a
    // 3g at 0 would leave 4..7 for 2g@4 + 1g@6 and no room for the second 1g: the 3g must
    // sit at 4. The remaining 0..3 take 2g@0 and the two 1g at 2 and 3 (every complete
    // placement is equally flexible, so the lowest starts win). Instances come out in the
    // order the profiles are written.
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: enabled [2g.10gb@0 1g.5gb@2 1g.5gb@3 3g.20gb@4]",
            "1: enabled [2g.10gb@0 1g.5gb@2 1g.5gb@3 3g.20gb@4]",
            "2: enabled [2g.20gb@0 1g.10gb@2 1g.10gb@3 3g.40gb@4]",
            "3: enabled [2g.20gb@0 1g.10gb@2 1g.10gb@3 3g.40gb@4]",
            "4: untouched",
        ]
    );
    // The list filter (SXM4 and PCIe ids) picked the first entry for both A100s, the
    // single-string filter the second for both H100s; no entry matches GPU 4.
    assert_eq!(
        entries(&out),
        [at(17, 7), at(17, 7), at(24, 7), at(24, 7), None]
    );
}

#[test]
fn one_name_means_a_different_profile_on_each_model() {
    let fleet = parsed(FLEET);
    let gpus = host();
    let out = resolved(named(&fleet, "four-1g.10gb"), &gpus);
    // On A100-40GB `1g.10gb` is the double-memory 1g (2 memory slices, starts 0/2/4/6):
    // four of them take the whole GPU. On H100-80GB it is the plain 1g (1 memory slice):
    // four are packed at 0..3 so that slices 4..7 still hold a 3g.40gb.
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: enabled [1g.10gb@0 1g.10gb@2 1g.10gb@4 1g.10gb@6]",
            "1: enabled [1g.10gb@0 1g.10gb@2 1g.10gb@4 1g.10gb@6]",
            "2: enabled [1g.10gb@0 1g.10gb@1 1g.10gb@2 1g.10gb@3]",
            "3: enabled [1g.10gb@0 1g.10gb@1 1g.10gb@2 1g.10gb@3]",
            "4: untouched",
        ]
    );
    for (r, g) in out.iter().zip(&gpus) {
        let (GpuTarget::Enabled { layout, .. }, Some(model)) = (&r.target, g.model) else {
            continue;
        };
        for p in layout {
            let profile = model.profile(p.profile);
            let (kind, slices) = if model.name == "A100-40GB" {
                (ProfileKind::DoubleMemory, 2)
            } else {
                (ProfileKind::Plain, 1)
            };
            assert_eq!((profile.kind, profile.memory_slices), (kind, slices));
        }
    }
}

#[test]
fn media_extensions_and_compute_instances_share_one_gpu() {
    let fleet = parsed(FLEET);
    let gpus = host();
    let out = resolved(named(&fleet, "h100-inference"), &gpus);
    // Three `1c.3g.40gb` are three compute instances in ONE 3g GPU instance, as mig-parted
    // creates them. 3g (4 memory slices) + 2g + 1g+me + 1g use all 8 memory and 7 compute
    // slices; the 3g must go to 4 (see the balanced layout), 2g@0, and of the two 1g the
    // plain one (earlier in the catalog) takes 2, the `+me` one 3.
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: untouched",
            "1: untouched",
            "2: enabled [2g.20gb@0 1g.10gb@2 1g.10gb+me@3 3g.40gb@4[1c,1c,1c]]",
            "3: enabled [2g.20gb@0 1g.10gb@2 1g.10gb+me@3 3g.40gb@4[1c,1c,1c]]",
            "4: untouched",
        ]
    );
    let (GpuTarget::Enabled { layout, .. }, Some(model)) = (&out[2].target, gpus[2].model) else {
        panic!("GPU 2 not enabled");
    };
    assert_eq!(
        model.profile(layout[2].profile).kind,
        ProfileKind::MediaExtensions
    );
    assert_eq!(layout[3].cis, [1, 1, 1]);
}

#[test]
fn compute_instances_of_several_sizes_fill_gpu_instances_first_fit() {
    let fleet = parsed(FLEET);
    let gpus = host();
    let out = resolved(named(&fleet, "h100-ci-mix"), &gpus);
    // One 2c and four 1c of 3g.40gb: the 2c opens a GI and a 1c completes it ([2c,1c]);
    // the other three 1c fill a second GI. Two GIs, not five. The two GIs differ, so the
    // placer puts the smaller-sorting [1c,1c,1c] first, at 0.
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: untouched",
            "1: untouched",
            "2: enabled [3g.40gb@0[1c,1c,1c] 3g.40gb@4[2c,1c]]",
            "3: enabled [3g.40gb@0[1c,1c,1c] 3g.40gb@4[2c,1c]]",
            "4: untouched",
        ]
    );
}

#[test]
fn subsystem_qualifier_tells_boards_of_one_model_apart() {
    let fleet = parsed(FLEET);
    let by_board = named(&fleet, "by-board");
    let gpus = host();
    let out = resolved(by_board, &gpus);
    // GPU 3 (subsystem 0x16C1) takes the first entry; GPU 2 (0x16C0) the qualified item of
    // the second entry's list; GPU 1 the unqualified PCIe id there; GPU 0 (SXM4) nothing.
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: untouched",
            "1: disabled",
            "2: disabled",
            "3: enabled [7g.80gb@0]",
            "4: untouched",
        ]
    );
    assert_eq!(entries(&out), [None, at(66, 7), at(66, 7), at(61, 7), None]);

    // A GPU whose subsystem is unknown matches no qualified filter.
    let unknown = [gpu(3, "H100-80GB", 0, None)];
    let out = resolved(by_board, &unknown);
    assert_eq!(summary(&out, &unknown), ["3: untouched"]);
    // Nor does one with the right subsystem device id from another subsystem vendor.
    let other_vendor = [gpu(3, "H100-80GB", 0, Some((0x16c1, 0x103c)))];
    let out = resolved(by_board, &other_vendor);
    assert_eq!(summary(&out, &other_vendor), ["3: untouched"]);
}

#[test]
fn the_last_matching_entry_wins() {
    let fleet = parsed(FLEET);
    let gpus = host();
    let out = resolved(named(&fleet, "layered"), &gpus);
    // Entry 1 (72:7) turns MIG off on all four MIG GPUs; entry 2 (75:7) turns it on, empty,
    // on GPUs 1 and 3; entry 3 (78:7) gives GPU 3 a 4g. GPU 4 has an unknown PCI id and is
    // not in either index list: no entry matches it.
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: disabled",
            "1: enabled []",
            "2: disabled",
            "3: enabled [4g.40gb@0]",
            "4: untouched",
        ]
    );
    assert_eq!(
        entries(&out),
        [at(72, 7), at(75, 7), at(72, 7), at(78, 7), None]
    );
}

#[test]
fn profile_missing_on_the_model_names_gpu_model_and_key_position() {
    let cfg = parsed(PROFILE_NOT_ON_MODEL);
    let gpus = host();
    // GPU 0 (A100-40GB) has both 1g.10gb and 1g.5gb; only GPU 2 fails, at the key.
    assert_eq!(
        resolve_errors(named(&cfg, "small"), &gpus),
        [
            "10:9: GPU 2 (H100-80GB): profile `1g.5gb` does not exist on H100-80GB; \
          profiles there: 1g.10gb, 1g.10gb+me, 1g.20gb, 2g.20gb, 3g.40gb, 4g.40gb, 7g.80gb"
        ]
    );
    // A compute-instance size the GI cannot hold lists the GI's compute-instance profiles.
    assert_eq!(
        resolve_errors(named(&cfg, "bad-ci"), &gpus),
        [
            "17:9: GPU 2 (H100-80GB): profile `5c.7g.80gb` does not exist on H100-80GB; \
             profiles there: 1c.7g.80gb, 2c.7g.80gb, 3c.7g.80gb, 4c.7g.80gb, 7g.80gb",
            "17:9: GPU 3 (H100-80GB): profile `5c.7g.80gb` does not exist on H100-80GB; \
             profiles there: 1c.7g.80gb, 2c.7g.80gb, 3c.7g.80gb, 4c.7g.80gb, 7g.80gb",
        ]
    );
}

#[test]
fn count_above_the_maximum_points_at_the_count() {
    let cfg = parsed(COUNT_ABOVE_MAX);
    let gpus = host();
    // Five 1g.10gb fit an H100-80GB (max 7) but not an A100-40GB (max 4 double-memory).
    assert_eq!(
        resolve_errors(named(&cfg, "five-1g.10gb"), &gpus),
        [
            "9:18: GPU 0 (A100-40GB): 5 instances of 1g.10gb asked, at most 4 fit",
            "9:18: GPU 1 (A100-40GB): 5 instances of 1g.10gb asked, at most 4 fit",
        ]
    );
    // Without the A100s the same config resolves. The fifth 1g goes to 6, not 4: slices
    // 4 and 5 stay free together, where a 2g.20gb can still start.
    let h100s = &gpus[2..4];
    let out = resolved(named(&cfg, "five-1g.10gb"), h100s);
    assert_eq!(
        summary(&out, h100s),
        [
            "2: enabled [1g.10gb@0 1g.10gb@1 1g.10gb@2 1g.10gb@3 1g.10gb@6]",
            "3: enabled [1g.10gb@0 1g.10gb@1 1g.10gb@2 1g.10gb@3 1g.10gb@6]",
        ]
    );
    // Sub-sliced: seven 1c need ceil(7 / 3) = 3 GIs of 3g.40gb.
    assert_eq!(
        resolve_errors(named(&cfg, "seven-1c"), &gpus),
        ["16:21: GPU 3 (H100-80GB): 3 instances of 3g.40gb asked, at most 2 fit"]
    );
}

#[test]
fn layout_that_cannot_be_placed_points_at_mig_devices() {
    let cfg = parsed(UNPLACEABLE);
    let gpus = host();
    assert_eq!(
        resolve_errors(named(&cfg, "over-compute"), &gpus),
        [
            "9:7: GPU 2 (H100-80GB): the layout cannot be placed: 4g.40gb + 3g.40gb + 1g.10gb \
             cannot be placed together on H100-80GB",
            "9:7: GPU 3 (H100-80GB): the layout cannot be placed: 4g.40gb + 3g.40gb + 1g.10gb \
             cannot be placed together on H100-80GB",
        ]
    );
    assert_eq!(
        resolve_errors(named(&cfg, "over-memory"), &gpus),
        [
            "18:7: GPU 2 (H100-80GB): the layout cannot be placed: 3g.40gb + 3g.40gb + 1g.10gb \
          cannot be placed together on H100-80GB"
        ]
    );
}

#[test]
fn gpu_without_mig_fails_when_named_and_is_skipped_otherwise() {
    let cfg = parsed(NO_MIG_GPU);
    let gpus = host();
    // Named by index with MIG on: an error at the `devices` list; GPU 0 alone would be fine.
    assert_eq!(
        resolve_errors(named(&cfg, "explicit"), &gpus),
        ["5:16: GPU 4 (PCI device 0x1eb8) does not support MIG"]
    );
    // `devices: all`: skipped, while the entry still applies to every MIG GPU.
    let out = resolved(named(&cfg, "everything"), &gpus);
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: enabled []",
            "1: enabled []",
            "2: enabled [7g.80gb@0]",
            "3: enabled [7g.80gb@0]",
            "4: untouched",
        ]
    );
    assert_eq!(
        entries(&out),
        [at(9, 7), at(9, 7), at(12, 7), at(12, 7), at(9, 7)]
    );
    // Named by index with MIG off: nothing to do, as in mig-parted, and no error.
    let out = resolved(named(&cfg, "explicit-off"), &gpus);
    assert_eq!(
        summary(&out, &gpus),
        [
            "0: untouched",
            "1: untouched",
            "2: untouched",
            "3: untouched",
            "4: untouched",
        ]
    );
    assert_eq!(entries(&out), [None, None, None, None, at(18, 7)]);
}

#[test]
fn malformed_file_reports_every_error_with_its_position() {
    let errs: Vec<String> = match parse(MALFORMED) {
        Ok(c) => panic!("parsed: {c:?}"),
        Err(e) => e.iter().map(SpecError::to_string).collect(),
    };
    let want = [
        ("6:37: ", "device filter `0x20B0` is a PCI device id alone"),
        (
            "7:20: ",
            "expected a boolean (true or false), found quoted string `true`",
        ),
        ("9:9: ", "invalid MIG profile name `1g.5GB`"),
        (
            "10:18: ",
            "found integer `01` (leading zeros are not allowed)",
        ),
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for (e, (pos, needle)) in errs.iter().zip(want) {
        assert!(e.starts_with(pos) && e.contains(needle), "{e}");
    }
}
