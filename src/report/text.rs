//! How a run reads for people, in Ansible's shape: `PLAY [..]` and `TASK [..]` banners,
//! then `ok:` / `changed:` / `skipping:` / `fatal:` per host. For each changed GPU the
//! layout before and after and the instances destroyed and created; GPUs that read the
//! same are grouped (`GPU 0-7`) so a 1,000-host run stays readable. Pure: values in, text
//! out.

use crate::fleet::{GpuResult, Status, TaskResult};

/// What the reader asked to see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// `--check`: the NVML operations each change would take (the plan).
    pub check: bool,
    /// `--diff`: every GPU's layout, changed or not.
    pub diff: bool,
    /// `-v`: the NVML operations that ran.
    pub verbose: bool,
}

/// `PLAY [name] ****...` (Ansible fills to 80 columns, at least 3 stars).
pub fn banner(kind: &str, name: &str, suffix: &str) -> String {
    let head = format!("{kind} [{name}]{suffix} ");
    let stars = 80usize.saturating_sub(head.chars().count()).max(3);
    format!("{head}{}", "*".repeat(stars))
}

/// The word Ansible starts a host's line with.
pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Changed => "changed",
        Status::Failed | Status::Unreachable => "fatal",
        Status::Skipped => "skipping",
    }
}

/// `fatal: [h]: UNREACHABLE! => why` / `fatal: [h]: FAILED! => why`, or
/// `changed: [h] => what`.
fn head(host: &str, status: Status, message: &str) -> String {
    let word = status_word(status);
    let tail = if message.is_empty() {
        String::new()
    } else {
        format!(" => {message}")
    };
    match status {
        Status::Unreachable => format!("{word}: [{host}]: UNREACHABLE!{tail}"),
        Status::Failed => format!("{word}: [{host}]: FAILED!{tail}"),
        _ => format!("{word}: [{host}]{tail}"),
    }
}

/// A host that could not start (`HostDown`).
pub fn host_down(host: &str, status: Status, message: &str, hints: &[String]) -> String {
    let mut out = indent_rest(&head(host, status, message));
    for h in hints {
        out.push_str(&format!("\n    hint: {h}"));
    }
    out
}

/// Multi-line messages (agent stderr) continue indented under their line.
fn indent_rest(text: &str) -> String {
    text.replace('\n', "\n    ")
}

/// One task's result on one host: the head line, then a line per group of GPUs that
/// read the same, then hints.
pub fn task_result(host: &str, r: &TaskResult, detail: Detail) -> String {
    let groups = gpu_groups(&r.gpus, detail);
    let mut message = r.message.clone();
    if r.attempts > 1 {
        message.push_str(&format!(" (after {} attempts)", r.attempts));
    }
    let mut lines = Vec::new();
    if groups.len() == 1 && groups[0].1.len() == 1 && r.status != Status::Failed {
        // One line says it all: put the GPUs on the head line.
        let (gpus, body) = &groups[0];
        lines.push(head(host, r.status, &format!("GPU {gpus}: {}", body[0])));
    } else {
        lines.push(indent_rest(&head(host, r.status, &message)));
        for (gpus, body) in &groups {
            lines.push(format!("    GPU {gpus}: {}", body[0]));
            for extra in &body[1..] {
                lines.push(format!("        {extra}"));
            }
        }
    }
    for h in &r.hints {
        lines.push(format!("    hint: {h}"));
    }
    lines.join("\n")
}

/// GPUs grouped by what their lines say, in index order of each group's first GPU. Only
/// GPUs worth a line are shown: changed or failed ones, the rest as one "unchanged"
/// group when some did change (or each with its layout under `--diff`).
fn gpu_groups(gpus: &[GpuResult], detail: Detail) -> Vec<(String, Vec<String>)> {
    let any_news = gpus.iter().any(|g| g.changed || g.error.is_some());
    let mut groups: Vec<(Vec<u32>, Vec<String>)> = Vec::new();
    for g in gpus {
        let body = if g.changed || g.error.is_some() || detail.diff {
            gpu_lines(g, detail)
        } else if any_news {
            vec!["unchanged".to_string()]
        } else {
            continue;
        };
        match groups.iter_mut().find(|(_, b)| *b == body) {
            Some((idx, _)) => idx.push(g.index),
            None => groups.push((vec![g.index], body)),
        }
    }
    groups
        .into_iter()
        .map(|(idx, body)| (ranges(&idx), body))
        .collect()
}

