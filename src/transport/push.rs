//! Agent push: finds the local agent builds, and starts the agent on a host in one exec, uploading it (content-addressed, checksum-verified, atomic rename) only when missing or different.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use crate::transport::{
    RemoteCommand, SUDO_PASSWORD_HINT, Stream, Transport, TransportError, shell_quote,
    valid_env_name,
};

/// One agent binary for one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBuild {
    /// `uname -m` style: "x86_64" | "aarch64".
    pub arch: String,
    pub path: PathBuf,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
}

impl AgentBuild {
    /// Hashes `path` and describes it as the build for `arch`.
    pub fn from_file(arch: &str, path: &Path) -> Result<AgentBuild, TransportError> {
        if arch.is_empty()
            || !arch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(TransportError::AgentBinary {
                reason: format!("invalid architecture name {arch:?}"),
            });
        }
        Ok(AgentBuild {
            arch: arch.to_string(),
            path: path.to_path_buf(),
            sha256: sha256_file(path)?,
        })
    }

    /// Remote file name: `migfleet-agent-<first 16 hex of sha256>`.
    pub fn remote_name(&self) -> String {
        format!(
            "migfleet-agent-{}",
            &self.sha256[..16.min(self.sha256.len())]
        )
    }
}

fn sha256_file(path: &Path) -> Result<String, TransportError> {
    let err = |e: std::io::Error| TransportError::AgentBinary {
        reason: format!("cannot read {}: {e}", path.display()),
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

/// The agent builds available to push, by architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentBuilds {
    by_arch: BTreeMap<String, AgentBuild>,
}

const AGENT_PREFIX: &str = "migfleet-agent-";
const AGENT_SUFFIX: &str = "-linux-gnu";

impl AgentBuilds {
    /// With `agent_dir`: every `migfleet-agent-<arch>-linux-gnu` file there. Without: the `migfleet-agent` binary
    /// beside the current executable (or beside its parent directory, for `target/debug/deps` test binaries), as
    /// the controller's own architecture. Each file is hashed once, here.
    pub fn discover(agent_dir: Option<&Path>) -> Result<AgentBuilds, TransportError> {
        let mut builds = AgentBuilds::default();
        match agent_dir {
            Some(dir) => {
                let rd = std::fs::read_dir(dir).map_err(|e| TransportError::AgentBinary {
                    reason: format!("cannot read agent directory {}: {e}", dir.display()),
                })?;
                for entry in rd.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let Some(arch) = name
                        .strip_prefix(AGENT_PREFIX)
                        .and_then(|r| r.strip_suffix(AGENT_SUFFIX))
                    else {
                        continue;
                    };
                    if entry.path().is_file() {
                        builds.insert(AgentBuild::from_file(arch, &entry.path())?);
                    }
                }
                if builds.is_empty() {
                    return Err(TransportError::AgentBinary {
                        reason: format!(
                            "no {AGENT_PREFIX}<arch>{AGENT_SUFFIX} files in {}",
                            dir.display()
                        ),
                    });
                }
            }
            None => {
                let exe = std::env::current_exe().map_err(|e| TransportError::AgentBinary {
                    reason: format!("cannot locate the current executable: {e}"),
                })?;
                let mut candidates = Vec::new();
                if let Some(dir) = exe.parent() {
                    candidates.push(dir.join("migfleet-agent"));
                    if let Some(up) = dir.parent() {
                        candidates.push(up.join("migfleet-agent"));
                    }
                }
                let Some(found) = candidates.iter().find(|p| p.is_file()) else {
                    return Err(TransportError::AgentBinary {
                        reason: format!(
                            "migfleet-agent not found (looked at {}); build it or pass an agent directory",
                            candidates
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                };
                builds.insert(AgentBuild::from_file(std::env::consts::ARCH, found)?);
            }
        }
        Ok(builds)
    }

    /// From explicit builds (later ones replace earlier ones of the same arch).
    pub fn from_builds(builds: impl IntoIterator<Item = AgentBuild>) -> AgentBuilds {
        let mut b = AgentBuilds::default();
        for x in builds {
            b.insert(x);
        }
        b
    }

    pub fn insert(&mut self, build: AgentBuild) {
        self.by_arch.insert(build.arch.clone(), build);
    }

    pub fn get(&self, arch: &str) -> Option<&AgentBuild> {
        self.by_arch.get(arch)
    }

    pub fn arches(&self) -> Vec<String> {
        self.by_arch.keys().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.by_arch.is_empty()
    }
}

/// A started agent.
pub struct Started {
    /// The agent's stdio; its first output line is the agent's own (the start marker is consumed).
    pub stream: Stream,
    /// Whether the binary was uploaded on this start.
    pub uploaded: bool,
    /// Remote path of the agent binary (with `$HOME` expanded when `remote_dir` started with `~/`).
    pub path: String,
}

const MARK_START: &str = "MIGFLEET-START";
const MARK_PUSH: &str = "MIGFLEET-PUSH";
const MARK_NOARCH: &str = "MIGFLEET-NOARCH";
const MARK_SUDO: &str = "MIGFLEET-SUDO";
const MARK_UNSAFE: &str = "MIGFLEET-UNSAFE";

/// Shell expression for `remote_dir`: `"$HOME"'/rest'` for `~/rest`, else the quoted literal.
fn dir_expr(remote_dir: &str) -> Result<String, TransportError> {
    let bad = |why: &str| TransportError::InvalidCommand {
        reason: format!("remote agent directory {remote_dir:?}: {why}"),
    };
    if remote_dir.is_empty() {
        return Err(bad("empty"));
    }
    if remote_dir.contains('\n') || remote_dir.contains('\0') {
        return Err(bad("contains a newline or NUL"));
    }
    let trimmed = remote_dir.trim_end_matches('/');
    if trimmed == "~" {
        return Ok("\"$HOME\"".to_string());
    }
    if let Some(rest) = trimmed.strip_prefix("~/") {
        return Ok(format!("\"$HOME\"{}", shell_quote(&format!("/{rest}"))));
    }
    if trimmed.starts_with('~') {
        return Err(bad("only `~/` (the login user's home) is supported"));
    }
    if trimmed.is_empty() {
        return Ok(shell_quote("/"));
    }
    Ok(shell_quote(trimmed))
}

const SHA_FN: &str = r#"sha() { { sha256sum "$1" 2>/dev/null || shasum -a 256 "$1" 2>/dev/null; } | { read -r s _ && printf '%s' "$s"; }; }"#;

/// `unsafe_dir DIR PRIVATE` prints `path owner mode` for the first component of the existing
/// directory DIR — on the path as written and on the path it resolves to — that anybody
/// but us (and root) could change, and nothing when every one is safe. As OpenSSH's
/// StrictModes: owned by root or by us, writable by nobody else; one exception for the
/// directories above DIR, a root-owned sticky one such as /tmp, whose entries others
/// cannot rename or remove. With PRIVATE=1, DIR itself (both paths; the agent's own
/// directory) must be writable by its owner only. One `stat` for every component.
const UNSAFE_FN: &str = r#"me=$(id -u)
unsafe_dir() {
  dir=$1; private=$2
  phys=$(cd -P -- "$dir" 2>/dev/null && pwd -P) || { printf '%s %s %s\n' "$dir" '?' 'unreadable'; return; }
  set --
  for top in "$dir" "$phys"; do
    p=$top
    while :; do
      set -- "$@" "$p"
      [ "$p" = / ] && break
      p=${p%/*}; [ -n "$p" ] || p=/
    done
  done
  stat -c '%u %a %U %n' -- "$@" 2>/dev/null | while read -r u m o n; do
    w=$(( 0$m & 022 )); t=$(( 0$m & 01000 ))
    if [ "$u" != 0 ] && [ "$u" != "$me" ]; then printf '%s %s %s\n' "$n" "$o" "$m"; break; fi
    # A symlink's own mode means nothing; who owns it does.
    [ -L "$n" ] && continue
    if [ "$w" != 0 ]; then
      if { [ "$private" = 1 ] && { [ "$n" = "$dir" ] || [ "$n" = "$phys" ]; }; } || [ "$u" != 0 ] || [ "$t" = 0 ]; then
        printf '%s %s %s\n' "$n" "$o" "$m"; break
      fi
    fi
  done
}"#;

fn preamble(remote_dir: &str) -> Result<String, TransportError> {
    Ok(format!(
        ": \"${{HOME:?HOME is not set}}\"\nd={}\ncase \"$d\" in /*) ;; *) d=\"$PWD/$d\" ;; esac\n{SHA_FN}\n{UNSAFE_FN}\n",
        dir_expr(remote_dir)?
    ))
}

/// Refuses (the `MIGFLEET-UNSAFE` marker) when the agent directory can be changed by
/// anybody but us: the script stops before anything there runs.
fn refuse_unsafe(dir: &str, private: bool) -> String {
    format!(
        "bad=$(unsafe_dir \"{dir}\" {})\nif [ -n \"$bad\" ]; then printf '%s %s\\n' {} \"$bad\"; exit 0; fi\n",
        u8::from(private),
        shell_quote(MARK_UNSAFE)
    )
}

fn arch_case(builds: &AgentBuilds) -> String {
    let mut s = String::from(
        "m=$(uname -m)\ncase \"$m\" in\n  amd64) a=x86_64 ;;\n  arm64) a=aarch64 ;;\n  *) a=$m ;;\nesac\ncase \"$a\" in\n",
    );
    for b in builds.by_arch.values() {
        s.push_str(&format!(
            "  {}) h={}; f={} ;;\n",
            shell_quote(&b.arch),
            shell_quote(&b.sha256),
            shell_quote(&b.remote_name())
        ));
    }
    s.push_str(&format!(
        "  *) printf '%s %s\\n' {} \"$a\"; exit 0 ;;\nesac\n",
        shell_quote(MARK_NOARCH)
    ));
    s
}

/// The one-round-trip start script. The agent runs only from a directory nobody else can
/// change, and what runs is what was verified: the file is opened once, hashed through
/// that open file (`/proc/self/fd/3`) and executed through it, so swapping the path in
/// between changes nothing. With `sudo`, the same happens again inside `sudo sh -c`
/// (sudo closes inherited descriptors).
fn start_script(
    builds: &AgentBuilds,
    remote_dir: &str,
    env: &[(String, String)],
    sudo: bool,
) -> Result<String, TransportError> {
    let mut s = preamble(remote_dir)?;
    s.push_str(&arch_case(builds));
    let mut env_args = String::new();
    for (k, v) in env {
        if !valid_env_name(k) {
            return Err(TransportError::InvalidCommand {
                reason: format!("invalid environment variable name {k:?}"),
            });
        }
        env_args.push_str(&shell_quote(&format!("{k}={v}")));
        env_args.push(' ');
    }
    let exec = if sudo {
        s.push_str(&format!(
            "command -v sudo >/dev/null 2>&1 || {{ echo '{MARK_SUDO} sudo is not installed'; exit 0; }}\n\
if ! e=$(sudo -n true 2>&1); then printf '%s %s\\n' {MARK_SUDO} \"$(printf '%s' \"$e\" | tr '\\n' ' ')\"; exit 0; fi\n"
        ));
        let inner = format!(
            "{SHA_FN}\nexec 3< \"$1\" || exit 1\n[ \"$(sha /proc/self/fd/3)\" = \"$2\" ] || {{ echo 'the agent changed between its checks' >&2; exit 1; }}\nexec env {env_args}/proc/self/fd/3\n"
        );
        format!(
            "exec sudo -n -- sh -c {} sh \"$d/$f\" \"$h\"",
            shell_quote(&inner)
        )
    } else {
        format!("exec env {env_args}/proc/self/fd/3")
    };
    s.push_str(&format!(
        "if [ -d \"$d\" ]; then\n{refuse}fi\n\
if [ -f \"$d/$f\" ] && [ -x \"$d/$f\" ] && [ -r \"$d/$f\" ]; then\n\
  exec 3< \"$d/$f\"\n\
  if [ \"$(sha /proc/self/fd/3)\" = \"$h\" ]; then\n\
    printf '%s %s\\n' {start} \"$d/$f\"\n\
    {exec}\n\
  fi\n\
  exec 3<&-\n\
fi\n\
printf '%s %s\\n' {push} \"$a\"\n",
        refuse = refuse_unsafe("$d", true),
        start = shell_quote(MARK_START),
        push = shell_quote(MARK_PUSH),
    ));
    Ok(s)
}

/// Upload script: binary on stdin -> 0700 staging dir -> verify -> chmod 0755 -> atomic
/// rename. Refuses, before writing anything, a directory others could change (the closest
/// existing ancestor when it does not exist yet), and never loosens one that exists.
fn upload_script(build: &AgentBuild, remote_dir: &str) -> Result<String, TransportError> {
    let mut s = preamble(remote_dir)?;
    s.push_str("e=$d\nwhile [ ! -d \"$e\" ]; do e=${e%/*}; [ -n \"$e\" ] || e=/; done\n");
    s.push_str(&refuse_unsafe("$e", false).replace(
        &format!(
            "printf '%s %s\\n' {} \"$bad\"; exit 0",
            shell_quote(MARK_UNSAFE)
        ),
        "echo \"$bad: writable by others or not ours (StrictModes)\" >&2; exit 1",
    ));
    s.push_str(&format!(
        "h={h}\nf={f}\numask 077\nmkdir -p \"$d/.staging\" || exit 1\n\
bad=$(unsafe_dir \"$d\" 1)\nif [ -n \"$bad\" ]; then echo \"$bad: writable by others or not ours (StrictModes)\" >&2; exit 1; fi\n\
chmod 700 \"$d/.staging\" || exit 1\n\
t=\"$d/.staging/$f.$$\"\ntrap 'rm -f \"$t\"' EXIT\n\
cat > \"$t\" || exit 1\n\
got=$(sha \"$t\")\n\
if [ -z \"$got\" ]; then echo 'neither sha256sum nor shasum works on this host' >&2; exit 1; fi\n\
if [ \"$got\" != \"$h\" ]; then echo \"checksum mismatch after upload: got $got, want $h\" >&2; exit 1; fi\n\
chmod 0755 \"$t\" || exit 1\n\
mv -f \"$t\" \"$d/$f\" || exit 1\n",
        h = shell_quote(&build.sha256),
        f = shell_quote(&build.remote_name()),
    ));
    Ok(s)
}

fn sh(script: String) -> RemoteCommand {
    RemoteCommand::new(["sh", "-c", script.as_str()])
}

enum Attempt {
    Started(Stream, String),
    Push(String),
}

async fn attempt(
    t: &mut dyn Transport,
    builds: &AgentBuilds,
    script: &str,
    preface: &[u8],
) -> Result<Attempt, TransportError> {
    let host = t.host().to_string();
    let mut stream = t.spawn(&sh(script.to_string())).await?;
    if !preface.is_empty() {
        // Requests for the agent ride along with the start: they wait in its stdin while
        // the script checks the binary, so the first replies cost no extra round trip. When
        // the script asks for an upload instead, nothing reads them and they go with it.
        use tokio::io::AsyncWriteExt;
        let io = |e: std::io::Error| TransportError::Io {
            host: host.clone(),
            context: "writing the first requests".to_string(),
            source: e,
        };
        stream.stdin.write_all(preface).await.map_err(io)?;
        stream.stdin.flush().await.map_err(io)?;
    }
    let mut line = String::new();
    let n = stream
        .stdout
        .read_line(&mut line)
        .await
        .map_err(|e| TransportError::Io {
            host: host.clone(),
            context: "reading the agent start marker".to_string(),
            source: e,
        })?;
    let line = line.trim_end_matches(['\n', '\r']);
    let (mark, rest) = line.split_once(' ').unwrap_or((line, ""));
    match mark {
        MARK_START => Ok(Attempt::Started(stream, rest.to_string())),
        MARK_PUSH => {
            drop(stream.stdin);
            drop(stream.stdout);
            let _ = stream.exit.wait().await;
            Ok(Attempt::Push(rest.to_string()))
        }
        MARK_NOARCH => Err(TransportError::NoAgentBuild {
            host,
            arch: rest.to_string(),
            available: builds.arches(),
        }),
        MARK_UNSAFE => {
            // `path owner mode`; the path may hold spaces, owner and mode do not.
            let mut parts = rest.rsplitn(3, ' ');
            let (mode, owner, path) = (
                parts.next().unwrap_or("?"),
                parts.next().unwrap_or("?"),
                parts.next().unwrap_or("?"),
            );
            Err(TransportError::UnsafeAgentDir {
                host,
                path: path.to_string(),
                owner: owner.to_string(),
                mode: mode.to_string(),
            })
        }
        MARK_SUDO => Err(TransportError::Sudo {
            message: if rest.contains("password is required")
                || rest.contains("terminal is required")
            {
                format!("sudo on {host} needs a password; {SUDO_PASSWORD_HINT}")
            } else {
                format!("sudo -n failed on {host}: {}", rest.trim())
            },
            host,
        }),
        _ => {
            drop(stream.stdin);
            drop(stream.stdout);
            let exit = stream.exit.wait().await;
            let detail = match exit {
                Ok(e) => format!(
                    "exit status {:?}, stderr: {}",
                    e.status,
                    String::from_utf8_lossy(&e.stderr).trim()
                ),
                Err(e) => e.to_string(),
            };
            Err(TransportError::Push {
                host,
                message: if n == 0 {
                    format!("the start script printed nothing ({detail})")
                } else {
                    format!("unexpected start script output {line:?} ({detail})")
                },
            })
        }
    }
}

/// Starts the agent on the host with as few round trips as possible: ONE exec when the agent is already there.
/// Otherwise uploads the build for the host's `uname -m` (verifying its SHA-256 on the host and renaming it into
/// place atomically) and starts it again. `preface` (request lines) is written to the agent's stdin as soon as
/// the start command runs, so the agent finds it waiting.
pub async fn start_agent(
    t: &mut dyn Transport,
    builds: &AgentBuilds,
    remote_dir: &str,
    env: &[(String, String)],
    sudo: bool,
    preface: &[u8],
) -> Result<Started, TransportError> {
    let host = t.host().to_string();
    let script = start_script(builds, remote_dir, env, sudo)?;
    let arch = match attempt(t, builds, &script, preface).await? {
        Attempt::Started(stream, path) => {
            return Ok(Started {
                stream,
                uploaded: false,
                path,
            });
        }
        Attempt::Push(arch) => arch,
    };
    let Some(build) = builds.get(&arch) else {
        return Err(TransportError::NoAgentBuild {
            host,
            arch,
            available: builds.arches(),
        });
    };
    let data = tokio::fs::read(&build.path)
        .await
        .map_err(|e| TransportError::AgentBinary {
            reason: format!("cannot read {}: {e}", build.path.display()),
        })?;
    let out = t
        .exec(&sh(upload_script(build, remote_dir)?), Some(data))
        .await?;
    if !out.success() {
        let stderr = out.stderr_text();
        return Err(TransportError::Push {
            host,
            message: format!(
                "upload of {} ({}) into {remote_dir} (migfleet_remote_dir) failed with status {:?}: {}",
                build.path.display(),
                build.arch,
                out.status,
                if stderr.trim().is_empty() {
                    "(no error output)"
                } else {
                    stderr.trim()
                }
            ),
        });
    }
    match attempt(t, builds, &script, preface).await? {
        Attempt::Started(stream, path) => Ok(Started {
            stream,
            uploaded: true,
            path,
        }),
        Attempt::Push(_) => Err(TransportError::Push {
            host,
            message: "the agent was uploaded but the host still does not find it (is the remote directory on a noexec or full filesystem?)".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::local::LocalTransport;

    #[test]
    fn dir_expressions() {
        assert_eq!(dir_expr("~/.m").unwrap(), "\"$HOME\"'/.m'");
        assert_eq!(dir_expr("~").unwrap(), "\"$HOME\"");
        assert_eq!(dir_expr("/opt/x/").unwrap(), "'/opt/x'");
        assert_eq!(dir_expr("/a'b").unwrap(), "'/a'\\''b'");
        assert!(dir_expr("~bob/x").is_err());
        assert!(dir_expr("").is_err());
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("push-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn discover_dir() {
        let d = tmpdir("disc");
        std::fs::write(d.join("migfleet-agent-x86_64-linux-gnu"), b"a").unwrap();
        std::fs::write(d.join("migfleet-agent-aarch64-linux-gnu"), b"b").unwrap();
        std::fs::write(d.join("other"), b"c").unwrap();
        let b = AgentBuilds::discover(Some(&d)).unwrap();
        assert_eq!(b.arches(), vec!["aarch64", "x86_64"]);
        assert_eq!(
            b.get("x86_64").unwrap().sha256,
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        );
        assert!(AgentBuilds::discover(Some(&d.join("missing"))).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test]
    async fn local_push_and_restart() {
        let d = tmpdir("local");
        let agent = d.join("agent.sh");
        std::fs::write(
            &agent,
            "#!/bin/sh\nprintf 'env=%s\\n' \"$MF_X\"\nexec cat\n",
        )
        .unwrap();
        let builds =
            AgentBuilds::from_builds([
                AgentBuild::from_file(std::env::consts::ARCH, &agent).unwrap()
            ]);
        let remote = d.join("remote dir's");
        let remote = remote.to_str().unwrap();
        let env = vec![("MF_X".to_string(), "a b'c".to_string())];
        let mut t = LocalTransport::new("localhost");
        let mut s = start_agent(&mut t, &builds, remote, &env, false, b"")
            .await
            .unwrap();
        assert!(s.uploaded);
        let mut line = String::new();
        s.stream.stdout.read_line(&mut line).await.unwrap();
        assert_eq!(line, "env=a b'c\n");
        drop(s.stream.stdin);
        s.stream.exit.wait().await.unwrap();
        let s = start_agent(&mut t, &builds, remote, &env, false, b"")
            .await
            .unwrap();
        assert!(!s.uploaded);
        assert!(
            s.path
                .ends_with(&builds.get(std::env::consts::ARCH).unwrap().remote_name())
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
