//! The reference appliance layout on the lightwave-sim fixture images (see
//! /work/shared/reference/lightwave-container-upgrade.md):
//!
//! * a data container `<name>_data`, created and never started, whose
//!   anonymous volumes hold the four data paths,
//! * a host directory bind mounted at /var/lib/vmware/config holding
//!   `lightwave-server.cfg` (with the admin password) during setup and
//!   upgrades only,
//! * the app container: `--volumes-from` the data container, the config bind,
//!   `--privileged --net=host`, no restart policy.
//!
//! Privileged needs an engine that may grant every capability: an engine
//! that runs without some (Docker 20.10 in a container whose bounding set
//! lacks CAP_SYS_RESOURCE: "unable to apply caps: operation not
//! permitted") cannot start privileged containers at all. [`privileged`]
//! probes that once; without it the appliance runs unprivileged and
//! [`Appliance::privileged`] says so. BERTH_FIXTURE_PRIVILEGED=0/1 overrides
//! the probe.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use std::collections::BTreeMap;

use berth::archive::index::IndexEntry;
use berth::archive::restore::read_index_of;
use berth::docker::containers::LogOptions;
use berth::docker::Docker;
use serde_json::{json, Value};

use super::engine::Scope;
use super::fixtures::{self, DATA_PATHS, REPO};

/// Where the config directory is mounted in the app container.
pub const CONFIG_MOUNT: &str = "/var/lib/vmware/config";
pub const CONFIG_NAME: &str = "lightwave-server.cfg";
pub const INSTALLED_VERSION: &str = "/var/lib/likewise/installed-version";
pub const DATA_MDB: &str = "/var/lib/vmware/vmdir/data.mdb";

pub const SETUP_COMPLETE: &str = "Setup complete.";
pub const STARTED: &str = "Lightwave server started.";
pub const STOPPED: &str = "Lightwave server stopped.";
/// What a successful upgrade logs, in this order.
pub const UPGRADE_LINES: [&str; 6] = [
    "Running schema patch",
    "Schema patch finished",
    "Starting vmdir in standalone mode",
    "Running vdcupgrade",
    "Directory upgrade success.",
    "Upgrade complete.",
];
/// What the failing upgrade (6.8.0-broken) logs last, in this order.
pub const FAILURE_LINES: [&str; 3] = [
    "vdcupgrade failed. Resolve issues in /var/log/lightwave/vdcupgrade.log before retrying.",
    "Directory upgrade failure.",
    "Upgrade failed.",
];
/// How long setup may take before the appliance counts as broken.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// One appliance: its containers and its host config directory.
#[derive(Debug, Clone)]
pub struct Appliance {
    /// The data container (created, never started).
    pub data: String,
    /// The app container (running).
    pub app: String,
    /// The host directory mounted at /var/lib/vmware/config.
    pub config_dir: PathBuf,
    /// `<config_dir>/lightwave-server.cfg` (removed after setup).
    pub config_file: PathBuf,
    /// The image reference the app runs.
    pub image: String,
    /// Whether the app runs privileged (see [`privileged`]).
    pub privileged: bool,
}

/// The image reference of a fixture version ("6.6.0" ->
/// "berth-fixture/lightwave-sts:6.6.0"); a full reference passes through.
pub fn image_ref(version: &str) -> String {
    if version.contains(':') || version.contains('/') {
        version.to_owned()
    } else {
        format!("{REPO}:{version}")
    }
}

/// The reference config file, with `deployment` as given ("standalone").
pub fn config_text(deployment: &str) -> String {
    format!(
        "deployment={deployment}\n\
         domain=vsphere.local\n\
         admin=Administrator\n\
         password=Admin!23\n\
         first-instance=true\n\
         site-name=Default-first-site\n\
         hostname=localhost\n"
    )
}

/// Write `<dir>/lightwave-server.cfg` with mode 0600; returns its path.
pub fn write_config_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join(CONFIG_NAME);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// The data container's config: anonymous volumes for the four data paths.
/// `/bin/true` as entrypoint and command: started by mistake, it exits 0.
pub fn data_config(image: &str) -> Value {
    let volumes: serde_json::Map<String, Value> = DATA_PATHS
        .iter()
        .map(|p| (p.to_string(), json!({})))
        .collect();
    json!({
        "Image": image,
        "Entrypoint": ["/bin/true"],
        "Cmd": ["/bin/true"],
        "Volumes": volumes,
    })
}

