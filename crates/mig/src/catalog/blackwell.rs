//! Blackwell models: B200-180GB, GB200-186GB, B300-288GB, GB300-288GB and the RTX PRO
//! Blackwell family (mig-facts §2.4, the MIG guide, public captures named per model).

use super::{
    Fact, Generation, GiConst::*, GiProfile, GpuModel, PciDevice, Source, rtx_pro, seven_slice,
    unmeasured_seven_slice,
};

type F = Fact<u32>;

/// B200. Captures show only the first four `-lgip` rows; the 1g size differs by driver
/// (22528 MiB on an early R570, 20992 MiB later; the later one is kept). Placements were
/// not captured and are assumed from H100.
pub static B200_180GB: GpuModel = GpuModel {
    name: "B200-180GB",
    generation: Generation::Blackwell,
    pci: &[PciDevice {
        device_id: 0x2901,
        variant: "B200",
    }],
    aliases: &["b200", "b200-180gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R570.133.20",
    profiles: &[
        seven_slice(
            "1g.23gb",
            Slice1,
            F::measured(19),
            F::measured(20992),
            F::measured(18),
            Source::Assumed,
        )
        // 22528 MiB on the first R570 capture, 20992 on a later driver; the driver
        // where it moved is not known, R575 is assumed.
        .memory_by_driver(&[("R570.133.20", 22528), ("R575", 20992)]),
        seven_slice(
            "1g.23gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(20992),
            F::measured(18),
            Source::Assumed,
        )
        // 22528 MiB on the first R570 capture, 20992 on a later driver; the driver
        // where it moved is not known, R575 is assumed.
        .memory_by_driver(&[("R570.133.20", 22528), ("R575", 20992)]),
        seven_slice(
            "1g.45gb",
            Slice1Rev2,
            F::measured(15),
            F::measured(45312),
            F::measured(30),
            Source::Assumed,
        ),
        seven_slice(
            "2g.45gb",
            Slice2,
            F::measured(14),
            F::measured(45312),
            F::measured(36),
            Source::Assumed,
        ),
        seven_slice(
            "3g.90gb",
            Slice3,
            F::assumed(9),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        seven_slice(
            "4g.90gb",
            Slice4,
            F::assumed(5),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        seven_slice(
            "7g.180gb",
            Slice7,
            F::assumed(0),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
    ],
};

/// GB200 (HGX/NVL). NVIDIA/mig-parted#227 captured the first four `-lgip` rows on driver
/// R570 (1g.23gb 22.00 GiB, 18 SMs; 1g.47gb and 2g.47gb 45.50 GiB, 32 and 38 SMs); other
/// SKUs and drivers name the plain 1g `1g.24gb` (20.00 GiB, NVIDIA/gpu-operator#1303), so
/// both names resolve to it. The 3g/4g/7g names are mig-parted's shipped config; their
/// sizes are not captured. That config also ships `3g.95gb`, `4g.95gb` and `7g.189gb`,
/// which no other GPU has: they are taken (assumed) as the `1g.24gb` SKU's names for the
/// same profiles. Placements are assumed from H100.
pub static GB200_186GB: GpuModel = GpuModel {
    name: "GB200-186GB",
    generation: Generation::Blackwell,
    pci: &[PciDevice {
        device_id: 0x2941,
        variant: "GB200",
    }],
    aliases: &["gb200", "gb200-186gb", "gb200-nvl", "gb200-hgx"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R570.133.20",
    profiles: &[
        seven_slice(
            "1g.23gb",
            Slice1,
            F::measured(19),
            F::measured(22528),
            F::measured(18),
            Source::Assumed,
        )
        .also_named(&["1g.24gb"]),
        seven_slice(
            "1g.23gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(22528),
            F::measured(18),
            Source::Assumed,
        )
        .also_named(&["1g.24gb+me"]),
        seven_slice(
            "1g.47gb",
            Slice1Rev2,
            F::measured(15),
            F::measured(46592),
            F::measured(32),
            Source::Assumed,
        ),
        seven_slice(
            "2g.47gb",
            Slice2,
            F::measured(14),
            F::measured(46592),
            F::measured(38),
            Source::Assumed,
        ),
        seven_slice(
            "3g.93gb",
            Slice3,
            F::assumed(9),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        )
        .also_named(&["3g.95gb"]),
        seven_slice(
            "4g.93gb",
            Slice4,
            F::assumed(5),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        )
        .also_named(&["4g.95gb"]),
        seven_slice(
            "7g.186gb",
            Slice7,
            F::assumed(0),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        )
        .also_named(&["7g.189gb"]),
    ],
};

static B300_PROFILES: [GiProfile; 7] = unmeasured_seven_slice([
    "1g.34gb",
    "1g.34gb+me",
    "1g.67gb",
    "2g.67gb",
    "3g.135gb",
    "4g.135gb",
    "7g.269gb",
]);

/// B300 (HGX, 288 GB, about 269 GiB usable). Names and counts as cloud providers document
/// them for the GPU Operator's `0x318210DE` config (1g.34gb ×7, 1g.67gb ×4, 2g.67gb ×3,
/// 3g.135gb ×2, 4g.135gb ×1, 7g.269gb ×1); the `+me` 1g is assumed as on every 7-slice
/// GPU. No `-lgip` capture: ids and placements are assumed from H100, sizes unknown.
pub static B300_288GB: GpuModel = GpuModel {
    name: "B300-288GB",
    generation: Generation::Blackwell,
    pci: &[PciDevice {
        device_id: 0x3182,
        variant: "B300",
    }],
    aliases: &["b300", "b300-288gb", "b300-ac"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R580.82.07",
    profiles: &B300_PROFILES,
};

static GB300_PROFILES: [GiProfile; 7] = unmeasured_seven_slice([
    "1g.35gb",
    "1g.35gb+me",
    "1g.70gb",
    "2g.70gb",
    "3g.139gb",
    "4g.139gb",
    "7g.278gb",
]);

/// GB300 (Grace Blackwell Ultra; DGX Station). Its plain 1-slice profile is `1g.35gb`
/// (the same name as H200's double-memory 1g, which is why names resolve per model). The
/// other names are assumed from that size the way the B300's follow from 1g.34gb; the
/// driver's own names win on a host. Minimum driver R595.58.03 (MIG guide).
pub static GB300_288GB: GpuModel = GpuModel {
    name: "GB300-288GB",
    generation: Generation::Blackwell,
    pci: &[PciDevice {
        device_id: 0x31c2,
        variant: "GB300",
    }],
    aliases: &["gb300", "gb300-288gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R595.58.03",
    profiles: &GB300_PROFILES,
};

/// RTX PRO 6000 Blackwell, Server (0x2BB5), Workstation (0x2BB1) and Max-Q (0x2BB4)
/// editions: 4 slices of 24 GB, 4 instances at most (MIG guide). Profile ids are a public
/// `-lgip` capture (bigstack-oss/cubecos#312): 1g 14, +me 21, +gfx 47, +me.all 65, -me 67;
/// 2g 5, +gfx 35, +me.all 64, -me 66. The 4g ids were not in the capture: 0 (as on the
/// A30) and 32 are placeholders the host's own table replaces. Counts are mig-parted's shipped config
/// (`all-1g.24gb.gfx` 4, `all-2g.48gb-me` 2, `all-4g.96gb.gfx` 1 ...). Placements: 1g at
/// {0,3,6,9} size 3, 2g at {0,6} size 6, 4g at {0} size 12 (the `-lgipp` capture the
/// issue quotes); the other kinds are assumed to place as their plain size. Memory and
/// SMs are not captured.
pub static RTX_PRO_6000_96GB: GpuModel = GpuModel {
    name: "RTX-PRO-6000-96GB",
    generation: Generation::Blackwell,
    pci: &[
        PciDevice {
            device_id: 0x2bb5,
            variant: "RTX PRO 6000 Blackwell Server Edition",
        },
        PciDevice {
            device_id: 0x2bb1,
            variant: "RTX PRO 6000 Blackwell Workstation Edition",
        },
        PciDevice {
            device_id: 0x2bb4,
            variant: "RTX PRO 6000 Blackwell Max-Q Workstation Edition",
        },
    ],
    aliases: &[
        "rtx-pro-6000",
        "rtx-pro-6000-blackwell",
        "rtx-pro-6000-blackwell-server-edition",
        "rtx-pro-6000-blackwell-workstation-edition",
        "rtx-pro-6000-blackwell-max-q-workstation-edition",
    ],
    compute_slices: 4,
    memory_slices: 4,
    placement_units: 12,
    min_driver: "R575.51.03",
    profiles: &[
        rtx_pro(
            4,
            "1g.24gb",
            Slice1,
            F::measured(14),
            F::unknown(),
            F::unknown(),
            Source::Measured,
        ),
        rtx_pro(
            4,
            "1g.24gb+me",
            Slice1Rev1,
            F::measured(21),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            4,
            "1g.24gb+gfx",
            Slice1Gfx,
            F::measured(47),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            4,
            "1g.24gb-me",
            Slice1NoMe,
            F::measured(67),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            4,
            "1g.24gb+me.all",
            Slice1AllMe,
            F::measured(65),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            4,
            "2g.48gb",
            Slice2,
            F::measured(5),
            F::unknown(),
            F::unknown(),
            Source::Measured,
        ),
        rtx_pro(
            4,
            "2g.48gb+gfx",
            Slice2Gfx,
            F::measured(35),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            4,
            "2g.48gb-me",
            Slice2NoMe,
            F::measured(66),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            4,
            "2g.48gb+me.all",
            Slice2AllMe,
            F::measured(64),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            4,
            "4g.96gb",
            Slice4,
            F::assumed(0),
            F::unknown(),
            F::unknown(),
            Source::Measured,
        ),
        rtx_pro(
            4,
            "4g.96gb+gfx",
            Slice4Gfx,
            F::assumed(32),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
    ],
};

/// RTX PRO 5000 Blackwell (48 GB, 2 instances at most, MIG guide; minimum driver
/// 575.57.08). Same die as the RTX PRO 6000: the profile kinds, ids and the three-unit
/// placement are assumed from it, names from 24 GB per slice.
pub static RTX_PRO_5000_48GB: GpuModel = GpuModel {
    name: "RTX-PRO-5000-48GB",
    generation: Generation::Blackwell,
    pci: &[PciDevice {
        device_id: 0x2bb3,
        variant: "RTX PRO 5000 Blackwell",
    }],
    aliases: &["rtx-pro-5000", "rtx-pro-5000-blackwell"],
    compute_slices: 2,
    memory_slices: 2,
    placement_units: 6,
    min_driver: "R575.57.08",
    profiles: &[
        rtx_pro(
            2,
            "1g.24gb",
            Slice1,
            F::assumed(14),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.24gb+me",
            Slice1Rev1,
            F::assumed(21),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.24gb+gfx",
            Slice1Gfx,
            F::assumed(47),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.24gb-me",
            Slice1NoMe,
            F::assumed(67),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.24gb+me.all",
            Slice1AllMe,
            F::assumed(65),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "2g.48gb",
            Slice2,
            F::assumed(5),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "2g.48gb+gfx",
            Slice2Gfx,
            F::assumed(35),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
    ],
};

/// RTX PRO 4500 Blackwell (GB203, 32 GB, 2 instances at most, MIG guide; minimum driver
/// 575.64). NVIDIA's vGPU guide names its GPU instances `1g.16gb` and `2g.32gb`; kinds,
/// ids and placement are assumed from the RTX PRO 6000.
pub static RTX_PRO_4500_32GB: GpuModel = GpuModel {
    name: "RTX-PRO-4500-32GB",
    generation: Generation::Blackwell,
    pci: &[
        PciDevice {
            device_id: 0x2c31,
            variant: "RTX PRO 4500 Blackwell",
        },
        PciDevice {
            device_id: 0x2c3a,
            variant: "RTX PRO 4500 Blackwell Server Edition",
        },
    ],
    aliases: &["rtx-pro-4500", "rtx-pro-4500-blackwell"],
    compute_slices: 2,
    memory_slices: 2,
    placement_units: 6,
    min_driver: "R575.64",
    profiles: &[
        rtx_pro(
            2,
            "1g.16gb",
            Slice1,
            F::assumed(14),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.16gb+me",
            Slice1Rev1,
            F::assumed(21),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.16gb+gfx",
            Slice1Gfx,
            F::assumed(47),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.16gb-me",
            Slice1NoMe,
            F::assumed(67),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "1g.16gb+me.all",
            Slice1AllMe,
            F::assumed(65),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "2g.32gb",
            Slice2,
            F::assumed(5),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        rtx_pro(
            2,
            "2g.32gb+gfx",
            Slice2Gfx,
            F::assumed(35),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
    ],
};
