//! The model and GPU-instance profile data, transcribed from the MIG reference tables
//! (`mig-facts.md` §2). Values marked `assumed` have no capture and are proportional guesses.

use super::{Generation, GiProfile, Model};

/// NVML GI index constants.
const IDX_1: u32 = 0x0;
const IDX_2: u32 = 0x1;
const IDX_3: u32 = 0x2;
const IDX_4: u32 = 0x3;
const IDX_7: u32 = 0x4;
const IDX_1_REV1: u32 = 0x7;
const IDX_2_REV1: u32 = 0x8;
const IDX_1_REV2: u32 = 0x9;
const IDX_1_GFX: u32 = 0xA;
const IDX_2_GFX: u32 = 0xB;
const IDX_4_GFX: u32 = 0xC;
const IDX_1_NO_ME: u32 = 0xD;
const IDX_2_NO_ME: u32 = 0xE;
const IDX_1_ALL_ME: u32 = 0xF;
const IDX_2_ALL_ME: u32 = 0x10;

const STARTS_1G: &[u32] = &[0, 1, 2, 3, 4, 5, 6];
const STARTS_1G_REV2: &[u32] = &[0, 2, 4, 6];
const STARTS_2G: &[u32] = &[0, 2, 4];
const STARTS_3G: &[u32] = &[0, 4];
const STARTS_0: &[u32] = &[0];
const A30_STARTS_1G: &[u32] = &[0, 1, 2, 3];
const A30_STARTS_2G: &[u32] = &[0, 2];

/// Engine counts per profile, in the order 1g, 1g+me, 1g-rev2, 2g, 3g, 4g, 7g.
struct Engines {
    ce: [u32; 7],
    dec: [u32; 7],
    jpeg: [u32; 7],
    ofa: [u32; 7],
}

const AMPERE_ENGINES: Engines = Engines {
    ce: [1, 1, 1, 2, 3, 4, 7],
    dec: [0, 1, 1, 1, 2, 2, 5],
    jpeg: [0, 1, 0, 0, 0, 0, 1],
    ofa: [0, 1, 0, 0, 0, 0, 1],
};
const HOPPER_ENGINES: Engines = Engines {
    ce: [1, 1, 1, 2, 3, 4, 8],
    dec: [1, 1, 1, 2, 3, 4, 7],
    jpeg: [1, 1, 1, 2, 3, 4, 7],
    ofa: [0, 1, 0, 0, 0, 0, 1],
};
// B200 2g: 2 decoders and 2 JPEG engines (public `-lgip` captures); the other sizes are
// not captured and stay at one.
const BLACKWELL_ENGINES: Engines = Engines {
    ce: [2, 2, 2, 4, 6, 8, 16],
    dec: [1, 1, 1, 2, 1, 1, 1],
    jpeg: [1, 1, 1, 2, 1, 1, 1],
    ofa: [0, 1, 0, 0, 0, 0, 1],
};

