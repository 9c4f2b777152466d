//! Ansible Vault: values (`!vault |` in YAML) and whole files encrypted by `ansible-vault`
//! (formats 1.1 and 1.2, AES256), decrypted with the passwords `--vault-password-file`,
//! `--vault-id`, `ANSIBLE_VAULT_PASSWORD_FILE` or ansible.cfg's `vault_password_file` give.
//!
//! The format, as Ansible writes it: a header line `$ANSIBLE_VAULT;1.1;AES256` (1.2 adds
//! `;LABEL`), then the hex of `hex(salt) \n hex(hmac) \n hex(ciphertext)` in lines of 80.
//! PBKDF2-HMAC-SHA256 over the password and salt (10000 rounds) gives 80 bytes: the
//! AES-256 key, the HMAC-SHA256 key and the CTR counter's start. The HMAC of the
//! ciphertext is checked (in constant time) before anything is decrypted; the plaintext is
//! PKCS#7-padded to the AES block.

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How every vault text starts.
pub const HEADER: &str = "$ANSIBLE_VAULT;";

const ROUNDS: u32 = 10_000;

/// One vault password and where it came from.
#[derive(Clone)]
pub struct Secret {
    /// The vault id's label (`--vault-id LABEL@FILE`), if given.
    pub label: Option<String>,
    password: Vec<u8>,
    /// The file or script it was read from, for messages.
    pub source: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vault secret from {}", self.source)
    }
}

impl Secret {
    /// A password given directly (tests, and scripts' output).
    pub fn new(label: Option<String>, password: impl Into<Vec<u8>>, source: &str) -> Secret {
        Secret {
            label,
            password: password.into(),
            source: source.to_string(),
        }
    }

    /// `[LABEL@]FILE` as `--vault-id` takes it (a bare FILE has no label).
    pub fn from_vault_id(spec: &str) -> Result<Secret, String> {
        match spec.split_once('@') {
            Some((label, file)) if !label.is_empty() && !file.is_empty() => {
                Secret::from_file(Some(label.to_string()), Path::new(file))
            }
            _ => Secret::from_file(None, Path::new(spec)),
        }
    }

    /// Reads a password file as Ansible does: its text with surrounding whitespace
    /// removed, or, for an executable, what it prints (a `*-client` script is asked for
    /// `--vault-id LABEL`). `prompt` is refused: migfleet reads no terminal.
    pub fn from_file(label: Option<String>, path: &Path) -> Result<Secret, String> {
        let shown = path.display().to_string();
        if shown == "prompt" {
            return Err(
                "vault password `prompt`: migfleet does not ask on the terminal; give a password file"
                    .into(),
            );
        }
        let password = if crate::inventory::script::is_executable(path) {
            let mut cmd = std::process::Command::new(path);
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            if stem.is_some_and(|s| s.ends_with("-client")) {
                cmd.arg("--vault-id")
                    .arg(label.as_deref().unwrap_or("default"));
            }
            let out = cmd
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("vault password script {shown}: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "vault password script {shown} failed ({})",
                    out.status
                ));
            }
            trim_newlines(&out.stdout).to_vec()
        } else {
            let bytes =
                std::fs::read(path).map_err(|e| format!("vault password file {shown}: {e}"))?;
            bytes.trim_ascii().to_vec()
        };
        if password.is_empty() {
            return Err(format!("vault password file {shown} is empty"));
        }
        Ok(Secret {
            label,
            password,
            source: shown,
        })
    }
}

fn trim_newlines(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !b"\r\n".contains(c))
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !b"\r\n".contains(c))
        .map_or(start, |i| i + 1);
    &b[start..end]
}

/// The vault passwords of a run (none: vaulted values stay encrypted, and fail only when
/// something uses them).
#[derive(Clone, Debug, Default)]
pub struct Secrets(Arc<Vec<Secret>>, Arc<Mutex<Decrypted>>);

/// Each vault text's plaintext (or why it has none), as [`Secrets::decrypt_cached`] found.
type Decrypted = HashMap<String, Result<String, String>>;

