//! OpenSSH-compatible known_hosts: parsing, host key verification (plain/hashed/wildcard/negated patterns, `[host]:port`, `@revoked`) and serialized accept-new recording.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

/// Result of looking a host key up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A non-revoked entry for this host carries exactly this key.
    Known,
    /// No entry for this host has a key of this type.
    Unknown,
    /// The host has keys of this type, none equal to the presented one; `line` is the first such entry.
    Changed { file: PathBuf, line: usize },
    /// The key is listed under `@revoked` for this host.
    Revoked { file: PathBuf, line: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
}

#[derive(Debug, Clone)]
enum HostSpec {
    /// Comma-separated patterns, lowercased.
    Patterns(Vec<String>),
    /// `|1|salt|hmac`
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    hosts: HostSpec,
    key: PublicKey,
    line: usize,
}

/// A known_hosts file, loaded into memory; keys recorded through [`KnownHosts::record`] are added to it too.
#[derive(Debug)]
pub struct KnownHosts {
    path: PathBuf,
    entries: RwLock<Vec<Entry>>,
    /// Lines that could not be parsed (skipped, like OpenSSH does).
    skipped: RwLock<Vec<usize>>,
    /// Serializes appends within this process.
    write_lock: tokio::sync::Mutex<()>,
}

/// The name a host is recorded under: `addr` for port 22, `[addr]:port` otherwise.
pub fn host_port_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The known_hosts line that records `key` for `host` on `port` (no comment), as
/// `ssh-keyscan` would print it; `None` when the key cannot be encoded.
pub fn known_hosts_line(host: &str, port: u16, key: &PublicKey) -> Option<String> {
    let plain = PublicKey::new(key.key_data().clone(), "");
    let text = plain.to_openssh().ok()?;
    Some(format!(
        "{} {text}",
        host_port_name(&host.to_ascii_lowercase(), port)
    ))
}

/// `SHA256:...` fingerprint of a key, as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

impl KnownHosts {
    /// Loads `path`. A missing file is an empty list; an unreadable one is an error.
    pub fn load(path: impl Into<PathBuf>) -> Result<KnownHosts, super::super::TransportError> {
        let path = path.into();
        let (entries, skipped) = read_entries(&path)?;
        Ok(KnownHosts {
            path,
            entries: RwLock::new(entries),
            skipped: RwLock::new(skipped),
            write_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// An empty list that records into `path` (nothing is read).
    pub fn empty(path: impl Into<PathBuf>) -> KnownHosts {
        KnownHosts {
            path: path.into(),
            entries: RwLock::new(Vec::new()),
            skipped: RwLock::new(Vec::new()),
            write_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Line numbers (1-based) that were skipped as unparseable.
    pub fn skipped_lines(&self) -> Vec<usize> {
        self.skipped.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Number of usable entries.
    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The types of the keys recorded for `host` on `port` (not revoked ones), in file
    /// order, so the handshake can ask for those first.
    pub fn known_algorithms(&self, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
        let name = host_port_name(&host.to_ascii_lowercase(), port);
        let entries = match self.entries.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut out = Vec::new();
        for e in entries
            .iter()
            .filter(|e| e.marker == Marker::None && host_matches(&e.hosts, &name))
        {
            let a = e.key.algorithm();
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// Checks the key `host` (the address connected to) presented on `port`.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Verdict {
        match self.entries.read() {
            Ok(entries) => verdict(&entries, &self.path, host, port, key),
            Err(poisoned) => verdict(poisoned.get_ref(), &self.path, host, port, key),
        }
    }

    /// Records `key` for an unknown host (accept-new). Serialized within the process; the file is re-read under
    /// the lock so a key recorded meanwhile (by another connection or process) is not appended twice, and is
    /// appended with a single `O_APPEND` write. Returns the verdict against the reloaded file: `Known` when the
    /// key is (now) recorded; `Changed`/`Revoked` when the reloaded file says so (nothing written).
    pub async fn record(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
    ) -> Result<Verdict, super::super::TransportError> {
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '#' | '|' | '@'))
        {
            return Err(super::super::TransportError::KnownHosts {
                path: self.path.clone(),
                reason: format!("refusing to record invalid host name {host:?}"),
            });
        }
        let _guard = self.write_lock.lock().await;
        let (entries, skipped) = read_entries(&self.path)?;
        let v = verdict(&entries, &self.path, host, port, key);
        if v != Verdict::Unknown {
            self.replace(entries, skipped);
            return Ok(v);
        }
        let record = known_hosts_line(host, port, key).ok_or_else(|| {
            super::super::TransportError::KnownHosts {
                path: self.path.clone(),
                reason: "cannot encode host key".to_string(),
            }
        })?;
        let needs_newline = match crate::input::read_bytes(&self.path) {
            Ok(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\n"),
            Err(_) => false,
        };
        let mut line = String::new();
        if needs_newline {
            line.push('\n');
        }
        line.push_str(&record);
        line.push('\n');
        let path = self.path.clone();
        let io_err = |e: std::io::Error| super::super::TransportError::KnownHosts {
            path: self.path.clone(),
            reason: format!("cannot append: {e}"),
        };
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            // One write() call per line: with O_APPEND it cannot interleave with other appenders.
            f.write_all(line.as_bytes())?;
            f.flush()
        })
        .await
        .map_err(|e| io_err(std::io::Error::other(e.to_string())))?
        .map_err(io_err)?;
        let (entries, skipped) = read_entries(&self.path)?;
        let v = verdict(&entries, &self.path, host, port, key);
        self.replace(entries, skipped);
        Ok(v)
    }

    fn replace(&self, entries: Vec<Entry>, skipped: Vec<usize>) {
        if let Ok(mut e) = self.entries.write() {
            *e = entries;
        }
        if let Ok(mut s) = self.skipped.write() {
            *s = skipped;
        }
    }
}

fn read_entries(path: &Path) -> Result<(Vec<Entry>, Vec<usize>), super::super::TransportError> {
    match crate::input::read_bytes(path) {
        Ok(bytes) => Ok(parse(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), Vec::new())),
        Err(e) => Err(super::super::TransportError::KnownHosts {
            path: path.to_path_buf(),
            reason: format!("cannot read: {e}"),
        }),
    }
}

/// Parses known_hosts text; returns entries and the numbers of skipped lines. `@cert-authority` lines are ignored.
fn parse(text: &str) -> (Vec<Entry>, Vec<usize>) {
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_ascii_whitespace();
        let Some(mut first) = fields.next() else {
            continue;
        };
        let mut marker = Marker::None;
        if first.starts_with('@') {
            match first.to_ascii_lowercase().as_str() {
                "@revoked" => marker = Marker::Revoked,
                // Host certificates are not supported: CA lines never accept a host.
                "@cert-authority" => continue,
                _ => {
                    skipped.push(lineno);
                    continue;
                }
            }
            match fields.next() {
                Some(f) => first = f,
                None => {
                    skipped.push(lineno);
                    continue;
                }
            }
        }
        let (Some(ktype), Some(kdata)) = (fields.next(), fields.next()) else {
            skipped.push(lineno);
            continue;
        };
        let Ok(key) = PublicKey::from_openssh(&format!("{ktype} {kdata}")) else {
            skipped.push(lineno);
            continue;
        };
        let hosts = if let Some(rest) = first.strip_prefix("|1|") {
            let mut parts = rest.split('|');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(salt), Some(hash), None) => match (B64.decode(salt), B64.decode(hash)) {
                    (Ok(salt), Ok(hash)) => HostSpec::Hashed { salt, hash },
                    _ => {
                        skipped.push(lineno);
                        continue;
                    }
                },
                _ => {
                    skipped.push(lineno);
                    continue;
                }
            }
        } else {
            HostSpec::Patterns(
                first
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| p.to_ascii_lowercase())
                    .collect(),
            )
        };
        entries.push(Entry {
            marker,
            hosts,
            key,
            line: lineno,
        });
    }
    (entries, skipped)
}

