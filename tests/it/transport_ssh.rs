//! SSH transport against real sshd test hosts: exec, host key verification, accept-new, timeouts, quoting.
// Helpers outside #[test] fns unwrap too: a failed setup should fail the test loudly.

use std::time::{Duration, Instant};

use crate::support::testhost::*;
use migfleet::transport::ssh::{KnownHosts, connect};
use migfleet::transport::{RemoteCommand, Transport, TransportError, shell_quote};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const HOSTILE: &[&str] = &[
    "it's",
    "$(touch /tmp/pwned-migfleet)",
    "`id`",
    "a b  c",
    "line1\nline2\n",
    "\"dq\" \\ back",
    "; rm -rf / #",
    "*",
    "",
    "'",
    "''\\''",
    "$HOME ${PATH} !x",
    "tab\there",
];

#[tokio::test]
async fn exec_true_and_echo() {
    let host = TestHost::start("exec");
    let kh = write_known_hosts(&host.dir().join("kh"), [&host].into_iter());
    let mut t = connect(&host.target(), &test_options(&kh, false), load_known(&kh))
        .await
        .unwrap();
    assert_eq!(t.host(), "exec");
    let out = t.exec(&RemoteCommand::new(["true"]), None).await.unwrap();
    assert_eq!(out.status, Some(0));
    let out = t
        .exec(&RemoteCommand::new(["echo", "hello world"]), None)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"hello world\n");
    let out = t
        .exec(
            &RemoteCommand::new(["sh", "-c", "echo err >&2; exit 7"]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.status, Some(7));
    assert_eq!(out.stderr, b"err\n");
    // stdin + env
    let out = t
        .exec(
            &RemoteCommand::new(["sh", "-c", "printf '%s|' \"$MF_V\"; cat"]).env("MF_V", "x'y z"),
            Some(b"data in".to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, b"x'y z|data in");
    // a large stdin (agent-sized upload path) arrives whole
    let big = vec![b'x'; 8 << 20];
    let out = t
        .exec(&RemoteCommand::new(["wc", "-c"]), Some(big))
        .await
        .unwrap();
    assert_eq!(out.stdout_text().trim(), (8 << 20).to_string());
    // several channels on one connection, concurrently open
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(t.spawn(&RemoteCommand::new(["cat"])).await.unwrap());
    }
    for (i, s) in streams.iter_mut().enumerate() {
        s.stdin
            .write_all(format!("{{\"n\":{i}}}\n").as_bytes())
            .await
            .unwrap();
        s.stdin.flush().await.unwrap();
        let mut line = String::new();
        s.stdout.read_line(&mut line).await.unwrap();
        assert_eq!(line, format!("{{\"n\":{i}}}\n"));
    }
    for mut s in streams {
        s.stdin.shutdown().await.unwrap();
        let exit = s.exit.wait().await.unwrap();
        assert_eq!(exit.status, Some(0));
    }
    // hostile arguments arrive intact over SSH
    for arg in HOSTILE {
        let out = t
            .exec(&RemoteCommand::new(["printf", "%s", arg]), None)
            .await
            .unwrap();
        assert_eq!(out.stdout, arg.as_bytes(), "argument {arg:?}");
    }
    assert!(!std::path::Path::new("/tmp/pwned-migfleet").exists());
}

#[tokio::test]
async fn unknown_host_key_refused() {
    let host = TestHost::start("unknown");
    let kh = host.dir().join("kh-empty");
    let err = connect(&host.target(), &test_options(&kh, false), load_known(&kh))
        .await
        .err()
        .expect("must refuse");
    let msg = err.to_string();
    assert!(
        matches!(err, TransportError::HostKeyUnknown { .. }),
        "{err:?}"
    );
    assert!(err.is_unreachable());
    assert!(msg.contains("unknown"), "{msg}");
    assert!(msg.contains("SHA256:"), "{msg}");
    assert!(msg.contains(&kh.display().to_string()), "{msg}");
    // The message says how to trust the key: the exact line to add, or the flag.
    assert!(msg.contains(&host.known_line()), "{msg}");
    assert!(msg.contains("--accept-new-host-keys"), "{msg}");
    assert!(!kh.exists(), "nothing recorded without accept-new");
}

