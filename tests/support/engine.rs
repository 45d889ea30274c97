//! The engine every test uses, and a scope that removes what a test made.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use berth::docker::{transport, Docker};
use serde_json::{json, Value};

/// Connect to the engine. There is no silent skip: without an engine the
/// test fails, and says how to get one.
pub async fn engine() -> Docker {
    let sock = transport::socket_from(None).expect("DOCKER_HOST");
    match Docker::connect(&sock).await {
        Ok(d) => d,
        Err(e) => panic!(
            "these tests need a Docker engine ({e}); start one with `just docker-up`{}",
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                " (CI=true: failing, not skipping)"
            } else {
                ""
            }
        ),
    }
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Everything a test creates is named with its scope's prefix and removed
/// when the scope drops, also when the test fails.
pub struct Scope {
    pub docker: Docker,
    pub prefix: String,
    containers: Mutex<Vec<String>>,
    volumes: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
    dirs: Mutex<Vec<PathBuf>>,
}

impl Scope {
    pub async fn new(test: &str) -> Scope {
        Scope::on(engine().await, test)
    }

    /// A scope on another engine (the second one, one the test owns).
    pub fn on(docker: Docker, test: &str) -> Scope {
        let prefix = format!(
            "berth-test-{}-{}-{}",
            test.replace('_', "-"),
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        Scope {
            docker,
            prefix,
            containers: Mutex::default(),
            volumes: Mutex::default(),
            images: Mutex::default(),
            dirs: Mutex::default(),
        }
    }

    /// A unique name for a resource of this test.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    pub fn track_container(&self, name: &str) {
        self.containers.lock().unwrap().push(name.to_owned());
    }
    pub fn track_volume(&self, name: &str) {
        self.volumes.lock().unwrap().push(name.to_owned());
    }
    pub fn track_image(&self, name: &str) {
        self.images.lock().unwrap().push(name.to_owned());
    }

    /// A fresh host directory, removed with the scope.
    pub fn dir(&self, what: &str) -> PathBuf {
        let p = std::env::temp_dir().join(self.name(what));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        self.dirs.lock().unwrap().push(p.clone());
        p
    }

    /// Create a named volume `<prefix>-<what>`, removed with the scope.
    pub async fn volume(&self, what: &str) -> String {
        let name = self.name(what);
        self.track_volume(&name);
        self.docker
            .volume_create(&json!({ "Name": name }))
            .await
            .unwrap();
        name
    }

    /// Create (not start) a container named `<prefix>-<what>`.
    pub async fn create(&self, what: &str, config: Value) -> String {
        let name = self.name(what);
        self.track_container(&name);
        self.docker.container_create(&name, &config).await.unwrap();
        name
    }

    /// Create and start.
    pub async fn run(&self, what: &str, config: Value) -> String {
        let name = self.create(what, config).await;
        self.docker.container_start(&name).await.unwrap();
        name
    }

    /// Remove containers (with their anonymous volumes), volumes, images.
    fn cleanup(&self) {
        let docker = self.docker.clone();
        let prefix = self.prefix.clone();
        let mut containers = std::mem::take(&mut *self.containers.lock().unwrap());
        let volumes = std::mem::take(&mut *self.volumes.lock().unwrap());
        let images = std::mem::take(&mut *self.images.lock().unwrap());
        for d in std::mem::take(&mut *self.dirs.lock().unwrap()) {
            let _ = std::fs::remove_dir_all(d);
        }
        // Drop runs inside the test's runtime: clean up on a thread of our own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // Also whatever berth made from our names (renamed-aside
                // containers, helpers).
                if let Ok(list) = docker
                    .container_list(&json!({"name": [prefix.clone()]}))
                    .await
                {
                    for c in list.iter().filter(|c| !c.name().is_empty()) {
                        containers.push(c.name().to_owned());
                    }
                }
                // Remove dependants before what they depend on.
                containers.reverse();
                for c in containers {
                    let _ = docker.container_remove(&c, true, true).await;
                }
                for v in volumes {
                    let _ = docker.volume_remove(&v, true).await;
                }
                for i in images {
                    let _ = docker.image_remove(&i, true).await;
                }
            })
        })
        .join()
        .unwrap();
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Seconds from `stopped`'s last stop to `started`'s last start (two
/// container inspects, or one twice), as the engine recorded them.
pub fn engine_downtime(stopped: &Value, started: &Value) -> f64 {
    let at = |c: &Value, k: &str| {
        let s = c["State"][k].as_str().unwrap_or_default();
        berth::clock::parse_rfc3339(s).unwrap_or_else(|| panic!("State.{k} {s:?}"))
    };
    (at(started, "StartedAt") - at(stopped, "FinishedAt")) as f64 / 1e9
}