fn verdict(entries: &[Entry], path: &Path, host: &str, port: u16, key: &PublicKey) -> Verdict {
    let name = host_port_name(&host.to_ascii_lowercase(), port);
    let matching: Vec<&Entry> = entries
        .iter()
        .filter(|e| host_matches(&e.hosts, &name))
        .collect();
    if let Some(e) = matching
        .iter()
        .find(|e| e.marker == Marker::Revoked && e.key.key_data() == key.key_data())
    {
        return Verdict::Revoked {
            file: path.to_path_buf(),
            line: e.line,
        };
    }
    let plain = || matching.iter().filter(|e| e.marker == Marker::None);
    if plain().any(|e| e.key.key_data() == key.key_data()) {
        return Verdict::Known;
    }
    // A recorded key of the same type, or (as OpenSSH treats it) of any other type: a host
    // that is known is never "new" again, whatever key type it offers now.
    if let Some(e) = plain()
        .find(|e| same_type(&e.key, key))
        .or_else(|| plain().next())
    {
        return Verdict::Changed {
            file: path.to_path_buf(),
            line: e.line,
        };
    }
    Verdict::Unknown
}

fn same_type(a: &PublicKey, b: &PublicKey) -> bool {
    // RSA keys compare as one type whatever signature hash was negotiated.
    a.algorithm().is_rsa() && b.algorithm().is_rsa() || a.algorithm() == b.algorithm()
}

