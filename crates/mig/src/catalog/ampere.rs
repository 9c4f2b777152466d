//! Ampere models: A30-24GB, A100-40GB, A100-80GB (mig-facts §2.4).

use super::{Fact, Generation, GiConst::*, GpuModel, PciDevice, Source, four_slice, seven_slice};

type F = Fact<u32>;

pub static A30_24GB: GpuModel = GpuModel {
    name: "A30-24GB",
    generation: Generation::Ampere,
    pci: &[PciDevice {
        device_id: 0x20b7,
        variant: "A30",
    }],
    aliases: &["a30", "a30-24gb"],
    compute_slices: 4,
    memory_slices: 4,
    placement_units: 4,
    min_driver: "R460.73.01",
    profiles: &[
        four_slice(
            "1g.6gb",
            Slice1,
            F::measured(14),
            F::measured(5952),
            F::measured(14),
        ),
        four_slice(
            "1g.6gb+me",
            Slice1Rev1,
            F::measured(21),
            F::measured(5952),
            F::measured(14),
        )
        // The MIG guide: the 1g `+me` profile from R470 drivers.
        .since("R470"),
        four_slice(
            "2g.12gb",
            Slice2,
            F::measured(5),
            F::measured(11968),
            F::measured(28),
        ),
        four_slice(
            "2g.12gb+me",
            Slice2Rev1,
            F::measured(6),
            F::measured(11968),
            F::documented(28),
        )
        // The MIG guide: the 2g `+me` profile from R525 drivers.
        .since("R525"),
        four_slice(
            "4g.24gb",
            Slice4,
            F::measured(0),
            F::measured(24000),
            F::measured(56),
        ),
    ],
};

pub static A100_40GB: GpuModel = GpuModel {
    name: "A100-40GB",
    generation: Generation::Ampere,
    pci: &[
        PciDevice {
            device_id: 0x20b0,
            variant: "A100-SXM4-40GB",
        },
        PciDevice {
            device_id: 0x20f1,
            variant: "A100-PCIE-40GB",
        },
        PciDevice {
            device_id: 0x20b1,
            variant: "A100-40GB (other board)",
        },
        PciDevice {
            device_id: 0x20f6,
            variant: "A800-40GB",
        },
    ],
    aliases: &["a100-40gb", "a800-40gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R450.80.02",
    profiles: &[
        seven_slice(
            "1g.5gb",
            Slice1,
            F::measured(19),
            F::measured(4864),
            F::measured(14),
            Source::Measured,
        ),
        seven_slice(
            "1g.5gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(4864),
            F::measured(14),
            Source::Measured,
        )
        // The MIG guide: the 1g `+me` profile from R470 drivers.
        .since("R470"),
        seven_slice(
            "1g.10gb",
            Slice1Rev2,
            F::measured(15),
            F::measured(9856),
            F::measured(14),
            Source::Measured,
        )
        // The MIG guide: the double-memory 1g from R525 drivers.
        .since("R525"),
        seven_slice(
            "2g.10gb",
            Slice2,
            F::measured(14),
            F::measured(9856),
            F::measured(28),
            Source::Measured,
        ),
        seven_slice(
            "3g.20gb",
            Slice3,
            F::measured(9),
            F::measured(19968),
            F::measured(42),
            Source::Measured,
        ),
        seven_slice(
            "4g.20gb",
            Slice4,
            F::measured(5),
            F::measured(19968),
            F::measured(56),
            Source::Measured,
        ),
        seven_slice(
            "7g.40gb",
            Slice7,
            F::measured(0),
            F::measured(40192),
            F::measured(98),
            Source::Measured,
        ),
    ],
};

pub static A100_80GB: GpuModel = GpuModel {
    name: "A100-80GB",
    generation: Generation::Ampere,
    pci: &[
        PciDevice {
            device_id: 0x20b2,
            variant: "A100-SXM4-80GB",
        },
        PciDevice {
            device_id: 0x20b5,
            variant: "A100-PCIE-80GB",
        },
        PciDevice {
            device_id: 0x20f3,
            variant: "A800-SXM4-80GB",
        },
        PciDevice {
            device_id: 0x20f5,
            variant: "A800-80GB-PCIe",
        },
    ],
    aliases: &["a100-80gb", "a800-80gb"],
    compute_slices: 7,
    memory_slices: 8,
    placement_units: 8,
    min_driver: "R450.80.02",
    profiles: &[
        // Placements were not captured on the 80GB board; assumed equal to the 40GB one.
        seven_slice(
            "1g.10gb",
            Slice1,
            F::measured(19),
            F::measured(9728),
            F::documented(14),
            Source::Assumed,
        ),
        seven_slice(
            "1g.10gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(9728),
            F::documented(14),
            Source::Assumed,
        )
        // The MIG guide: the 1g `+me` profile from R470 drivers.
        .since("R470"),
        seven_slice(
            "1g.20gb",
            Slice1Rev2,
            F::assumed(15),
            F::unknown(),
            F::assumed(14),
            Source::Assumed,
        )
        // The MIG guide: the double-memory 1g from R525 drivers.
        .since("R525"),
        seven_slice(
            "2g.20gb",
            Slice2,
            F::measured(14),
            F::measured(19968),
            F::documented(28),
            Source::Assumed,
        ),
        seven_slice(
            "3g.40gb",
            Slice3,
            F::measured(9),
            F::measured(40192),
            F::documented(42),
            Source::Assumed,
        ),
        seven_slice(
            "4g.40gb",
            Slice4,
            F::measured(5),
            F::measured(40192),
            F::documented(56),
            Source::Assumed,
        ),
        seven_slice(
            "7g.80gb",
            Slice7,
            F::measured(0),
            F::measured(80896),
            F::documented(98),
            Source::Assumed,
        ),
    ],
};