/// What one GPU's line (and the lines under it) say.
fn gpu_lines(g: &GpuResult, detail: Detail) -> Vec<String> {
    let mut parts = Vec::new();
    if let Some(m) = &g.mode {
        let on = |b: bool| if b { "on" } else { "off" };
        if m.before == m.after {
            parts.push(format!("MIG {}", on(m.after)));
        } else {
            parts.push(format!(
                "MIG {} -> {}{}",
                on(m.before),
                on(m.after),
                if m.reboot {
                    " (reboot)"
                } else if m.reset {
                    " (GPU reset)"
                } else {
                    ""
                }
            ));
        }
    }
    if let (Some(before), Some(after)) = (&g.before, &g.after) {
        if g.changed && before != after {
            let mut counts = Vec::new();
            if g.destroyed > 0 {
                counts.push(format!("{} destroyed", g.destroyed));
            }
            if g.created > 0 {
                counts.push(format!("{} created", g.created));
            }
            if counts.is_empty() {
                counts.push("compute instances changed".to_string());
            }
            parts.push(format!(
                "{} -> {} ({})",
                layout(before),
                layout(after),
                counts.join(", ")
            ));
        } else if detail.diff || g.error.is_none() {
            parts.push(layout(after));
        }
    }
    let mut first = parts.join(", ");
    if let Some(e) = &g.error {
        first = format!("FAILED: {e}");
    }
    let mut lines = vec![first];
    if detail.check || detail.verbose {
        for (i, op) in g.ops.iter().enumerate() {
            lines.push(format!("{:>2}. {op}", i + 1));
        }
    }
    lines
}

/// Instances by placement, `(none)` for an empty GPU.
pub fn layout(instances: &[String]) -> String {
    if instances.is_empty() {
        "(none)".to_string()
    } else {
        instances.join(" ")
    }
}

/// `0-3,6` for GPU indices.
pub fn ranges(idx: &[u32]) -> String {
    let mut sorted = idx.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::ModeChange;

    fn gpu(index: u32, changed: bool, before: &[&str], after: &[&str]) -> GpuResult {
        GpuResult {
            index,
            changed,
            before: Some(before.iter().map(|s| s.to_string()).collect()),
            after: Some(after.iter().map(|s| s.to_string()).collect()),
            destroyed: if changed { before.len() } else { 0 },
            created: if changed { after.len() } else { 0 },
            ..Default::default()
        }
    }

    #[test]
    fn ranges_compress_runs() {
        assert_eq!(ranges(&[0, 1, 2, 3]), "0-3");
        assert_eq!(ranges(&[0, 2, 3, 7]), "0,2-3,7");
        assert_eq!(ranges(&[5]), "5");
    }

    #[test]
    fn identical_gpus_share_a_line_and_one_group_fits_the_head_line() {
        let mut r = TaskResult::from_gpus(
            "4 GPU(s) repartitioned",
            (0..4)
                .map(|i| gpu(i, true, &["7g.80gb@0"], &["3g.40gb@0", "3g.40gb@4"]))
                .collect(),
        );
        r.status = Status::Changed;
        assert_eq!(
            task_result("h1", &r, Detail::default()),
            "changed: [h1] => GPU 0-3: 7g.80gb@0 -> 3g.40gb@0 3g.40gb@4 (1 destroyed, 2 created)"
        );
        r.gpus[2] = gpu(2, false, &["7g.80gb@0"], &["7g.80gb@0"]);
        assert_eq!(
            task_result("h1", &r, Detail::default()),
            "changed: [h1] => 4 GPU(s) repartitioned\n    GPU 0-1,3: 7g.80gb@0 -> 3g.40gb@0 3g.40gb@4 (1 destroyed, 2 created)\n    GPU 2: unchanged"
        );
    }

    #[test]
    fn failures_name_the_gpu_and_carry_hints() {
        let mut busy = gpu(1, false, &["3g.40gb@0"], &["3g.40gb@0"]);
        busy.error = Some("3g.40gb@0 (GI 1) has processes 4242".into());
        let r = TaskResult::from_gpus("mig.apply failed on GPU 1", vec![busy])
            .hint("drain the GPU first");
        assert_eq!(
            task_result("h1", &r, Detail::default()),
            "fatal: [h1]: FAILED! => mig.apply failed on GPU 1\n    GPU 1: FAILED: 3g.40gb@0 (GI 1) has processes 4242\n    hint: drain the GPU first"
        );
        let mode = GpuResult {
            index: 0,
            changed: true,
            mode: Some(ModeChange {
                before: false,
                after: true,
                reset: true,
                reboot: false,
            }),
            ..Default::default()
        };
        let r = TaskResult::from_gpus("MIG on", vec![mode]);
        assert_eq!(
            task_result("a100", &r, Detail::default()),
            "changed: [a100] => GPU 0: MIG off -> on (GPU reset)"
        );
    }

    #[test]
    fn banners_fill_to_80_columns() {
        let b = banner("TASK", "Turn MIG on", "");
        assert_eq!(b.len(), 80);
        assert!(b.starts_with("TASK [Turn MIG on] ***"));
        assert!(banner("PLAY", &"x".repeat(100), "").ends_with(" ***"));
    }
}
