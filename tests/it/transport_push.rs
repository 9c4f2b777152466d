//! Agent push over SSH against a real sshd test host, with a shell-script stand-in agent.
// Helpers outside #[test] fns unwrap too: a failed setup should fail the test loudly.

use std::path::Path;

use crate::support::testhost::*;
use migfleet::transport::push::{AgentBuild, AgentBuilds, start_agent};
use migfleet::transport::ssh::{SshTransport, connect};
use migfleet::transport::{RemoteCommand, Transport, TransportError};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A stand-in agent: prints its env var, then echoes stdin.
fn stand_in(dir: &Path) -> AgentBuilds {
    let p = dir.join("fake-agent");
    std::fs::write(
        &p,
        "#!/bin/sh\nprintf 'ready %s\\n' \"$MF_TOKEN\"\nexec cat\n",
    )
    .unwrap();
    AgentBuilds::from_builds([AgentBuild::from_file(std::env::consts::ARCH, &p).unwrap()])
}

async fn conn(host: &TestHost) -> SshTransport {
    let kh = write_known_hosts(&host.dir().join("kh"), [host].into_iter());
    connect(&host.target(), &test_options(&kh, false), load_known(&kh))
        .await
        .unwrap()
}

/// Runs every command with extra environment (e.g. HOME, PATH), as a login environment would provide it.
struct WithEnv<'a>(&'a mut SshTransport, Vec<(String, String)>);

#[async_trait::async_trait]
impl Transport for WithEnv<'_> {
    fn host(&self) -> &str {
        self.0.host()
    }
    async fn exec(
        &mut self,
        cmd: &RemoteCommand,
        stdin: Option<Vec<u8>>,
    ) -> Result<migfleet::transport::Output, TransportError> {
        let cmd = RemoteCommand {
            env: self.1.clone(),
            ..cmd.clone()
        };
        self.0.exec(&cmd, stdin).await
    }
    async fn spawn(
        &mut self,
        cmd: &RemoteCommand,
    ) -> Result<migfleet::transport::Stream, TransportError> {
        let cmd = RemoteCommand {
            env: self.1.clone(),
            ..cmd.clone()
        };
        self.0.spawn(&cmd).await
    }
}

async fn stat(t: &mut SshTransport, path: &str) -> String {
    let out = t
        .exec(&RemoteCommand::new(["stat", "-c", "%i %Y %a", path]), None)
        .await
        .unwrap();
    assert!(out.success(), "{}", out.stderr_text());
    out.stdout_text()
}

#[tokio::test]
async fn push_once_then_reuse_then_repair() {
    let host = TestHost::start("push");
    let builds = stand_in(host.dir());
    let mut t = conn(&host).await;
    let remote = host.remote_dir().join("agent dir 'q'");
    let remote = remote.to_str().unwrap();
    let env = vec![("MF_TOKEN".to_string(), "t0k$(en)".to_string())];

    // 1st start: uploads. The preface (requests sent with the start) reaches the agent
    // once, although the first attempt found no agent and asked for the upload.
    let mut s = start_agent(&mut t, &builds, remote, &env, false, b"{\"early\":1}\n")
        .await
        .unwrap();
    assert!(s.uploaded);
    let build = builds.get(std::env::consts::ARCH).unwrap();
    assert_eq!(s.path, format!("{remote}/{}", build.remote_name()));
    let mut line = String::new();
    s.stream.stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "ready t0k$(en)\n");
    line.clear();
    s.stream.stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "{\"early\":1}\n");
    s.stream
        .stdin
        .write_all(b"{\"op\":\"ping\"}\n")
        .await
        .unwrap();
    s.stream.stdin.flush().await.unwrap();
    line.clear();
    s.stream.stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "{\"op\":\"ping\"}\n");
    s.stream.stdin.shutdown().await.unwrap();
    assert_eq!(s.stream.exit.wait().await.unwrap().status, Some(0));
    let path = s.path.clone();
    let before = stat(&mut t, &path).await;
    assert!(before.trim().ends_with(" 755"), "{before}");
    // staging dir is private
    let staging = stat(&mut t, &format!("{remote}/.staging")).await;
    assert!(staging.trim().ends_with(" 700"), "{staging}");

    // 2nd start: nothing uploaded, same file (inode + mtime)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let s = start_agent(&mut t, &builds, remote, &env, false, b"")
        .await
        .unwrap();
    assert!(!s.uploaded);
    drop(s.stream.stdin);
    assert_eq!(stat(&mut t, &path).await, before);

    // corrupt the remote file: it is replaced
    let out = t
        .exec(
            &RemoteCommand::new(["sh", "-c", "printf garbage >> \"$1\"", "sh", &path]),
            None,
        )
        .await
        .unwrap();
    assert!(out.success());
    let mut s = start_agent(&mut t, &builds, remote, &env, false, b"")
        .await
        .unwrap();
    assert!(s.uploaded);
    line.clear();
    s.stream.stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "ready t0k$(en)\n");
    let content = t
        .exec(&RemoteCommand::new(["cat", &path]), None)
        .await
        .unwrap()
        .stdout;
    assert_eq!(content, std::fs::read(&build.path).unwrap());
    // no temp files left behind
    let ls = t
        .exec(
            &RemoteCommand::new(["ls", "-A", &format!("{remote}/.staging")]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(ls.stdout_text(), "");
}

#[tokio::test]
async fn push_into_home_relative_dir() {
    let host = TestHost::start("home");
    let builds = stand_in(host.dir());
    let mut t = conn(&host).await;
    let home = host.remote_dir();
    // run with HOME pointing into the test host's dir: `~/` expands on the remote side
    let env = vec![("MF_TOKEN".to_string(), "x".to_string())];
    let remote = format!("~/{}", "mf agent");
    let mut w = WithEnv(
        &mut t,
        vec![("HOME".to_string(), home.to_str().unwrap().to_string())],
    );
    let mut s = start_agent(&mut w, &builds, &remote, &env, false, b"")
        .await
        .unwrap();
    assert!(s.uploaded);
    assert!(
        s.path.starts_with(&format!("{}/mf agent/", home.display())),
        "{}",
        s.path
    );
    let mut line = String::new();
    s.stream.stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "ready x\n");
    assert!(Path::new(&s.path).exists());
}