#[tokio::test]
async fn changed_host_key_refused_with_file_and_line() {
    let mut host = TestHost::start("changed");
    let kh = host.dir().join("kh");
    std::fs::write(
        &kh,
        format!(
            "# header\nother.example {}\n{}\n",
            host.host_key(),
            host.known_line()
        ),
    )
    .unwrap();
    host.restart_with_new_key();
    // even with accept_new a changed key is refused
    let err = connect(&host.target(), &test_options(&kh, true), load_known(&kh))
        .await
        .err()
        .expect("must refuse");
    match &err {
        TransportError::HostKeyChanged {
            host: h,
            file,
            line,
            fingerprint,
        } => {
            assert_eq!(h, "changed");
            assert_eq!(file, &kh);
            assert_eq!(*line, 3);
            assert!(fingerprint.starts_with("SHA256:"));
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert!(err.to_string().contains(&format!("{}:3", kh.display())));
    assert!(err.is_unreachable());
    // the file was not modified
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 3);
}

#[tokio::test]
async fn a_known_host_offering_another_key_type_is_a_changed_key() {
    // An impostor that only has an RSA key, where known_hosts holds the host's ed25519
    // key: not "new", even with accept-new, and nothing is recorded.
    let mut host = TestHost::start("keytype");
    let kh = host.dir().join("kh");
    std::fs::write(&kh, format!("{}\n", host.known_line())).unwrap();
    host.restart_with_key_types(&["rsa"]);
    let err = connect(&host.target(), &test_options(&kh, true), load_known(&kh))
        .await
        .err()
        .expect("must refuse");
    match &err {
        TransportError::HostKeyChanged { file, line, .. } => {
            assert_eq!((file, *line), (&kh, 1), "{err}");
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 1);

    // A host with several keys is checked against the type known_hosts records.
    host.restart_with_key_types(&["ed25519", "rsa"]);
    let rsa_only = host.dir().join("kh-rsa");
    std::fs::write(
        &rsa_only,
        format!("{} {}\n", host.known_name(), host.host_key_of("rsa")),
    )
    .unwrap();
    let mut t = connect(
        &host.target(),
        &test_options(&rsa_only, false),
        load_known(&rsa_only),
    )
    .await
    .expect("the RSA key is known, and asked for first");
    let out = t.exec(&RemoteCommand::new(["true"]), None).await.unwrap();
    assert_eq!(out.status, Some(0));
}

#[tokio::test]
async fn revoked_host_key_refused() {
    let host = TestHost::start("revoked");
    let kh = host.dir().join("kh");
    std::fs::write(
        &kh,
        format!("{}\n@revoked * {}\n", host.known_line(), host.host_key()),
    )
    .unwrap();
    let err = connect(&host.target(), &test_options(&kh, true), load_known(&kh))
        .await
        .err()
        .expect("must refuse");
    assert!(
        matches!(&err, TransportError::HostKeyRevoked { line: 2, file, .. } if file == &kh),
        "{err:?}"
    );
}

#[tokio::test]
async fn hashed_and_bracketed_entries_accepted() {
    let fleet = TestFleet::start(2);
    // host 0: a hashed entry produced by OpenSSH's own `ssh-keygen -H`; host 1: a plain `[addr]:port` entry
    // among wildcard/negation noise.
    let kh = fleet.dir().join("kh");
    std::fs::write(&kh, format!("{}\n", fleet.hosts[0].known_line())).unwrap();
    let st = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&kh)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let hashed = std::fs::read_to_string(&kh).unwrap();
    assert!(hashed.starts_with("|1|"), "{hashed}");
    let h1 = &fleet.hosts[1];
    let extra = format!(
        "[{a}]:{p},!{a} {k}\nUPPER.EXAMPLE,{name} {k} comment\n",
        a = h1.address,
        p = h1.port + 1,
        k = h1.host_key(),
        name = h1.known_name().to_uppercase()
    );
    std::fs::write(&kh, format!("{hashed}{extra}")).unwrap();
    for h in &fleet.hosts {
        let mut t = connect(&h.target(), &test_options(&kh, false), load_known(&kh))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", h.tag));
        assert_eq!(
            t.exec(&RemoteCommand::new(["true"]), None)
                .await
                .unwrap()
                .status,
            Some(0)
        );
    }
}

#[tokio::test]
async fn accept_new_records_then_verifies() {
    let host = TestHost::start_port22("acceptnew");
    let kh = host.dir().join("sub").join("known_hosts");
    let known = load_known(&kh);
    let t = connect(&host.target(), &test_options(&kh, true), known.clone())
        .await
        .unwrap();
    t.close().await;
    let text = std::fs::read_to_string(&kh).unwrap();
    assert_eq!(text, format!("{} {}\n", host.address, host.host_key()));
    // a fresh load, without accept-new, verifies it
    let mut t = connect(&host.target(), &test_options(&kh, false), load_known(&kh))
        .await
        .unwrap();
    assert!(
        t.exec(&RemoteCommand::new(["true"]), None)
            .await
            .unwrap()
            .success()
    );
    // the same in-memory list also knows it (no second line)
    connect(&host.target(), &test_options(&kh, true), known)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), text);
}