/// (index, id, compute slices, memory slices, max instances, starts, `+me`).
type Shape = (u32, u32, u32, u32, u32, &'static [u32], bool);

/// The seven profiles of an 8-memory-slice / 7-compute-slice GPU.
/// `names`, `mem` (MiB) and `sms` are in the order 1g, 1g+me, 1g-rev2, 2g, 3g, 4g, 7g.
const fn seven_slice(
    names: [&'static str; 7],
    mem: [u64; 7],
    sms: [u32; 7],
    e: Engines,
) -> [GiProfile; 7] {
    // (index, id, slices, mem slices, max, starts, +me)
    const SHAPE: [Shape; 7] = [
        (IDX_1, 19, 1, 1, 7, STARTS_1G, false),
        (IDX_1_REV1, 20, 1, 1, 1, STARTS_1G, true),
        (IDX_1_REV2, 15, 1, 2, 4, STARTS_1G_REV2, false),
        (IDX_2, 14, 2, 2, 3, STARTS_2G, false),
        (IDX_3, 9, 3, 4, 2, STARTS_3G, false),
        (IDX_4, 5, 4, 4, 1, STARTS_0, false),
        (IDX_7, 0, 7, 8, 1, STARTS_0, false),
    ];
    let mut out = [GiProfile {
        index: 0,
        id: 0,
        name: "",
        slices: 0,
        mem_slices: 0,
        instance_count: 0,
        memory_mib: 0,
        sms: 0,
        copy_engines: 0,
        decoders: 0,
        encoders: 0,
        jpegs: 0,
        ofas: 0,
        starts: STARTS_0,
        media_extensions: false,
        min_driver: None,
    }; 7];
    let mut i = 0;
    while i < 7 {
        let (index, id, slices, mem_slices, instance_count, starts, media_extensions) = SHAPE[i];
        out[i] = GiProfile {
            index,
            id,
            name: names[i],
            slices,
            mem_slices,
            instance_count,
            memory_mib: mem[i],
            sms: sms[i],
            copy_engines: e.ce[i],
            decoders: e.dec[i],
            encoders: 0,
            jpegs: e.jpeg[i],
            ofas: e.ofa[i],
            starts,
            media_extensions,
            min_driver: None,
        };
        i += 1;
    }
    out
}

/// The MIG guide's per-profile driver floors on A100: the `+me` 1g from R470, the
/// double-memory 1g from R525 (entries 1 and 2 of [`seven_slice`]'s order).
const fn with_a100_floors(mut p: [GiProfile; 7]) -> [GiProfile; 7] {
    p[1].min_driver = Some("470");
    p[2].min_driver = Some("525");
    p
}

const AMPERE_SMS: [u32; 7] = [14, 14, 14, 28, 42, 56, 98];
const HOPPER_SMS: [u32; 7] = [16, 16, 26, 32, 60, 64, 132];

static A100_40GB: [GiProfile; 7] = with_a100_floors(seven_slice(
    [
        "1g.5gb",
        "1g.5gb+me",
        "1g.10gb",
        "2g.10gb",
        "3g.20gb",
        "4g.20gb",
        "7g.40gb",
    ],
    [4864, 4864, 9856, 9856, 19968, 19968, 40192],
    AMPERE_SMS,
    AMPERE_ENGINES,
));

static A100_80GB: [GiProfile; 7] = with_a100_floors(seven_slice(
    [
        "1g.10gb",
        "1g.10gb+me",
        "1g.20gb",
        "2g.20gb",
        "3g.40gb",
        "4g.40gb",
        "7g.80gb",
    ],
    // 1g.20gb (REV2) memory: no capture; 19968 from the go-nvml mock (assumed).
    [9728, 9728, 19968, 19968, 40192, 40192, 80896],
    AMPERE_SMS,
    AMPERE_ENGINES,
));

static H100_80GB: [GiProfile; 7] = seven_slice(
    [
        "1g.10gb",
        "1g.10gb+me",
        "1g.20gb",
        "2g.20gb",
        "3g.40gb",
        "4g.40gb",
        "7g.80gb",
    ],
    [9984, 9984, 20096, 20096, 40448, 40448, 81152],
    HOPPER_SMS,
    HOPPER_ENGINES,
);

static H100_NVL: [GiProfile; 7] = seven_slice(
    [
        "1g.12gb",
        "1g.12gb+me",
        "1g.24gb",
        "2g.24gb",
        "3g.47gb",
        "4g.47gb",
        "7g.94gb",
    ],
    [11008, 11008, 22144, 22144, 47488, 47488, 95360],
    HOPPER_SMS,
    HOPPER_ENGINES,
);

static H100_96GB: [GiProfile; 7] = seven_slice(
    [
        "1g.12gb",
        "1g.12gb+me",
        "1g.24gb",
        "2g.24gb",
        "3g.48gb",
        "4g.48gb",
        "7g.96gb",
    ],
    // assumed: no capture for the 96 GB H100 on GH200; proportional to H100 NVL.
    [11264, 11264, 22784, 22784, 48128, 48128, 97024],
    // assumed: SMs as H100 80GB.
    HOPPER_SMS,
    HOPPER_ENGINES,
);

static H200_141GB: [GiProfile; 7] = seven_slice(
    [
        "1g.18gb",
        "1g.18gb+me",
        "1g.35gb",
        "2g.35gb",
        "3g.71gb",
        "4g.71gb",
        "7g.141gb",
    ],
    [16384, 16384, 33024, 33024, 71168, 71168, 143104],
    HOPPER_SMS,
    HOPPER_ENGINES,
);

static GH200_144GB: [GiProfile; 7] = seven_slice(
    [
        "1g.18gb",
        "1g.18gb+me",
        "1g.36gb",
        "2g.36gb",
        "3g.72gb",
        "4g.72gb",
        "7g.144gb",
    ],
    // 3g/4g/7g memory assumed (no capture), proportional to the captured 1g/2g rows.
    [17920, 17920, 36096, 36096, 72704, 72704, 145920],
    // 3g/4g/7g SMs assumed equal to H100.
    HOPPER_SMS,
    HOPPER_ENGINES,
);

static B200_180GB: [GiProfile; 7] = seven_slice(
    [
        "1g.23gb",
        "1g.23gb+me",
        "1g.45gb",
        "2g.45gb",
        "3g.90gb",
        "4g.90gb",
        "7g.180gb",
    ],
    // 1g: a later R570 capture (20992; an early one showed 22528); 3g/4g/7g assumed (no capture), proportional.
    [20992, 20992, 45312, 45312, 90624, 90624, 181760],
    // 1g/2g captured. 3g/4g/7g assumed (no capture) from Hopper's shape rather than from
    // the go-nvml mock, whose 18 SMs × slices rule Hopper's captures contradict (H100 3g
    // has 60 SMs, not 3 × 16): 3g = 2g × 60/32 rounded to a whole TPC (68), 4g = 2 × 2g
    // (72), 7g = the B200's 148 SMs.
    [18, 18, 30, 36, 68, 72, 148],
    BLACKWELL_ENGINES,
);

static A30: [GiProfile; 5] = [
    GiProfile {
        index: IDX_1,
        id: 14,
        name: "1g.6gb",
        slices: 1,
        mem_slices: 1,
        instance_count: 4,
        memory_mib: 5952,
        sms: 14,
        copy_engines: 1,
        decoders: 0,
        encoders: 0,
        jpegs: 0,
        ofas: 0,
        starts: A30_STARTS_1G,
        media_extensions: false,
        min_driver: None,
    },
    GiProfile {
        index: IDX_1_REV1,
        id: 21,
        name: "1g.6gb+me",
        // MIG guide: from R470.
        slices: 1,
        mem_slices: 1,
        instance_count: 1,
        memory_mib: 5952,
        sms: 14,
        copy_engines: 1,
        decoders: 1,
        encoders: 0,
        jpegs: 1,
        ofas: 1,
        starts: A30_STARTS_1G,
        media_extensions: true,
        min_driver: Some("470"),
    },
    GiProfile {
        index: IDX_2,
        id: 5,
        name: "2g.12gb",
        slices: 2,
        mem_slices: 2,
        instance_count: 2,
        memory_mib: 11968,
        sms: 28,
        copy_engines: 2,
        decoders: 2,
        encoders: 0,
        jpegs: 0,
        ofas: 0,
        starts: A30_STARTS_2G,
        media_extensions: false,
        min_driver: None,
    },
    GiProfile {
        index: IDX_2_REV1,
        id: 6,
        name: "2g.12gb+me",
        // MIG guide: from R525.
        slices: 2,
        mem_slices: 2,
        instance_count: 1,
        memory_mib: 11968,
        sms: 28,
        copy_engines: 2,
        decoders: 2,
        encoders: 0,
        jpegs: 1,
        ofas: 1,
        starts: A30_STARTS_2G,
        media_extensions: true,
        min_driver: Some("525"),
    },
    GiProfile {
        index: IDX_4,
        id: 0,
        name: "4g.24gb",
        slices: 4,
        mem_slices: 4,
        instance_count: 1,
        memory_mib: 24000,
        sms: 56,
        copy_engines: 4,
        decoders: 4,
        encoders: 0,
        jpegs: 1,
        ofas: 1,
        starts: STARTS_0,
        media_extensions: false,
        min_driver: None,
    },
];

static GB200_186GB: [GiProfile; 7] = seven_slice(
    [
        "1g.23gb",
        "1g.23gb+me",
        "1g.47gb",
        "2g.47gb",
        "3g.93gb",
        "4g.93gb",
        "7g.186gb",
    ],
    // 1g/2g rows: NVIDIA/mig-parted#227 (22.00 and 45.50 GiB, 18/32/38 SMs); the rest
    // assumed, proportional.
    [22528, 22528, 46592, 46592, 93184, 93184, 186368],
    [18, 18, 32, 38, 56, 76, 148],
    BLACKWELL_ENGINES,
);

// B300 and GB300: names from their published profile lists; sizes and SMs assumed
// (about 269 and 278 GiB usable, split as on B200).
static B300_288GB: [GiProfile; 7] = seven_slice(
    [
        "1g.34gb",
        "1g.34gb+me",
        "1g.67gb",
        "2g.67gb",
        "3g.135gb",
        "4g.135gb",
        "7g.269gb",
    ],
    [33792, 33792, 68608, 68608, 137728, 137728, 275456],
    [18, 18, 30, 36, 54, 72, 148],
    BLACKWELL_ENGINES,
);

static GB300_288GB: [GiProfile; 7] = seven_slice(
    [
        "1g.35gb",
        "1g.35gb+me",
        "1g.70gb",
        "2g.70gb",
        "3g.139gb",
        "4g.139gb",
        "7g.278gb",
    ],
    [35072, 35072, 71168, 71168, 142336, 142336, 284672],
    [18, 18, 30, 36, 54, 72, 148],
    BLACKWELL_ENGINES,
);

/// Placement starts of the RTX PRO GPUs, in units of a third of a slice (the RTX PRO
/// 6000's `-lgipp`: 1g {0,3,6,9}:3, 2g {0,6}:6, 4g {0}:12).
const RTX4_STARTS_1G: &[u32] = &[0, 3, 6, 9];
const RTX4_STARTS_2G: &[u32] = &[0, 6];
const RTX2_STARTS_1G: &[u32] = &[0, 3];

/// One RTX PRO profile: `slices` of a GPU with `total` slices; `mib` and `sms` per
/// slice (assumed: no capture gives them). `media` = (decoders, encoders, JPEG, OFA).
#[allow(clippy::too_many_arguments)]
const fn rtx(
    total: u32,
    index: u32,
    id: u32,
    name: &'static str,
    slices: u32,
    mib: u64,
    sms: u32,
    media: (u32, u32, u32, u32),
) -> GiProfile {
    let takes_media = index == IDX_1_REV1 || index == IDX_1_ALL_ME || index == IDX_2_ALL_ME;
    let starts = match (total, slices) {
        (4, 1) => RTX4_STARTS_1G,
        (4, 2) => RTX4_STARTS_2G,
        (2, 1) => RTX2_STARTS_1G,
        _ => STARTS_0,
    };
    GiProfile {
        index,
        id,
        name,
        slices,
        mem_slices: 3 * slices,
        instance_count: if takes_media { 1 } else { total / slices },
        memory_mib: mib * slices as u64,
        sms: sms * slices,
        copy_engines: slices,
        decoders: media.0,
        encoders: media.1,
        jpegs: media.2,
        ofas: media.3,
        starts,
        media_extensions: takes_media,
        min_driver: None,
    }
}

// Profile ids: a public RTX PRO 6000 `-lgip` capture (14, 21, 47, 67, 65; 5, 35, 66, 64);
// the 4g ids are placeholders (not captured). Engines per kind are assumed: plain and
// +gfx a share, -me none, +me one more OFA, +me.all every engine.
static RTX_PRO_6000: [GiProfile; 11] = [
    rtx(4, IDX_1, 14, "1g.24gb", 1, 24064, 46, (1, 1, 1, 0)),
    rtx(4, IDX_1_REV1, 21, "1g.24gb+me", 1, 24064, 46, (1, 1, 1, 1)),
    rtx(4, IDX_1_GFX, 47, "1g.24gb+gfx", 1, 24064, 46, (1, 1, 1, 0)),
    rtx(4, IDX_1_NO_ME, 67, "1g.24gb-me", 1, 24064, 46, (0, 0, 0, 0)),
    rtx(
        4,
        IDX_1_ALL_ME,
        65,
        "1g.24gb+me.all",
        1,
        24064,
        46,
        (4, 4, 4, 1),
    ),
    rtx(4, IDX_2, 5, "2g.48gb", 2, 24064, 46, (2, 2, 2, 0)),
    rtx(4, IDX_2_GFX, 35, "2g.48gb+gfx", 2, 24064, 46, (2, 2, 2, 0)),
    rtx(4, IDX_2_NO_ME, 66, "2g.48gb-me", 2, 24064, 46, (0, 0, 0, 0)),
    rtx(
        4,
        IDX_2_ALL_ME,
        64,
        "2g.48gb+me.all",
        2,
        24064,
        46,
        (4, 4, 4, 1),
    ),
    rtx(4, IDX_4, 0, "4g.96gb", 4, 24064, 46, (4, 4, 4, 1)),
    rtx(4, IDX_4_GFX, 32, "4g.96gb+gfx", 4, 24064, 46, (4, 4, 4, 1)),
];

static RTX_PRO_5000: [GiProfile; 7] = [
    rtx(2, IDX_1, 14, "1g.24gb", 1, 24064, 54, (1, 1, 1, 0)),
    rtx(2, IDX_1_REV1, 21, "1g.24gb+me", 1, 24064, 54, (1, 1, 1, 1)),
    rtx(2, IDX_1_GFX, 47, "1g.24gb+gfx", 1, 24064, 54, (1, 1, 1, 0)),
    rtx(2, IDX_1_NO_ME, 67, "1g.24gb-me", 1, 24064, 54, (0, 0, 0, 0)),
    rtx(
        2,
        IDX_1_ALL_ME,
        65,
        "1g.24gb+me.all",
        1,
        24064,
        54,
        (2, 2, 2, 1),
    ),
    rtx(2, IDX_2, 5, "2g.48gb", 2, 24064, 54, (2, 2, 2, 1)),
    rtx(2, IDX_2_GFX, 35, "2g.48gb+gfx", 2, 24064, 54, (2, 2, 2, 1)),
];

static RTX_PRO_4500: [GiProfile; 7] = [
    rtx(2, IDX_1, 14, "1g.16gb", 1, 16000, 40, (1, 1, 1, 0)),
    rtx(2, IDX_1_REV1, 21, "1g.16gb+me", 1, 16000, 40, (1, 1, 1, 1)),
    rtx(2, IDX_1_GFX, 47, "1g.16gb+gfx", 1, 16000, 40, (1, 1, 1, 0)),
    rtx(2, IDX_1_NO_ME, 67, "1g.16gb-me", 1, 16000, 40, (0, 0, 0, 0)),
    rtx(
        2,
        IDX_1_ALL_ME,
        65,
        "1g.16gb+me.all",
        1,
        16000,
        40,
        (2, 2, 2, 1),
    ),
    rtx(2, IDX_2, 5, "2g.32gb", 2, 16000, 40, (2, 2, 2, 1)),
    rtx(2, IDX_2_GFX, 35, "2g.32gb+gfx", 2, 16000, 40, (2, 2, 2, 1)),
];

/// Every model the simulator knows.
pub static MODELS: &[Model] = &[
    Model {
        key: "A30-24GB",
        name: "NVIDIA A30",
        pci_device: 0x20B7,
        pci_subsystem: 0x1532_10DE,
        memory_mib: 24576,
        generation: Generation::Ampere,
        mem_slices: 4,
        compute_slices: 4,
        profiles: &A30,
    },
    Model {
        key: "A100-40GB",
        name: "NVIDIA A100-SXM4-40GB",
        pci_device: 0x20B0,
        pci_subsystem: 0x134F_10DE,
        memory_mib: 40960,
        generation: Generation::Ampere,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &A100_40GB,
    },
    Model {
        key: "A100-80GB",
        name: "NVIDIA A100-SXM4-80GB",
        pci_device: 0x20B2,
        pci_subsystem: 0x1463_10DE,
        memory_mib: 81920,
        generation: Generation::Ampere,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &A100_80GB,
    },
    Model {
        key: "H100-80GB",
        name: "NVIDIA H100 80GB HBM3",
        pci_device: 0x2330,
        pci_subsystem: 0x16C1_10DE,
        memory_mib: 81559,
        generation: Generation::Hopper,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &H100_80GB,
    },
    Model {
        key: "H100-NVL-94GB",
        name: "NVIDIA H100 NVL",
        pci_device: 0x2321,
        pci_subsystem: 0x1839_10DE,
        memory_mib: 95830,
        generation: Generation::Hopper,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &H100_NVL,
    },
    Model {
        key: "H100-96GB",
        name: "NVIDIA GH200 480GB",
        pci_device: 0x2342,
        pci_subsystem: 0x16EB_10DE,
        memory_mib: 97871,
        generation: Generation::Hopper,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &H100_96GB,
    },
    // The 96 GB profile table also serves the H20 (a later driver floor) and the
    // PG506-232, an Ampere board (mode changes wait for a reset).
    Model {
        key: "H20-96GB",
        name: "NVIDIA H20",
        pci_device: 0x2329,
        pci_subsystem: 0x198B_10DE,
        memory_mib: 97871,
        generation: Generation::Hopper,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &H100_96GB,
    },
    Model {
        key: "PG506-96GB",
        name: "NVIDIA PG506-232",
        pci_device: 0x20B6,
        pci_subsystem: 0x1492_10DE,
        memory_mib: 97871,
        generation: Generation::Ampere,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &H100_96GB,
    },
    Model {
        key: "H200-141GB",
        name: "NVIDIA H200",
        pci_device: 0x2335,
        pci_subsystem: 0x18BE_10DE,
        memory_mib: 143771,
        generation: Generation::Hopper,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &H200_141GB,
    },
    Model {
        key: "GH200-144GB",
        name: "NVIDIA GH200 144G HBM3e",
        pci_device: 0x2348,
        pci_subsystem: 0x18B1_10DE,
        // assumed: total not captured.
        memory_mib: 146831,
        generation: Generation::Hopper,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &GH200_144GB,
    },
    Model {
        key: "B200-180GB",
        name: "NVIDIA B200",
        pci_device: 0x2901,
        pci_subsystem: 0x1999_10DE,
        memory_mib: 183359,
        generation: Generation::Blackwell,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &B200_180GB,
    },
    Model {
        key: "GB200-186GB",
        name: "NVIDIA GB200",
        pci_device: 0x2941,
        pci_subsystem: 0x2046_10DE,
        memory_mib: 189471,
        generation: Generation::Blackwell,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &GB200_186GB,
    },
    Model {
        key: "B300-288GB",
        name: "NVIDIA B300 SXM6 AC",
        pci_device: 0x3182,
        pci_subsystem: 0x20E6_10DE,
        memory_mib: 275040,
        generation: Generation::Blackwell,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &B300_288GB,
    },
    Model {
        key: "GB300-288GB",
        name: "NVIDIA GB300",
        pci_device: 0x31C2,
        pci_subsystem: 0x21B6_10DE,
        memory_mib: 284208,
        generation: Generation::Blackwell,
        mem_slices: 8,
        compute_slices: 7,
        profiles: &GB300_288GB,
    },
    Model {
        key: "RTX-PRO-6000-96GB",
        name: "NVIDIA RTX PRO 6000 Blackwell Server Edition",
        pci_device: 0x2BB5,
        pci_subsystem: 0x204E_10DE,
        memory_mib: 97887,
        generation: Generation::Blackwell,
        mem_slices: 12,
        compute_slices: 4,
        profiles: &RTX_PRO_6000,
    },
    Model {
        key: "RTX-PRO-5000-48GB",
        name: "NVIDIA RTX PRO 5000 Blackwell",
        pci_device: 0x2BB3,
        pci_subsystem: 0x204D_10DE,
        memory_mib: 48935,
        generation: Generation::Blackwell,
        mem_slices: 6,
        compute_slices: 2,
        profiles: &RTX_PRO_5000,
    },
    Model {
        key: "RTX-PRO-4500-32GB",
        name: "NVIDIA RTX PRO 4500 Blackwell",
        pci_device: 0x2C31,
        pci_subsystem: 0x2051_10DE,
        memory_mib: 32607,
        generation: Generation::Blackwell,
        mem_slices: 6,
        compute_slices: 2,
        profiles: &RTX_PRO_4500,
    },
    Model {
        key: "L4",
        name: "NVIDIA L4",
        pci_device: 0x27B8,
        pci_subsystem: 0x16CA_10DE,
        memory_mib: 23034,
        generation: Generation::Ada,
        mem_slices: 0,
        compute_slices: 0,
        profiles: &[],
    },
];