/// The app container's config, as in the reference `docker run`
/// (`privileged`: see [`privileged`]).
pub fn app_config(image: &str, data: &str, config_dir: &Path, privileged: bool) -> Value {
    json!({
        "Image": image,
        "HostConfig": {
            "VolumesFrom": [data],
            "Binds": [format!("{}:{CONFIG_MOUNT}", config_dir.display())],
            "Privileged": privileged,
            "NetworkMode": "host",
            "RestartPolicy": {"Name": "no"},
        },
    })
}

/// Stand up the appliance on fixture `version` with a scope's names
/// (`<prefix>-lw_data`, `<prefix>-lw`, a scope directory); removed with the
/// scope. Panics when setup does not complete.
pub async fn up(scope: &Scope, version: &str) -> Appliance {
    let data = scope.name("lw_data");
    let app = scope.name("lw");
    // Tracked before they exist, so a failed setup is cleaned up too; the
    // scope removes in reverse order: the app before the data container.
    scope.track_container(&data);
    scope.track_container(&app);
    let dir = scope.dir("lw-config");
    up_named(&scope.docker, &data, &app, &dir, version)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Stand up the appliance with explicit names: create the data container,
/// write the config file, create and start the app container, wait for
/// `Setup complete.` then `Lightwave server started.`, remove the config
/// file again (it holds the admin password).
pub async fn up_named(
    d: &Docker,
    data: &str,
    app: &str,
    config_dir: &Path,
    version: &str,
) -> Result<Appliance, String> {
    fixtures::ensure(d).await;
    let privileged = privileged(d).await;
    let image = image_ref(version);
    let config_file = write_config_file(config_dir, &config_text("standalone"));
    let a = Appliance {
        data: data.to_owned(),
        app: app.to_owned(),
        config_dir: config_dir.to_owned(),
        config_file,
        image,
        privileged,
    };
    d.container_create(data, &data_config(&a.image))
        .await
        .map_err(|e| e.to_string())?;
    d.container_create(app, &app_config(&a.image, data, config_dir, privileged))
        .await
        .map_err(|e| e.to_string())?;
    d.container_start(app).await.map_err(|e| e.to_string())?;
    wait_for_lines(d, app, &[SETUP_COMPLETE, STARTED], SETUP_TIMEOUT).await?;
    a.remove_config();
    Ok(a)
}

impl Appliance {
    /// Write the reference config file again (mode 0600), as the upgrade
    /// procedure does before the new container starts.
    pub fn write_config(&self) {
        write_config_file(&self.config_dir, &config_text("standalone"));
    }

    /// Write the config file with other content.
    pub fn write_config_text(&self, text: &str) {
        write_config_file(&self.config_dir, text);
    }

    /// Remove the config file (no error when it is gone).
    pub fn remove_config(&self) {
        let _ = std::fs::remove_file(&self.config_file);
    }

    /// The config of an app container on `image` with this appliance's
    /// volumes and config directory (the same HostConfig as the app).
    pub fn app_config(&self, image: &str) -> Value {
        app_config(
            &image_ref(image),
            &self.data,
            &self.config_dir,
            self.privileged,
        )
    }

    pub async fn logs(&self, d: &Docker, container: &str) -> String {
        logs(d, container).await
    }

    pub async fn read_file(&self, d: &Docker, container: &str, path: &str) -> Option<Vec<u8>> {
        read_file(d, container, path).await
    }

    /// The installed version recorded in the volumes (read through the
    /// data container).
    pub async fn installed_version(&self, d: &Docker) -> Option<String> {
        installed_version(d, &self.data).await
    }

    /// data.mdb in the volumes (read through the data container).
    pub async fn data_mdb(&self, d: &Docker) -> Option<Vec<u8>> {
        read_file(d, &self.data, DATA_MDB).await
    }
}

static PRIVILEGED: Mutex<Option<bool>> = Mutex::new(None);

/// Whether this engine can start a privileged container (probed once per
/// process with a throwaway container of the 6.6.0 fixture that runs
/// `/bin/true`; BERTH_FIXTURE_PRIVILEGED=0/1 overrides).
pub async fn privileged(d: &Docker) -> bool {
    match std::env::var("BERTH_FIXTURE_PRIVILEGED").as_deref() {
        Ok("0") => return false,
        Ok("1") => return true,
        _ => {}
    }
    if let Some(p) = *PRIVILEGED.lock().unwrap() {
        return p;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let probe = format!("berth-fixture-probe-{}-{nanos}", std::process::id());
    let config = json!({
        "Image": fixtures::OLD,
        "Entrypoint": ["/bin/true"],
        "HostConfig": {"Privileged": true, "NetworkMode": "host"},
    });
    d.container_create(&probe, &config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let works = d.container_start(&probe).await.is_ok();
    if works {
        let _ = d.container_wait(&probe).await;
    }
    let _ = d.container_remove(&probe, true, true).await;
    *PRIVILEGED.lock().unwrap() = Some(works);
    works
}

/// A container's logs so far, stdout and stderr interleaved.
pub async fn logs(d: &Docker, container: &str) -> String {
    let opts = LogOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut s = d
        .container_logs(container, &opts)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut text = String::new();
    while let Some((_, b)) = s.next().await.unwrap_or_else(|e| panic!("{e}")) {
        text.push_str(&String::from_utf8_lossy(&b));
    }
    text
}

/// Wait until the container logs `line` (a whole line, trimmed).
pub async fn wait_for_line(
    d: &Docker,
    container: &str,
    line: &str,
    timeout: Duration,
) -> Result<(), String> {
    wait_for_lines(d, container, &[line], timeout).await
}

/// Wait until the container has logged all `lines` in this order (other
/// lines may come between). Fails when the container stops first or the
/// timeout passes; the error holds the logs.
pub async fn wait_for_lines(
    d: &Docker,
    container: &str,
    lines: &[&str],
    timeout: Duration,
) -> Result<(), String> {
    let follow = async {
        let opts = LogOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut s = d
            .container_logs(container, &opts)
            .await
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        loop {
            let chunk = s.next().await.map_err(|e| e.to_string())?;
            if let Some((_, b)) = &chunk {
                text.push_str(&String::from_utf8_lossy(b));
            }
            if found_in_order(&text, lines) {
                return Ok(());
            }
            if chunk.is_none() {
                return Err("the container stopped".to_owned());
            }
        }
    };
    let why = match tokio::time::timeout(timeout, follow).await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => format!("no such lines after {timeout:?}"),
    };
    Err(format!(
        "waiting for {lines:?} in the logs of {container}: {why}; logs:\n{}",
        logs(d, container).await
    ))
}

fn found_in_order(text: &str, lines: &[&str]) -> bool {
    let mut want = lines.iter().peekable();
    for l in text.lines() {
        if want.peek().is_some_and(|w| l.trim() == **w) {
            want.next();
        }
    }
    want.peek().is_none()
}

/// The content of a regular file in a container (running or not; through
/// the archive endpoint), None when the path does not exist.
pub async fn read_file(d: &Docker, container: &str, path: &str) -> Option<Vec<u8>> {
    let (_, reader) = match d.archive_get(container, path).await {
        Ok(r) => r,
        Err(e) if e.is_not_found() => return None,
        Err(e) => panic!("{e}"),
    };
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().unwrap_or_else(|e| panic!("{path}: {e}")) {
            let mut entry = entry.unwrap_or_else(|e| panic!("{path}: {e}"));
            if entry.header().entry_type().is_file() {
                let mut data = vec![];
                std::io::Read::read_to_end(&mut entry, &mut data)
                    .unwrap_or_else(|e| panic!("{path}: {e}"));
                return Some(data);
            }
        }
        None
    })
    .await
    .unwrap()
}

/// /var/lib/likewise/installed-version in a container, trimmed.
pub async fn installed_version(d: &Docker, container: &str) -> Option<String> {
    read_file(d, container, INSTALLED_VERSION)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
}

/// What berth leaves out of a data path's backup: the config directory's
/// mountpoint inside /var/lib/vmware.
pub fn excluded(path: &str) -> Vec<String> {
    if path == "/var/lib/vmware" {
        vec!["config".into()]
    } else {
        vec![]
    }
}

/// The content index of every data path, read through `container` (the
/// app, or the data container, which outlives the app whatever happens to
/// it), with what berth leaves out left out.
pub async fn data_indexes(d: &Docker, container: &str) -> BTreeMap<String, Vec<IndexEntry>> {
    let mut out = BTreeMap::new();
    for p in DATA_PATHS {
        let idx = read_index_of(d, container, p, &excluded(p))
            .await
            .unwrap_or_else(|e| panic!("reading {container}:{p}: {e}"));
        out.insert(p.to_owned(), idx);
    }
    out
}