#[tokio::test]
async fn unknown_arch_errors_clearly() {
    let host = TestHost::start("arch");
    let p = host.dir().join("fake-agent");
    std::fs::write(&p, "#!/bin/sh\ncat\n").unwrap();
    let builds = AgentBuilds::from_builds([
        AgentBuild::from_file("sparc64", &p).unwrap(),
        AgentBuild::from_file("riscv64", &p).unwrap(),
    ]);
    let mut t = conn(&host).await;
    let remote = host.remote_dir().join("a");
    let err = start_agent(&mut t, &builds, remote.to_str().unwrap(), &[], false, b"")
        .await
        .err()
        .expect("must fail");
    match &err {
        TransportError::NoAgentBuild {
            host,
            arch,
            available,
        } => {
            assert_eq!(host, "arch");
            assert_eq!(arch, std::env::consts::ARCH);
            assert_eq!(
                available,
                &vec!["riscv64".to_string(), "sparc64".to_string()]
            );
        }
        e => panic!("expected NoAgentBuild, got {e:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(std::env::consts::ARCH) && msg.contains("sparc64"),
        "{msg}"
    );
    assert!(!remote.exists(), "nothing uploaded");
}

#[tokio::test]
async fn failed_upload_reports_cause() {
    let host = TestHost::start("full");
    let builds = stand_in(host.dir());
    let mut t = conn(&host).await;
    // a remote dir that cannot be created (a regular file is in the way)
    let blocker = host.remote_dir().join("file");
    std::fs::write(&blocker, "x").unwrap();
    let remote = blocker.join("agents");
    let err = start_agent(&mut t, &builds, remote.to_str().unwrap(), &[], false, b"")
        .await
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, TransportError::Push { .. }), "{err:?}");
    assert!(msg.contains("Not a directory"), "{msg}");
}