fn host_matches(spec: &HostSpec, name: &str) -> bool {
    match spec {
        HostSpec::Hashed { salt, hash } => {
            let Ok(mut mac) = HmacSha1::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        HostSpec::Patterns(patterns) => {
            let mut positive = false;
            for p in patterns {
                if let Some(neg) = p.strip_prefix('!') {
                    if wildcard_match(neg, name) {
                        return false;
                    }
                } else if wildcard_match(p, name) {
                    positive = true;
                }
            }
            positive
        }
    }
}

/// `*` (any run) and `?` (one character) glob match, as OpenSSH's `match_pattern`.
fn wildcard_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOdXXU/y7jtBg+7zR2eFVPyLC7yRBDtrd07EWDBh/ixU";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINLq9YOEpXQuFMID6OnNAnkuYb8aOMAiElBMSJR4Wzfc";
    const E1: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBPCpR7Q/npqWzsxx8pG1ecwxKXZzPYKW+mu25AiaBl9QiP9R3V3ZtAreV5ndh7Mb43gMQRiF6bimDysaRbNGMkk=";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn kh(text: &str) -> Vec<Entry> {
        parse(text).0
    }

    fn check(text: &str, host: &str, port: u16, k: &str) -> Verdict {
        verdict(&kh(text), Path::new("/kh"), host, port, &key(k))
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", "abc"));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "abbc"));
        assert!(wildcard_match("10.0.*.1", "10.0.5.1"));
        assert!(!wildcard_match("gpu*", "cpu1"));
        assert!(wildcard_match("[gpu*]:2222", "[gpu7]:2222"));
    }

    #[test]
    fn plain_and_port() {
        let t = format!("# comment\n\ngpu1,GPU2 {K1}\n[gpu3]:2222\t{K1} c\n");
        assert_eq!(check(&t, "gpu1", 22, K1), Verdict::Known);
        assert_eq!(check(&t, "Gpu2", 22, K1), Verdict::Known);
        assert_eq!(check(&t, "gpu3", 2222, K1), Verdict::Known);
        assert_eq!(check(&t, "gpu3", 22, K1), Verdict::Unknown);
        assert_eq!(check(&t, "gpu1", 2222, K1), Verdict::Unknown);
        assert_eq!(
            check(&t, "gpu1", 22, K2),
            Verdict::Changed {
                file: "/kh".into(),
                line: 3
            }
        );
        // Another type than the one recorded is a changed key, not a new one.
        assert_eq!(
            check(&t, "gpu1", 22, E1),
            Verdict::Changed {
                file: "/kh".into(),
                line: 3
            }
        );
        assert_eq!(check(&t, "gpu9", 22, E1), Verdict::Unknown);
    }

    #[test]
    fn multiple_keys_any_match() {
        let t = format!("h {K2}\nh {K1}\n");
        assert_eq!(check(&t, "h", 22, K1), Verdict::Known);
        assert_eq!(check(&t, "h", 22, K2), Verdict::Known);
    }

    #[test]
    fn negation_and_wildcards() {
        let t = format!("gpu*,!gpu9 {K1}\n");
        assert_eq!(check(&t, "gpu1", 22, K1), Verdict::Known);
        assert_eq!(check(&t, "gpu9", 22, K1), Verdict::Unknown);
        assert_eq!(check(&t, "cpu1", 22, K1), Verdict::Unknown);
    }

    #[test]
    fn revoked_wins() {
        let t = format!("h {K1}\n@revoked * {K1}\n");
        assert_eq!(
            check(&t, "h", 22, K1),
            Verdict::Revoked {
                file: "/kh".into(),
                line: 2
            }
        );
        let t = format!("@cert-authority * {K2}\nh {K1}\n");
        assert_eq!(check(&t, "h", 22, K1), Verdict::Known);
        assert_eq!(
            check(&t, "h", 22, K2),
            Verdict::Changed {
                file: "/kh".into(),
                line: 2
            }
        );
    }

    #[test]
    fn hashed() {
        let salt = b"0123456789abcdefghij";
        let mut mac = HmacSha1::new_from_slice(salt).unwrap();
        mac.update(b"[10.1.2.3]:2200");
        let h = mac.finalize().into_bytes();
        let t = format!("|1|{}|{} {K1}\n", B64.encode(salt), B64.encode(h));
        assert_eq!(check(&t, "10.1.2.3", 2200, K1), Verdict::Known);
        assert_eq!(check(&t, "10.1.2.3", 22, K1), Verdict::Unknown);
    }

    #[test]
    fn bad_lines_skipped() {
        let (e, s) = parse(&format!(
            "garbage\nh ssh-ed25519 !!!\n@bogus h {K1}\nh {K1}\n"
        ));
        assert_eq!(e.len(), 1);
        assert_eq!(s, vec![1, 2, 3]);
    }

    #[test]
    fn unreadable_is_error_missing_is_empty() {
        assert!(
            KnownHosts::load("/nonexistent/dir/known_hosts")
                .unwrap()
                .is_empty()
        );
        assert!(KnownHosts::load("/").is_err());
    }

    #[tokio::test]
    async fn record_appends_once() {
        let dir = std::env::temp_dir().join(format!("kh-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("known_hosts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, format!("other {K2}")).unwrap(); // no trailing newline
        let kh = KnownHosts::load(&path).unwrap();
        assert_eq!(kh.check("h", 2222, &key(K1)), Verdict::Unknown);
        assert_eq!(
            kh.record("h", 2222, &key(K1)).await.unwrap(),
            Verdict::Known
        );
        assert_eq!(
            kh.record("h", 2222, &key(K1)).await.unwrap(),
            Verdict::Known
        );
        assert_eq!(kh.check("h", 2222, &key(K1)), Verdict::Known);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("other {K2}\n[h]:2222 {K1}\n"));
        assert!(kh.record("bad host", 22, &key(K1)).await.is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