#[tokio::test]
async fn accept_new_concurrent_lines() {
    let fleet = TestFleet::start(20);
    let kh = fleet.dir().join("known_hosts");
    std::fs::write(&kh, "# pre-existing\n").unwrap();
    let known = load_known(&kh);
    let opts = test_options(&kh, true);
    let mut tasks = Vec::new();
    for h in &fleet.hosts {
        let (target, opts, known) = (h.target(), opts.clone(), known.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = connect(&target, &opts, known).await?;
            t.exec(&RemoteCommand::new(["true"]), None).await
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().success());
    }
    let text = std::fs::read_to_string(&kh).unwrap();
    let lines: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(lines.len(), 20, "{text}");
    let reloaded = KnownHosts::load(&kh).unwrap();
    assert_eq!(reloaded.len(), 20);
    assert!(reloaded.skipped_lines().is_empty());
    for h in &fleet.hosts {
        assert_eq!(
            lines.iter().filter(|l| **l == h.known_line()).count(),
            1,
            "{}",
            h.known_line()
        );
    }
}

#[tokio::test]
async fn dead_hosts_unreachable_quickly() {
    // a stopped host: connection refused
    let mut host = TestHost::start("dead");
    let kh = host.dir().join("kh");
    host.stop();
    let t0 = Instant::now();
    let err = connect(&host.target(), &test_options(&kh, true), load_known(&kh))
        .await
        .err()
        .expect("must fail");
    assert!(matches!(err, TransportError::Unreachable { .. }), "{err:?}");
    assert!(err.is_unreachable());
    assert!(t0.elapsed() < Duration::from_secs(2));

    // a listener that never speaks SSH: the connect timeout covers the handshake
    let tarpit = tokio::net::TcpListener::bind((host.address.as_str(), 0))
        .await
        .unwrap();
    let mut target = host.target();
    target.port = tarpit.local_addr().unwrap().port();
    let mut opts = test_options(&kh, true);
    opts.connect_timeout = Duration::from_millis(700);
    let t0 = Instant::now();
    let err = connect(&target, &opts, load_known(&kh))
        .await
        .err()
        .expect("must time out");
    let took = t0.elapsed();
    assert!(
        matches!(&err, TransportError::Unreachable { reason, .. } if reason.contains("timed out")),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_secs(3),
        "{took:?}"
    );
    drop(tarpit);
}

#[tokio::test]
async fn auth_failure_lists_tried_keys() {
    let host = TestHost::start("auth");
    let kh = write_known_hosts(&host.dir().join("kh"), [&host].into_iter());
    let other = host.dir().join("other_key");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let mut target = host.target();
    target.key_file = Some(other.clone());
    let mut opts = test_options(&kh, false);
    opts.identity_files = vec![host.dir().join("missing_key")];
    let err = connect(&target, &opts, load_known(&kh))
        .await
        .err()
        .expect("must fail");
    match &err {
        TransportError::Auth { tried, .. } => {
            assert_eq!(tried.len(), 2, "{tried:?}");
            assert_eq!(tried[0], other.display().to_string());
            assert!(tried[1].contains("missing_key"));
        }
        e => panic!("expected Auth, got {e:?}"),
    }
    assert!(err.is_unreachable());
}

/// Keys held by a real `ssh-agent`, reached through the socket `IdentityAgent` names,
/// authenticate a host for which no key file is given; `IdentityAgent none` turns the
/// agent off and the same connection is refused.
#[tokio::test]
async fn ssh_agent_keys_authenticate() {
    use migfleet::transport::ssh::IdentityAgent;
    let host = TestHost::start("agentkeys");
    let kh = write_known_hosts(&host.dir().join("kh"), [&host].into_iter());
    let sock = host.dir().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent runs (openssh-client)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "ssh-agent made no socket");
        std::thread::sleep(Duration::from_millis(10));
    }
    let added = std::process::Command::new("ssh-add")
        .arg(client_key())
        .env("SSH_AUTH_SOCK", &sock)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(added.success(), "ssh-add failed");
    let mut target = host.target();
    target.key_file = None;
    target.identity_agent = IdentityAgent::Socket(sock.clone());
    let mut opts = test_options(&kh, false);
    opts.use_agent = true;
    let mut t = connect(&target, &opts, load_known(&kh))
        .await
        .expect("the agent's key authenticates");
    let out = t
        .exec(&RemoteCommand::new(["echo", "via agent"]), None)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"via agent\n");
    target.identity_agent = IdentityAgent::Off;
    let err = connect(&target, &opts, load_known(&kh))
        .await
        .err()
        .expect("without the agent there is no key");
    assert!(matches!(err, TransportError::Auth { .. }), "{err:?}");
    let _ = agent.kill();
    let _ = agent.wait();
}

#[test]
fn shell_quote_round_trips_through_sh() {
    for arg in HOSTILE {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", shell_quote(arg)))
            .output()
            .unwrap();
        assert_eq!(out.stdout, arg.as_bytes(), "argument {arg:?}");
    }
    // rendered commands: every word survives
    let cmd = RemoteCommand::new(HOSTILE.iter().copied()).env("K", "v $(x)");
    let mut full = cmd.full_argv().unwrap();
    full.insert(0, "printf".to_string());
    full.insert(1, "[%s]".to_string());
    let line = RemoteCommand::new(full.clone()).render().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .unwrap();
    let expect: String = full[2..].iter().map(|a| format!("[{a}]")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), expect);
}