#[tokio::test]
async fn sudo_paths() {
    let host = TestHost::start("sudo");
    let builds = stand_in(host.dir());
    let mut t = conn(&host).await;
    let remote = host.remote_dir().join("a");
    let remote = remote.to_str().unwrap();
    let env = vec![("MF_TOKEN".to_string(), "s".to_string())];
    let bin = host.dir().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = |dir: &Path| {
        vec![(
            "PATH".to_string(),
            format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display()),
        )]
    };
    // sudo that wants a password
    std::fs::write(
        bin.join("sudo"),
        "#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("755")
        .arg(bin.join("sudo"))
        .status()
        .unwrap();
    let mut w = WithEnv(&mut t, path(&bin));
    let err = start_agent(&mut w, &builds, remote, &env, true, b"")
        .await
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, TransportError::Sudo { .. }), "{err:?}");
    assert!(
        msg.contains("sudo on sudo needs a password") && msg.contains("sudo -n"),
        "{msg}"
    );
    assert!(!err.is_unreachable());
    // passwordless sudo: the agent runs through it, with the env
    std::fs::write(
        bin.join("sudo"),
        "#!/bin/sh\n[ \"$1\" = -n ] && shift\n[ \"$1\" = -- ] && shift\nexec \"$@\"\n",
    )
    .unwrap();
    let mut s = start_agent(&mut w, &builds, remote, &env, true, b"")
        .await
        .unwrap();
    let mut line = String::new();
    s.stream.stdout.read_line(&mut line).await.unwrap();
    assert_eq!(line, "ready s\n");
}

/// `chown` by uid (65534 is `nobody` on Debian), `-h` for a symlink itself.
fn chown(path: &Path, uid: u32, link: bool) {
    let mut c = std::process::Command::new("chown");
    if link {
        c.arg("-h");
    }
    assert!(c.arg(uid.to_string()).arg(path).status().unwrap().success());
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn an_agent_directory_others_could_change_is_refused() {
    let host = TestHost::start("strict");
    let builds = stand_in(host.dir());
    let mut t = conn(&host).await;
    let unsafe_dir = |e: TransportError| match e {
        TransportError::UnsafeAgentDir {
            path, owner, mode, ..
        } => (path, owner, mode),
        other => panic!("expected UnsafeAgentDir, got {other:?}"),
    };

    // The agent's own directory, once world-writable, is refused (not repaired).
    let dir = host.remote_dir().join("agent");
    let d = dir.to_str().unwrap();
    start_agent(&mut t, &builds, d, &[], false, b"")
        .await
        .unwrap();
    chmod(&dir, 0o777);
    let err = start_agent(&mut t, &builds, d, &[], false, b"")
        .await
        .err()
        .unwrap();
    let msg = err.to_string();
    assert_eq!(
        unsafe_dir(err),
        (d.to_string(), "root".into(), "777".into())
    );
    assert!(msg.contains("refusing to run the agent"), "{msg}");
    chmod(&dir, 0o700);
    start_agent(&mut t, &builds, d, &[], false, b"")
        .await
        .unwrap();

    // A parent owned by another user: refused before anything is created under it.
    let theirs = host.remote_dir().join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    chown(&theirs, 65534, false);
    let inside = theirs.join("agent");
    let err = start_agent(&mut t, &builds, inside.to_str().unwrap(), &[], false, b"")
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("writable by others or not ours"),
        "{err}"
    );
    assert!(err.to_string().contains(theirs.to_str().unwrap()), "{err}");
    assert!(
        !inside.exists(),
        "nothing made under a directory that is not ours"
    );

    // Reached through a symlink another user owns.
    let real = host.remote_dir().join("real");
    std::fs::create_dir_all(&real).unwrap();
    let link = host.remote_dir().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    start_agent(&mut t, &builds, link.to_str().unwrap(), &[], false, b"")
        .await
        .unwrap();
    chown(&link, 65534, true);
    let err = start_agent(&mut t, &builds, link.to_str().unwrap(), &[], false, b"")
        .await
        .err()
        .unwrap();
    let (path, owner, _) = unsafe_dir(err);
    assert_eq!(path, link.to_str().unwrap());
    assert_ne!(owner, "root");

    // Resolving to a world-writable directory, even a sticky root-owned one like /tmp,
    // is refused for the agent's own directory: others could create files there.
    let sticky = host.remote_dir().join("sticky");
    std::fs::create_dir_all(&sticky).unwrap();
    chmod(&sticky, 0o1777);
    let to_sticky = host.remote_dir().join("to-sticky");
    std::os::unix::fs::symlink(&sticky, &to_sticky).unwrap();
    let err = start_agent(
        &mut t,
        &builds,
        to_sticky.to_str().unwrap(),
        &[],
        false,
        b"",
    )
    .await
    .err()
    .unwrap();
    let (path, _, mode) = unsafe_dir(err);
    assert_eq!(
        (path.as_str(), mode.as_str()),
        (sticky.to_str().unwrap(), "1777")
    );
    // Below a sticky root-owned directory, a private one of ours is fine.
    let below = sticky.join("mine");
    start_agent(&mut t, &builds, below.to_str().unwrap(), &[], false, b"")
        .await
        .unwrap();
}
