//! A host's session with its agent: the greeting checked at the start (an agent speaking
//! another protocol is refused with what to do), and every call bounded in time. Stand-in
//! agents (shell scripts) on local hosts play the agents that misbehave.

use crate::support::migfleet;
use crate::support::testhost::TempDir;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// An agent directory holding `script` as this machine's agent build, and an inventory
/// of one local host using it.
fn stand_in(tag: &str, script: &str, host_vars: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let agent = dir.path().join(format!(
        "migfleet-agent-{}-linux-gnu",
        std::env::consts::ARCH
    ));
    std::fs::write(&agent, script).unwrap();
    std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let inv = dir.path().join("inventory.yml");
    std::fs::write(
        &inv,
        format!("all:\n  hosts:\n    node:\n      ansible_connection: local\n{host_vars}"),
    )
    .unwrap();
    (dir, inv)
}

fn ping(dir: &Path, inv: &Path) -> crate::support::Run {
    migfleet(&[
        "ping",
        "-i",
        inv.to_str().unwrap(),
        "--agent-dir",
        dir.to_str().unwrap(),
    ])
}

#[test]
fn an_agent_speaking_another_protocol_is_refused_with_what_to_do() {
    let hello = r#"{"id":1,"ok":{"op":"hello","agent_version":"0.0.1","protocol_version":1,"arch":"x86_64","hostname":"node","boot_id":"b","pid":1}}"#;
    let (dir, inv) = stand_in(
        "proto",
        &format!("#!/bin/sh\nread line\necho '{hello}'\nexec cat >/dev/null\n"),
        "",
    );
    let r = ping(dir.path(), &inv);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stderr.contains(&format!(
            "the agent on this host (version 0.0.1) speaks protocol 1, this controller speaks {}",
            migfleet_proto::PROTOCOL_VERSION
        )),
        "{}",
        r.shown
    );
}

#[test]
fn an_agent_that_does_not_answer_is_given_up_on_in_time() {
    let (dir, inv) = stand_in(
        "silent",
        "#!/bin/sh\nexec sleep 60\n",
        "      migfleet_agent_timeouts: {hello: 1}\n",
    );
    let started = std::time::Instant::now();
    let r = ping(dir.path(), &inv);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(
        r.stderr
            .contains("the agent did not answer `hello` within 1 s"),
        "{}",
        r.shown
    );
    // Bounded by the timeout, not by the default of 30 s.
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[test]
fn an_agent_writing_an_endless_line_is_a_protocol_error() {
    let (dir, inv) = stand_in(
        "flood",
        "#!/bin/sh\nread line\nexec tr -c '' 'x' < /dev/zero\n",
        "",
    );
    let r = ping(dir.path(), &inv);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(r.stderr.contains("a reply line longer than"), "{}", r.shown);
}

#[test]
fn a_remote_directory_that_cannot_be_made_fails_the_host_at_once() {
    use crate::support::sim::{SimHost, write_inventory};
    use crate::support::testhost::{TestHost, write_known_hosts};
    let host = TestHost::start("nodir");
    let inv = write_inventory(
        &host.dir().join("inventory.yml"),
        &[SimHost::ssh(&host, &[("H100-80GB", 1)])],
    );
    // /proc takes no new directories: the upload script stops before reading its input.
    let extra = host.dir().join("nodir.yml");
    std::fs::write(
        &extra,
        format!(
            "all:\n  hosts:\n    {}:\n      migfleet_remote_dir: /proc/migfleet-cannot-exist/agent\n",
            host.tag
        ),
    )
    .unwrap();
    let kh = write_known_hosts(&host.dir().join("known_hosts"), [&host].into_iter());
    let started = std::time::Instant::now();
    let r = migfleet(&[
        "ping",
        "-i",
        inv.to_str().unwrap(),
        "-i",
        extra.to_str().unwrap(),
        "--known-hosts",
        kh.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{}", r.shown);
    assert!(r.stderr.contains("pushing the agent failed"), "{}", r.shown);
    assert!(
        r.stderr
            .contains("into /proc/migfleet-cannot-exist/agent (migfleet_remote_dir)"),
        "{}",
        r.shown
    );
    // It fails as soon as the host says so, not after a timeout.
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}
