//! A real OpenSSH server for a test: `/usr/sbin/sshd -D -e` on 127.0.0.1 and a free port, with
//! a temporary host key and a temporary client key authorized for the current user
//! (`StrictModes no`, so the keys may live in a temporary directory). `.ci/run` installs
//! openssh-server; [`Sshd::available`] says whether this machine has it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait::{POLL, Text, eventually_sync};

/// The sshd binary.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd; killed when dropped.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "greyproxy-test",
            "-f",
        ])
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

impl Sshd {
    /// Whether sshd and the ssh client are installed.
    pub fn available() -> bool {
        Path::new(SSHD).is_file()
            && Command::new("ssh")
                .arg("-V")
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Starts sshd and waits until it accepts connections.
    pub async fn start() -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        keygen(&p("host_key"));
        keygen(&p("id"));
        std::fs::copy(p("id.pub"), p("authorized_keys")).unwrap();
        // sshd refuses to start without its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = crate::daemon::closed_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PidFile {pid}\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nPermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\nLogLevel VERBOSE\n",
            hk = p("host_key").display(),
            ak = p("authorized_keys").display(),
            pid = p("sshd.pid").display(),
        );
        std::fs::write(p("sshd_config"), config).unwrap();
        let log = std::fs::File::create(p("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(p("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut s = Sshd { child, dir, port };
        let log_path = s.dir.path().join("sshd.log");
        let child = &mut s.child;
        eventually_sync("sshd to listen", Duration::from_secs(10), POLL, || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "sshd exited with {st}: {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::net::TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| Text(e.to_string()))
        })
        .await;
        s
    }

    /// The client's private key.
    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("id")
    }

    /// An ssh command line (program and options, no host) that logs in here with the test key
    /// and trusts the temporary host key without asking.
    pub fn ssh_command(&self) -> String {
        format!(
            "ssh -p {} -i {} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            self.port,
            self.identity().display()
        )
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
