//! Name syntax: MIG profile names (`1g.10gb`, `1g.10gb+me`, `1c.3g.40gb`) and the
//! forgiving normalisation of GPU model names. Pure string work; which names exist on
//! which model is the catalog's business.

/// A MIG profile name split into its parts. Only syntax is checked here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileName {
    /// `C` of a `Cc.Gg.NNgb` compute-instance name; `None` for a plain `Gg.NNgb`.
    pub ci_slices: Option<u8>,
    pub gi_slices: u8,
    pub memory_gb: u32,
    /// `+me`, `+me.all`, `+gfx` or `-me`, as written (lower case).
    pub attribute: Option<String>,
}

const ATTRIBUTES: [&str; 4] = ["+me.all", "+me", "+gfx", "-me"];

impl ProfileName {
    /// Parses a profile name. Accepts the `mig-` and `nvidia.com/mig-` prefixes of
    /// device-plugin resource names, and any letter case.
    pub fn parse(name: &str) -> Result<ProfileName, String> {
        let lower = name.trim().to_ascii_lowercase();
        let mut s = lower.as_str();
        s = s.strip_prefix("nvidia.com/").unwrap_or(s);
        s = s.strip_prefix("mig-").unwrap_or(s);
        let mut attribute = None;
        for a in ATTRIBUTES {
            if let Some(rest) = s.strip_suffix(a) {
                attribute = Some(a.to_string());
                s = rest;
                break;
            }
        }
        let parts: Vec<&str> = s.split('.').collect();
        let (ci, g, mem) = match parts.as_slice() {
            [g, mem] => (None, *g, *mem),
            [c, g, mem] => (Some(*c), *g, *mem),
            _ => return Err("expected `<G>g.<N>gb` or `<C>c.<G>g.<N>gb`".to_string()),
        };
        let num = |part: &str, suffix: &str, what: &str| -> Result<u32, String> {
            part.strip_suffix(suffix)
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{part}` is not a {what} (like `{}`)", example(suffix)))
        };
        let gi_slices = small(num(g, "g", "slice count")?)?;
        let memory_gb = num(mem, "gb", "memory size")?;
        let ci_slices = match ci {
            Some(c) => Some(small(num(c, "c", "compute slice count")?)?),
            None => None,
        };
        if let Some(c) = ci_slices
            && c > gi_slices
        {
            return Err(format!(
                "a compute instance of {c} slices cannot be larger than its {gi_slices}-slice GPU instance"
            ));
        }
        Ok(ProfileName {
            ci_slices,
            gi_slices,
            memory_gb,
            attribute,
        })
    }

    /// The GPU-instance part of the name, e.g. `3g.40gb` for `1c.3g.40gb`.
    pub fn gi_name(&self) -> String {
        format!(
            "{}g.{}gb{}",
            self.gi_slices,
            self.memory_gb,
            self.attribute.as_deref().unwrap_or("")
        )
    }
}

impl std::fmt::Display for ProfileName {
    /// The canonical spelling: `1c.3g.40gb`, `1g.10gb+me`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(c) = self.ci_slices {
            write!(f, "{c}c.")?;
        }
        f.write_str(&self.gi_name())
    }
}

fn example(suffix: &str) -> &'static str {
    match suffix {
        "g" => "3g",
        "c" => "1c",
        _ => "40gb",
    }
}

fn small(n: u32) -> Result<u8, String> {
    u8::try_from(n)
        .ok()
        .filter(|n| *n <= 8)
        .ok_or_else(|| format!("{n} slices is more than any GPU has"))
}

/// Tokens dropped when comparing model names: vendor, form factor and memory technology
/// say nothing about the MIG geometry.
const NOISE: [&str; 10] = [
    "nvidia", "sxm", "sxm4", "sxm5", "sxm6", "pcie", "hbm2", "hbm2e", "hbm3", "hbm3e",
];

/// Normalises a GPU model name for comparison: lower case, `-` between words, without
/// `NVIDIA`, form factor (`SXM4`, `PCIe`) and memory technology (`HBM3`), and without the
/// `-MIG-<profile>` suffix GPU Feature Discovery adds under the single strategy. So
/// `NVIDIA A100-SXM4-40GB`, `NVIDIA-A100-40GB-PCIe` and `a100-40gb` all become `a100-40gb`.
pub fn normalize_model_name(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase().replace([' ', '_'], "-");
    let mut out: Vec<&str> = Vec::new();
    for token in lower.split('-').filter(|t| !t.is_empty()) {
        if token == "mig" {
            break;
        }
        if !NOISE.contains(&token) {
            out.push(token);
        }
    }
    out.join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_me_and_ci_forms() {
        let p = ProfileName::parse("1g.10gb").unwrap();
        assert_eq!((p.ci_slices, p.gi_slices, p.memory_gb), (None, 1, 10));
        let p = ProfileName::parse("1g.10gb+me").unwrap();
        assert_eq!(p.attribute.as_deref(), Some("+me"));
        assert_eq!(p.gi_name(), "1g.10gb+me");
        let p = ProfileName::parse("1c.3g.40gb").unwrap();
        assert_eq!((p.ci_slices, p.gi_name().as_str()), (Some(1), "3g.40gb"));
        let p = ProfileName::parse("nvidia.com/mig-2g.20gb").unwrap();
        assert_eq!(p.gi_name(), "2g.20gb");
        assert_eq!(ProfileName::parse("1G.5GB").unwrap().gi_name(), "1g.5gb");
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "1g",
            "g.5gb",
            "0g.5gb",
            "1g.gb",
            "4c.3g.20gb",
            "1x.2g.3gb",
            "99g.1gb",
        ] {
            assert!(ProfileName::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn normalizes_model_names() {
        for (raw, want) in [
            ("NVIDIA A100-SXM4-40GB", "a100-40gb"),
            ("NVIDIA-A100-40GB-PCIe", "a100-40gb"),
            ("A100-PCIE-40GB", "a100-40gb"),
            ("NVIDIA-H100-80GB-HBM3", "h100-80gb"),
            ("NVIDIA H100 PCIe", "h100"),
            ("NVIDIA-A100-SXM4-80GB-MIG-1g.10gb", "a100-80gb"),
            ("NVIDIA GH200 144G HBM3e", "gh200-144g"),
        ] {
            assert_eq!(normalize_model_name(raw), want, "{raw}");
        }
    }
}
