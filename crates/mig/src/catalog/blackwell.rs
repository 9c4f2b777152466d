//! Blackwell models: B200-180GB (mig-facts §2.4).

use super::{Fact, Generation, GiConst::*, GpuModel, PciDevice, Source, seven_slice};

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
    min_driver: "R570.133.20",
    profiles: &[
        seven_slice(
            "1g.23gb",
            Slice1,
            F::measured(19),
            F::measured(20992),
            F::measured(18),
            Source::Assumed,
        ),
        seven_slice(
            "1g.23gb+me",
            Slice1Rev1,
            F::measured(20),
            F::measured(20992),
            F::measured(18),
            Source::Assumed,
        ),
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
