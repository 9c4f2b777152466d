//! Test hosts: real OpenSSH `sshd` processes on distinct loopback addresses (127.0.x.y), each with its own host key, config, and remote dir; killed on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use migfleet::transport::ssh::{KnownHosts, SshOptions, Target};

pub const SSHD: &str = "/usr/sbin/sshd";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let p = std::env::temp_dir().join(format!(
            "migfleet-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keygen(path: &Path, comment: &str) {
    keygen_type(path, comment, "ed25519");
}

fn keygen_type(path: &Path, comment: &str, key_type: &str) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(path.with_extension("pub"));
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", key_type, "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen not found: install openssh-client (apt-get install -y openssh-server)");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

struct ClientKey {
    _dir: TempDir,
    key: PathBuf,
}

/// The client key of this test run (one ed25519 key per process).
pub fn client_key() -> PathBuf {
    static KEY: OnceLock<ClientKey> = OnceLock::new();
    KEY.get_or_init(|| {
        remove_stale_client_keys();
        let dir = TempDir::new("clientkey");
        let key = dir.path().join("id_ed25519");
        keygen(&key, "migfleet-test-client");
        ClientKey { _dir: dir, key }
    })
    .key
    .clone()
}

/// The per-process client key dir outlives the statics that own it; remove those of dead test processes.
fn remove_stale_client_keys() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("migfleet-test-clientkey-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn require_sshd() {
    assert!(
        Path::new(SSHD).exists(),
        "{SSHD} is missing: install openssh-server (apt-get install -y openssh-server) to run the SSH tests"
    );
    std::fs::create_dir_all("/run/sshd")
        .expect("cannot create /run/sshd (privilege separation dir)");
}

/// A free TCP port on `addr` (bound and released; sshd binds it right after).
fn free_port(addr: &str) -> u16 {
    let l = std::net::TcpListener::bind((addr, 0)).expect("bind loopback address");
    l.local_addr().unwrap().port()
}

/// 127.0.x.y addresses, distinct within a process and spread across processes by pid.
fn next_address() -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let x = 10 + (std::process::id() % 200) + n / 250;
    format!("127.0.{}.{}", x % 255, 1 + n % 250)
}

/// One sshd test host.
pub struct TestHost {
    pub tag: String,
    pub address: String,
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    log_level: &'static str,
}

impl TestHost {
    /// Starts a host on a fresh loopback address and a free port.
    pub fn start(tag: &str) -> TestHost {
        let address = next_address();
        let port = free_port(&address);
        Self::start_at(tag, &address, port)
    }

    /// Starts a host on port 22 of a fresh loopback address (for plain, port-less known_hosts entries).
    pub fn start_port22(tag: &str) -> TestHost {
        Self::start_at(tag, &next_address(), 22)
    }

