//! Hopper models: H100-80GB, H100 NVL 94GB, H100-96GB (GH200 96GB), H20-96GB, H200-141GB,
//! GH200-144GB (mig-facts §2.4); and PG506-96GB, an Ampere board that shares the 96 GB
//! profile table.

use super::{Fact, Generation, GiConst::*, GpuModel, PciDevice, Source, seven_slice};

type F = Fact<u32>;

pub static H100_80GB: GpuModel = GpuModel {
    name: "H100-80GB",
    generation: Generation::Hopper,
    pci: &[
        PciDevice {
            device_id: 0x2330,
            variant: "H100-SXM5-80GB (H100 80GB HBM3)",
        },
        PciDevice {
            device_id: 0x2331,
            variant: "H100-PCIe-80GB",
        },
        PciDevice {
            device_id: 0x2322,
            variant: "H800-PCIe-80GB",
        },
        PciDevice {
            device_id: 0x2324,
            variant: "H800-80GB",
        },
    ],
    aliases: &["h100", "h100-80gb", "h800", "h800-80gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R525.85.12",
    profiles: &[
        seven_slice(
            "1g.10gb",
            Slice1,
            F::measured(19),
            F::measured(9984),
            F::measured(16),
            Source::Measured,
        )
        // 9856 MiB on R525 drivers, 9984 on later ones (captures); where between R525
        // and R535 it moved is not known, R535 is assumed.
        .memory_by_driver(&[("R525.85.12", 9856), ("R535", 9984)]),
        seven_slice(
            "1g.10gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(9984),
            F::measured(16),
            Source::Measured,
        )
        // 9856 MiB on R525 drivers, 9984 on later ones (captures); where between R525
        // and R535 it moved is not known, R535 is assumed.
        .memory_by_driver(&[("R525.85.12", 9856), ("R535", 9984)]),
        seven_slice(
            "1g.20gb",
            Slice1Rev2,
            F::measured(15),
            F::measured(20096),
            F::measured(26),
            Source::Measured,
        ),
        seven_slice(
            "2g.20gb",
            Slice2,
            F::measured(14),
            F::measured(20096),
            F::measured(32),
            Source::Measured,
        ),
        seven_slice(
            "3g.40gb",
            Slice3,
            F::measured(9),
            F::measured(40448),
            F::measured(60),
            Source::Measured,
        ),
        seven_slice(
            "4g.40gb",
            Slice4,
            F::measured(5),
            F::measured(40448),
            F::measured(64),
            Source::Measured,
        ),
        seven_slice(
            "7g.80gb",
            Slice7,
            F::measured(0),
            F::measured(81152),
            F::measured(132),
            Source::Measured,
        ),
    ],
};

pub static H100_NVL_94GB: GpuModel = GpuModel {
    name: "H100-NVL-94GB",
    generation: Generation::Hopper,
    pci: &[
        PciDevice {
            device_id: 0x2321,
            variant: "H100 NVL",
        },
        PciDevice {
            device_id: 0x233a,
            variant: "H800 NVL",
        },
        // The MIG guide lists an H100-SXM5 94GB with the NVL's profile names and counts;
        // its PCI id is from pci.ids. Sizes assumed equal to the NVL's.
        PciDevice {
            device_id: 0x2339,
            variant: "H100-SXM5-94GB",
        },
    ],
    aliases: &[
        "h100-nvl",
        "h100-94gb",
        "h100-nvl-94gb",
        "h800-nvl",
        "h100-sxm5-94gb",
    ],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R525.85.12",
    profiles: &[
        seven_slice(
            "1g.12gb",
            Slice1,
            F::measured(19),
            F::measured(11008),
            F::measured(16),
            Source::Measured,
        ),
        seven_slice(
            "1g.12gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(11008),
            F::measured(16),
            Source::Measured,
        ),
        seven_slice(
            "1g.24gb",
            Slice1Rev2,
            F::measured(15),
            F::measured(22144),
            F::measured(26),
            Source::Measured,
        ),
        seven_slice(
            "2g.24gb",
            Slice2,
            F::measured(14),
            F::measured(22144),
            F::measured(32),
            Source::Measured,
        ),
        seven_slice(
            "3g.47gb",
            Slice3,
            F::measured(9),
            F::measured(47488),
            F::measured(60),
            Source::Measured,
        ),
        seven_slice(
            "4g.47gb",
            Slice4,
            F::measured(5),
            F::measured(47488),
            F::measured(64),
            Source::Measured,
        ),
        seven_slice(
            "7g.94gb",
            Slice7,
            F::measured(0),
            F::measured(95360),
            F::measured(132),
            Source::Measured,
        ),
    ],
};

/// H100 96GB boards, among them the GPU of GH200 480GB. No capture was found: names and
/// counts are the guide's, ids and placements assumed from H100-80GB, sizes unknown.
pub static H100_96GB: GpuModel = GpuModel {
    name: "H100-96GB",
    generation: Generation::Hopper,
    pci: &[
        PciDevice {
            device_id: 0x2342,
            variant: "GH200 480GB (H100 96GB)",
        },
        PciDevice {
            device_id: 0x233d,
            variant: "H100-96GB",
        },
    ],
    aliases: &["h100-96gb", "gh200-96gb", "gh200-480gb", "gh200"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R525.85.12",
    profiles: &HOPPER_96GB_PROFILES,
};

/// The 96 GB GPU-instance profiles mig-parted's `config-default.yaml` gives the device
/// group 0x2342 / 0x233D / 0x20B6 / 0x2329 (mig-facts §2.4): shared by the models below.
static HOPPER_96GB_PROFILES: [super::GiProfile; 7] = [
    seven_slice(
        "1g.12gb",
        Slice1,
        F::assumed(19),
        F::unknown(),
        F::unknown(),
        Source::Assumed,
    ),
    seven_slice(
        "1g.12gb+me",
        Slice1Rev1,
        F::assumed(20),
        F::unknown(),
        F::unknown(),
        Source::Assumed,
    ),
    seven_slice(
        "1g.24gb",
        Slice1Rev2,
        F::assumed(15),
        F::unknown(),
        F::unknown(),
        Source::Assumed,
    ),
    seven_slice(
        "2g.24gb",
        Slice2,
        F::assumed(14),
        F::unknown(),
        F::unknown(),
        Source::Assumed,
    ),
    seven_slice(
        "3g.48gb",
        Slice3,
        F::assumed(9),
        F::unknown(),
        F::unknown(),
        Source::Assumed,
    ),
    seven_slice(
        "4g.48gb",
        Slice4,
        F::assumed(5),
        F::unknown(),
        F::unknown(),
        Source::Assumed,
    ),
    seven_slice(
        "7g.96gb",
        Slice7,
        F::assumed(0),
        F::unknown(),
        F::unknown(),
        Source::Assumed,
    ),
];

/// H20: the 96 GB profile table, but its own model because its driver floor is later
/// (R535.161.07, MIG guide "Deployment Considerations") than the H100's.
pub static H20_96GB: GpuModel = GpuModel {
    name: "H20-96GB",
    generation: Generation::Hopper,
    pci: &[PciDevice {
        device_id: 0x2329,
        variant: "H20",
    }],
    aliases: &["h20", "h20-96gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R535.161.07",
    profiles: &HOPPER_96GB_PROFILES,
};

/// PG506-232 (0x20B6): a GA100 (Ampere) board in pci.ids, which mig-parted configures
/// with the 96 GB profile table. Ampere rules apply: a mode change waits for a GPU reset
/// and survives reboots. Its minimum driver is assumed to be the 96 GB group's.
pub static PG506_96GB: GpuModel = GpuModel {
    name: "PG506-96GB",
    generation: Generation::Ampere,
    pci: &[PciDevice {
        device_id: 0x20b6,
        variant: "PG506-232",
    }],
    aliases: &["pg506", "pg506-96gb", "pg506-232"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R525.85.12",
    profiles: &HOPPER_96GB_PROFILES,
};

/// H200 SXM and NVL. Ids, sizes and SMs from an 8-GPU `-lgip` capture; placements were
/// not captured and are assumed from H100.
pub static H200_141GB: GpuModel = GpuModel {
    name: "H200-141GB",
    generation: Generation::Hopper,
    pci: &[
        PciDevice {
            device_id: 0x2335,
            variant: "H200 SXM 141GB",
        },
        PciDevice {
            device_id: 0x233b,
            variant: "H200 NVL",
        },
    ],
    aliases: &["h200", "h200-141gb", "h200-nvl", "h200-nvl-141gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R550.90.07",
    profiles: &[
        seven_slice(
            "1g.18gb",
            Slice1,
            F::measured(19),
            F::measured(16384),
            F::measured(16),
            Source::Assumed,
        ),
        seven_slice(
            "1g.18gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(16384),
            F::measured(16),
            Source::Assumed,
        ),
        seven_slice(
            "1g.35gb",
            Slice1Rev2,
            F::measured(15),
            F::measured(33024),
            F::measured(26),
            Source::Assumed,
        ),
        seven_slice(
            "2g.35gb",
            Slice2,
            F::measured(14),
            F::measured(33024),
            F::measured(32),
            Source::Assumed,
        ),
        seven_slice(
            "3g.71gb",
            Slice3,
            F::measured(9),
            F::measured(71168),
            F::measured(60),
            Source::Assumed,
        ),
        seven_slice(
            "4g.71gb",
            Slice4,
            F::measured(5),
            F::measured(71168),
            F::measured(64),
            Source::Assumed,
        ),
        seven_slice(
            "7g.141gb",
            Slice7,
            F::measured(0),
            F::measured(143104),
            F::measured(132),
            Source::Assumed,
        ),
    ],
};

/// GH200 144G HBM3e. The capture shows the 1-slice and 2-slice rows only.
pub static GH200_144GB: GpuModel = GpuModel {
    name: "GH200-144GB",
    generation: Generation::Hopper,
    pci: &[PciDevice {
        device_id: 0x2348,
        variant: "GH200 144G HBM3e",
    }],
    aliases: &["gh200-144g", "gh200-144gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R550.90.07",
    profiles: &[
        seven_slice(
            "1g.18gb",
            Slice1,
            F::measured(19),
            F::measured(17920),
            F::measured(16),
            Source::Assumed,
        ),
        seven_slice(
            "1g.18gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(17920),
            F::measured(16),
            Source::Assumed,
        ),
        seven_slice(
            "1g.36gb",
            Slice1Rev2,
            F::measured(15),
            F::measured(36096),
            F::measured(26),
            Source::Assumed,
        ),
        seven_slice(
            "2g.36gb",
            Slice2,
            F::measured(14),
            F::measured(36096),
            F::measured(32),
            Source::Assumed,
        ),
        seven_slice(
            "3g.72gb",
            Slice3,
            F::assumed(9),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        seven_slice(
            "4g.72gb",
            Slice4,
            F::assumed(5),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
        seven_slice(
            "7g.144gb",
            Slice7,
            F::assumed(0),
            F::unknown(),
            F::unknown(),
            Source::Assumed,
        ),
    ],
};
