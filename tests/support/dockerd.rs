//! Engines besides the default one: the shared second engine (rollout tests
//! run one appliance per engine) and engines a test owns outright, so it can
//! stop and restart them in the middle of an operation.
//!
//! Each is a `dockerd` with its own socket, data root, exec root (and so its
//! own containerd) and pid file, without a bridge or iptables rules, in a
//! network namespace of its own: a dockerd started with `--bridge=none`
//! deletes the host's `docker0`, the default engine's bridge.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::docker::Docker;

/// The second engine's socket (`scripts/docker-up --second` starts it).
pub const SECOND_SOCKET: &str = "/run/berth-docker2/docker.sock";

/// The shared second engine, started (by `scripts/docker-up --second`) when
/// it does not answer. Fails loudly, like `engine::engine`.
pub async fn second_engine() -> Docker {
    let sock = Path::new(SECOND_SOCKET);
    if let Ok(d) = Docker::connect(sock).await {
        return d;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/docker-up");
    let status = tokio::task::spawn_blocking(move || {
        Command::new(&script)
            .arg("--second")
            .stdin(Stdio::null())
            .status()
    })
    .await
    .unwrap();
    match status {
        Ok(s) if s.success() => {}
        other => panic!(
            "`scripts/docker-up --second` failed ({other:?}); these tests need a second engine"
        ),
    }
    Docker::connect(sock)
        .await
        .unwrap_or_else(|e| panic!("second engine on {SECOND_SOCKET}: {e}"))
}

/// A dockerd this test owns: started by `start`, stopped and removed (data
/// root included) on drop.
pub struct Dockerd {
    pub socket: PathBuf,
    run: PathBuf,
    root: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Dockerd {
    /// Start a private engine; `tag` names its directories
    /// (`/run/berth-<tag>-<pid>`, `/var/lib/berth-<tag>-<pid>`).
    pub async fn start(tag: &str) -> Dockerd {
        let name = format!("berth-{tag}-{}", std::process::id());
        let run = Path::new("/run").join(&name);
        let root = Path::new("/var/lib").join(&name);
        let mut d = Dockerd {
            socket: run.join("docker.sock"),
            log: std::env::temp_dir().join(format!("{name}.log")),
            run,
            root,
            child: None,
        };
        d.up().await;
        d
    }

    /// A client for this engine.
    pub async fn docker(&self) -> Docker {
        Docker::connect(&self.socket)
            .await
            .unwrap_or_else(|e| panic!("private engine {}: {e}", self.socket.display()))
    }

    /// Stop the engine (SIGTERM, as systemd would; SIGKILL after 30 s).
    /// Its containers stop with it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Start it again (same data root: images, volumes and containers kept).
    pub async fn restart(&mut self) {
        self.stop();
        self.up().await;
    }

    async fn up(&mut self) {
        assert!(self.child.is_none(), "engine already running");
        fs::create_dir_all(&self.run).unwrap();
        fs::create_dir_all(&self.root).unwrap();
        let log = fs::File::create(&self.log).unwrap();
        let child = Command::new("unshare")
            .args(["--net", "dockerd"])
            .arg(format!("--host=unix://{}", self.socket.display()))
            .arg(format!("--data-root={}", self.root.display()))
            .arg(format!("--exec-root={}", self.run.join("exec").display()))
            .arg(format!(
                "--pidfile={}",
                self.run.join("dockerd.pid").display()
            ))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting unshare --net dockerd (install docker.io): {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if Docker::connect(&self.socket).await.is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("dockerd exited ({status}); see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("dockerd did not answer in 60 s; see {}", self.log.display());
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.stop();
        // dockerd leaves its default network namespace bind-mounted in the
        // exec root; detach it, or the directory cannot be removed.
        let netns = self.run.join("exec/netns/default");
        if let Ok(c) = std::ffi::CString::new(netns.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2(2) with a valid C string; failure is harmless.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = fs::remove_dir_all(&self.root);
        let _ = fs::remove_dir_all(&self.run);
        let _ = fs::remove_file(&self.log);
    }
}