    pub fn start_at(tag: &str, address: &str, port: u16) -> TestHost {
        require_sshd();
        let dir = TempDir::new(&format!("host-{tag}"));
        let mut h = TestHost {
            tag: tag.to_string(),
            address: address.to_string(),
            port,
            dir,
            child: None,
            log_level: "INFO",
        };
        std::fs::create_dir_all(h.remote_dir()).unwrap();
        keygen(&h.host_key_path(), &format!("hostkey-{tag}"));
        let pubkey = std::fs::read_to_string(client_key().with_extension("pub")).unwrap();
        std::fs::write(h.dir.path().join("authorized_keys"), pubkey).unwrap();
        h.write_config();
        h.launch();
        h
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A directory private to this host, for agents and files.
    pub fn remote_dir(&self) -> PathBuf {
        self.dir.path().join("remote")
    }

    /// Every host key sshd offers: the ed25519 one, and any `restart_with_key_types` made.
    fn host_key_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.host_key_path()];
        for t in ["rsa", "ecdsa"] {
            let p = self.dir.path().join(format!("ssh_host_{t}_key"));
            if p.exists() {
                files.push(p);
            }
        }
        files.retain(|p| p.exists());
        files
    }

    /// Restarts offering only host keys of `types` (`ed25519`, `rsa`, `ecdsa`), new ones.
    pub fn restart_with_key_types(&mut self, types: &[&str]) {
        self.stop();
        for t in ["ed25519", "rsa", "ecdsa"] {
            let p = self.dir.path().join(format!("ssh_host_{t}_key"));
            let _ = std::fs::remove_file(&p);
            let _ = std::fs::remove_file(p.with_extension("pub"));
            if types.contains(&t) {
                keygen_type(&p, &format!("hostkey-{}-{t}", self.tag), t);
            }
        }
        self.write_config();
        self.launch();
    }

    /// The `type AAAA...` public key sshd offers for `key_type`.
    pub fn host_key_of(&self, key_type: &str) -> String {
        let p = self.dir.path().join(format!("ssh_host_{key_type}_key.pub"));
        let text = std::fs::read_to_string(p).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn host_key_path(&self) -> PathBuf {
        self.dir.path().join("ssh_host_ed25519_key")
    }

    fn write_config(&self) {
        let d = self.dir.path();
        let cfg = format!(
            "ListenAddress {addr}\nPort {port}\n{hk}PidFile {pid}\nAuthorizedKeysFile {ak}\n\
PermitRootLogin yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
StrictModes no\nUsePAM no\nMaxStartups 500:30:1000\nMaxSessions 50\nLogLevel {level}\nPrintMotd no\n\
AcceptEnv LANG LC_*\nSubsystem sftp internal-sftp\n",
            addr = self.address,
            port = self.port,
            hk = self
                .host_key_files()
                .iter()
                .map(|k| format!("HostKey {}\n", k.display()))
                .collect::<String>(),
            pid = d.join("sshd.pid").display(),
            ak = d.join("authorized_keys").display(),
            level = self.log_level,
        );
        std::fs::write(d.join("sshd_config"), cfg).unwrap();
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start sshd: install openssh-server");
        // For the simulated reboot, which takes the listener down from inside the host.
        std::fs::write(self.dir.path().join("listener.pid"), child.id().to_string()).unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("sshd for {} exited early ({st}): {}", self.tag, self.log());
            }
            let sa = format!("{}:{}", self.address, self.port).parse().unwrap();
            if TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sshd for {} did not listen on {}:{} within 10 s: {}",
                self.tag,
                self.address,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// SSH connections sshd accepted so far (its `Accepted publickey` log lines).
    pub fn accepted_connections(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// Kills sshd (the address then refuses connections), including one a simulated
    /// reboot started again as a daemon (found by its pid file and its config path).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let config = self.dir.path().join("sshd_config");
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("sshd.pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
            && std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&*config.to_string_lossy()))
        {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }

    /// Restarts logging at `level` (`DEBUG1` shows each forwarded channel's target).
    pub fn restart_with_log_level(&mut self, level: &'static str) {
        self.stop();
        self.log_level = level;
        self.write_config();
        self.launch();
    }

    /// Starts sshd again on the same address, port and key (after `stop`).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Restarts on the same address and port with a NEW host key.
    pub fn restart_with_new_key(&mut self) {
        self.stop();
        keygen(&self.host_key_path(), &format!("hostkey-{}-new", self.tag));
        self.launch();
    }

    /// `ssh-ed25519 AAAA...` (no comment).
    pub fn host_key(&self) -> String {
        let text = std::fs::read_to_string(self.host_key_path().with_extension("pub")).unwrap();
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The name known_hosts records: `addr` on port 22, `[addr]:port` otherwise.
    pub fn known_name(&self) -> String {
        if self.port == 22 {
            self.address.clone()
        } else {
            format!("[{}]:{}", self.address, self.port)
        }
    }

    /// One known_hosts line for this host's current key.
    pub fn known_line(&self) -> String {
        format!("{} {}", self.known_name(), self.host_key())
    }

    /// Connection target (as root, with the test client key).
    pub fn target(&self) -> Target {
        Target {
            host: self.tag.clone(),
            address: self.address.clone(),
            port: self.port,
            user: "root".to_string(),
            key_file: Some(client_key()),
            ..Target::default()
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Several hosts, started in parallel.
pub struct TestFleet {
    pub hosts: Vec<TestHost>,
    dir: TempDir,
}

impl TestFleet {
    pub fn start(n: usize) -> TestFleet {
        let _ = client_key();
        let hosts = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| s.spawn(move || TestHost::start(&format!("h{i}"))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("host start panicked"))
                .collect()
        });
        TestFleet {
            hosts,
            dir: TempDir::new("fleet"),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a known_hosts file listing the given hosts (by index) and returns its path.
    pub fn known_hosts_for(&self, which: &[usize]) -> PathBuf {
        write_known_hosts(
            &self.dir.path().join("known_hosts"),
            which.iter().map(|&i| &self.hosts[i]),
        )
    }

    /// Writes a known_hosts file listing all hosts.
    pub fn known_hosts_all(&self) -> PathBuf {
        write_known_hosts(&self.dir.path().join("known_hosts"), self.hosts.iter())
    }
}

/// Writes `path` with one line per host; returns the path.
pub fn write_known_hosts<'a>(path: &Path, hosts: impl Iterator<Item = &'a TestHost>) -> PathBuf {
    let mut text = String::new();
    for h in hosts {
        text.push_str(&h.known_line());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Options for tests: the given known_hosts, no agent, no default identities, short timeout.
pub fn test_options(known_hosts: &Path, accept_new: bool) -> SshOptions {
    SshOptions {
        known_hosts: known_hosts.to_path_buf(),
        accept_new,
        connect_timeout: Duration::from_secs(10),
        keepalive: Duration::from_secs(15),
        identity_files: Vec::new(),
        use_agent: false,
        config_file: None,
        ..SshOptions::default()
    }
}

pub fn load_known(path: &Path) -> std::sync::Arc<KnownHosts> {
    std::sync::Arc::new(KnownHosts::load(path).unwrap())
}