impl Secrets {
    pub fn new(secrets: Vec<Secret>) -> Secrets {
        Secrets(Arc::new(secrets), Default::default())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// [`Secrets::decrypt`], once per distinct text: a `!vault` value in group vars is
    /// used by every host of the group, and each try costs 10,000 PBKDF2 rounds.
    pub fn decrypt_cached(&self, text: &str) -> Result<String, String> {
        if let Some(r) = self.1.lock().ok().and_then(|c| c.get(text).cloned()) {
            return r;
        }
        let r = self.decrypt(text);
        if let Ok(mut c) = self.1.lock() {
            c.insert(text.to_string(), r.clone());
        }
        r
    }

    /// Decrypts a vault text: the secrets whose label the text names first, then the rest.
    pub fn decrypt(&self, text: &str) -> Result<String, String> {
        let envelope = Envelope::parse(text)?;
        if self.0.is_empty() {
            return Err(
                "encrypted with Ansible Vault, but no vault password was given (--vault-password-file, --vault-id or ANSIBLE_VAULT_PASSWORD_FILE)"
                    .into(),
            );
        }
        let mut order: Vec<&Secret> = self
            .0
            .iter()
            .filter(|s| s.label.is_some() && s.label == envelope.label)
            .collect();
        order.extend(
            self.0
                .iter()
                .filter(|s| s.label.is_none() || s.label != envelope.label),
        );
        for s in &order {
            if let Some(plain) = envelope.open(&s.password)? {
                return String::from_utf8(plain)
                    .map_err(|_| "the decrypted vault text is not UTF-8".to_string());
            }
        }
        Err(format!(
            "encrypted with Ansible Vault, and no vault password given decrypts it (tried {})",
            order
                .iter()
                .map(|s| s.source.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// Whether a file's text is a whole vault-encrypted file.
pub fn is_vault(text: &str) -> bool {
    text.trim_start().starts_with(HEADER)
}

struct Envelope {
    label: Option<String>,
    salt: Vec<u8>,
    mac: Vec<u8>,
    ciphertext: Vec<u8>,
}

impl Envelope {
    fn parse(text: &str) -> Result<Envelope, String> {
        let mut lines = text.trim().lines();
        let header = lines.next().unwrap_or("").trim();
        let parts: Vec<&str> = header.split(';').collect();
        if parts.first() != Some(&"$ANSIBLE_VAULT") || parts.len() < 3 {
            return Err("not an Ansible Vault text (no `$ANSIBLE_VAULT;` header)".into());
        }
        match (parts[1], parts[2]) {
            ("1.1" | "1.2", "AES256") => {}
            (v, c) => {
                return Err(format!(
                    "vault format {v} with cipher {c} is not supported (1.1 and 1.2 with AES256 are)"
                ));
            }
        }
        let label = parts
            .get(3)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty());
        let body: String = lines.map(str::trim).collect();
        let bad = || "the vault text is damaged (not the hex ansible-vault writes)".to_string();
        let inner = hex::decode(body.as_bytes()).map_err(|_| bad())?;
        let inner = String::from_utf8(inner).map_err(|_| bad())?;
        let mut fields = inner.split('\n');
        let mut field = || hex::decode(fields.next().unwrap_or("").trim()).map_err(|_| bad());
        let (salt, mac, ciphertext) = (field()?, field()?, field()?);
        if salt.is_empty() || mac.len() != 32 || ciphertext.is_empty() || ciphertext.len() % 16 != 0
        {
            return Err(bad());
        }
        Ok(Envelope {
            label,
            salt,
            mac,
            ciphertext,
        })
    }

    /// The plaintext, or `None` when this password is not the one (the HMAC differs).
    fn open(&self, password: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let mut keys = [0u8; 80];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, &self.salt, ROUNDS, &mut keys);
        let (aes_key, rest) = keys.split_at(32);
        let (mac_key, counter) = rest.split_at(32);
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(mac_key)
            .map_err(|_| "HMAC key length".to_string())?;
        mac.update(&self.ciphertext);
        if mac.verify_slice(&self.mac).is_err() {
            return Ok(None);
        }
        let mut data = self.ciphertext.clone();
        let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new_from_slices(aes_key, counter)
            .map_err(|_| "AES key length".to_string())?;
        cipher.apply_keystream(&mut data);
        let pad = usize::from(*data.last().unwrap_or(&0));
        if pad == 0
            || pad > 16
            || pad > data.len()
            || !data[data.len() - pad..]
                .iter()
                .all(|b| usize::from(*b) == pad)
        {
            return Err("the decrypted vault text has bad padding".into());
        }
        data.truncate(data.len() - pad);
        Ok(Some(data))
    }
}

/// The passwords named on the command line, in the environment and in ansible.cfg, in
/// Ansible's order: the vault ids (`[LABEL@]FILE`), then the password files.
pub fn load_secrets(vault_ids: &[String], password_files: &[PathBuf]) -> Result<Secrets, String> {
    let mut out = Vec::new();
    for id in vault_ids {
        out.push(Secret::from_vault_id(id)?);
    }
    for f in password_files {
        out.push(Secret::from_file(None, f)?);
    }
    Ok(Secrets::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with ansible-core 2.19.14: `ansible-vault encrypt_string --vault-password-file
    // pw 'hunter2'` with the password `s3cret-pass`.
    const VALUE: &str = "$ANSIBLE_VAULT;1.1;AES256
39613437623065393830376530393535326538636662353134663665333430623135383830323132
3438353234663537303562623132316438316438323364370a643462313064333833386162373865
61616439306464363834326337386637653432633030353136303633323761383462313137363335
6336653031356132360a613633313735643433353034353638653563303131336136303535323730
3565
";

    #[test]
    fn decrypts_what_ansible_vault_wrote() {
        let s = Secrets::new(vec![
            Secret::new(None, "wrong", "first"),
            Secret::new(None, "s3cret-pass", "second"),
        ]);
        assert_eq!(s.decrypt(VALUE).unwrap(), "hunter2");
        assert_eq!(s.decrypt_cached(VALUE).unwrap(), "hunter2");
        assert_eq!(
            s.decrypt_cached(VALUE).unwrap(),
            "hunter2",
            "from the cache"
        );
        let wrong = Secrets::new(vec![Secret::new(None, "nope", "pw.txt")]);
        let e = wrong.decrypt(VALUE).unwrap_err();
        assert!(e.contains("tried pw.txt"), "{e}");
        let e = Secrets::default().decrypt(VALUE).unwrap_err();
        assert!(e.contains("no vault password was given"), "{e}");
        // A flipped ciphertext digit fails the HMAC: no password opens it.
        let damaged = VALUE.replacen("3565", "3566", 1);
        assert!(
            Secrets::new(vec![Secret::new(None, "s3cret-pass", "pw")])
                .decrypt(&damaged)
                .is_err()
        );
        assert!(Secrets::default().decrypt("plain").is_err());
    }

    #[test]
    fn password_files_and_scripts_are_read_as_ansible_reads_them() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("migfleet-vault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw.txt");
        std::fs::write(&file, "  s3cret-pass \n\n").unwrap();
        // A `-client` script is told which vault id it is asked for.
        let script = dir.join("vault-client.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1 $2\" = '--vault-id prod' ] && printf 's3cret-pass\\r\\n'\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        for spec in [
            file.display().to_string(),
            format!("prod@{}", script.display()),
        ] {
            let s = load_secrets(std::slice::from_ref(&spec), &[]).unwrap();
            assert_eq!(s.decrypt(VALUE).unwrap(), "hunter2", "{spec}");
        }
        std::fs::write(&file, "\n").unwrap();
        assert!(
            load_secrets(&[], std::slice::from_ref(&file))
                .unwrap_err()
                .contains("is empty")
        );
        assert!(Secret::from_vault_id("prompt").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
