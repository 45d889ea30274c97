//! The lightwave-sim fixture images and their `docker save` tarballs, built
//! from nothing but this repository and the running engine (no registry):
//!
//! * `berth-fixture/lightwave-sts:6.6.0`: the installed appliance,
//! * `berth-fixture/lightwave-sts:6.7.0`: a good upgrade,
//! * `berth-fixture/lightwave-sts:6.8.0-broken`: an upgrade that fails half
//!   way (LIGHTWAVE_SIM_UPGRADE=fail): data damaged, the server hangs.
//!
//! Each image is one layer: the static sim binary (also hard linked as
//! `journalctl` and `true`) and the appliance's empty directories, imported
//! as a rootfs tar, then committed once (without a new layer) to set
//! STOPSIGNAL, which the engine's import does not take. The tarballs of 6.7.0 and 6.8.0-broken, plain and gzip,
//! go to `target/berth-fixtures/`.
//!
//! [`ensure`] is idempotent and cheap when nothing changed: an image is
//! rebuilt only when its `berth.fixture.sim` label (the sha256 of the sim
//! binary) or its recipe label differs, a tarball only when it is missing
//! or holds another image id. Test processes run in parallel: the work is
//! serialized by a lock on `target/berth-fixtures/.lock`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth::docker::transport::enc;
use berth::docker::{body, Docker};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const REPO: &str = "berth-fixture/lightwave-sts";
/// The installed appliance.
pub const OLD: &str = "berth-fixture/lightwave-sts:6.6.0";
/// A good upgrade of it.
pub const GOOD: &str = "berth-fixture/lightwave-sts:6.7.0";
/// An upgrade that fails half way and hangs.
pub const BROKEN: &str = "berth-fixture/lightwave-sts:6.8.0-broken";

/// Label with the sha256 of the sim binary in the image.
pub const SIM_LABEL: &str = "berth.fixture.sim";
/// Label with the version of the recipe below: bump [`RECIPE`] whenever the
/// rootfs or the image config changes, so existing images are rebuilt.
pub const RECIPE_LABEL: &str = "berth.fixture.recipe";
const RECIPE: &str = "1";

/// The appliance's data volumes (created by the data container).
pub const DATA_PATHS: [&str; 4] = [
    "/var/lib/vmware",
    "/var/lib/likewise",
    "/etc/likewise",
    "/etc/vmware-sso",
];

/// One fixture image as built.
#[derive(Debug, Clone)]
pub struct Image {
    /// `berth-fixture/lightwave-sts:<tag>`.
    pub reference: String,
    /// `sha256:...`.
    pub id: String,
    /// The tag.
    pub tag: String,
    /// LIGHTWAVE_VERSION in the image.
    pub version: String,
}

/// The `docker save` tarballs of one image.
#[derive(Debug, Clone)]
pub struct Tarballs {
    pub tar: PathBuf,
    pub tar_gz: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Fixtures {
    /// 6.6.0.
    pub old: Image,
    /// 6.7.0.
    pub good: Image,
    /// 6.8.0-broken.
    pub broken: Image,
    pub good_tarballs: Tarballs,
    pub broken_tarballs: Tarballs,
    /// `target/berth-fixtures`.
    pub dir: PathBuf,
    /// The release build of lightwave-sim that is in the images.
    pub sim: PathBuf,
    pub sim_sha256: String,
    /// What this call (re)built: image references and tarball paths (empty
    /// when this process had built or found them already).
    pub rebuilt: Vec<String>,
    /// How long this call took (lock wait included).
    pub elapsed: Duration,
}

impl Fixtures {
    /// The fixture image of a tag ("6.6.0", "6.7.0", "6.8.0-broken").
    pub fn image(&self, tag: &str) -> Option<&Image> {
        [&self.old, &self.good, &self.broken]
            .into_iter()
            .find(|i| i.tag == tag || i.reference == tag)
    }
}

/// What goes into one image.
struct Spec {
    tag: &'static str,
    version: &'static str,
    fail_upgrade: bool,
    save: bool,
}

const SPECS: [Spec; 3] = [
    Spec {
        tag: "6.6.0",
        version: "6.6.0",
        fail_upgrade: false,
        save: false,
    },
    Spec {
        tag: "6.7.0",
        version: "6.7.0",
        fail_upgrade: false,
        save: true,
    },
    // The image says it is 6.8.0 (newer than 6.6.0: the sim attempts the
    // upgrade); LIGHTWAVE_SIM_UPGRADE=fail makes the attempt fail.
    Spec {
        tag: "6.8.0-broken",
        version: "6.8.0",
        fail_upgrade: true,
        save: true,
    },
];

/// Fixtures built by this process already, per engine socket (tests in one
/// process share them).
static CACHE: Mutex<Vec<(PathBuf, Fixtures)>> = Mutex::new(Vec::new());

/// `target/berth-fixtures`.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/berth-fixtures")
}

/// Build (or find) the fixture images and tarballs on the engine `d`.
/// Panics with a clear message when something cannot be built. They are
/// built on the default engine; another engine (a second dockerd, one a
/// test owns) gets them by save and load, so image ids are the same on all.
pub async fn ensure(d: &Docker) -> Fixtures {
    let default = super::engine::engine().await;
    if d.socket() == default.socket() {
        return ensure_here(d).await;
    }
    let mut f = ensure_here(&default).await;
    let start = Instant::now();
    for image in [&f.old, &f.good, &f.broken] {
        if copy_image(&default, d, image).await {
            f.rebuilt
                .push(format!("{} on {}", image.reference, d.socket().display()));
        }
    }
    f.elapsed += start.elapsed();
    f
}

/// Stream `image` from one engine into another unless it is there already.
async fn copy_image(from: &Docker, to: &Docker, image: &Image) -> bool {
    match to.image_inspect(&image.reference).await {
        Ok(v) if v["Id"] == image.id.as_str() => return false,
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("{e}"),
    }
    let saved = from
        .image_save(&image.reference)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    to.image_load(body::reader_body(saved))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    true
}

async fn ensure_here(d: &Docker) -> Fixtures {
    let start = Instant::now();
    let cached = CACHE
        .lock()
        .unwrap()
        .iter()
        .find(|(sock, _)| sock == d.socket())
        .map(|(_, f)| f.clone());
    if let Some(mut f) = cached {
        f.rebuilt.clear();
        f.elapsed = start.elapsed();
        return f;
    }
    let dir = dir();
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    // Other test processes build the same fixtures: one at a time.
    let lock_path = dir.join(".lock");
    let lock = tokio::task::spawn_blocking(move || {
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("{}: {e}", lock_path.display()));
        lock_exclusive(&f).unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
        f
    })
    .await
    .unwrap();

    let (sim, bin) = tokio::task::spawn_blocking(build_sim).await.unwrap();
    let sim_sha256 = hex(&Sha256::digest(&bin));
    let mut rebuilt = vec![];
    let mut images = vec![];
    for spec in &SPECS {
        let (image, fresh) = ensure_image(d, spec, &bin, &sim_sha256).await;
        if fresh {
            rebuilt.push(image.reference.clone());
        }
        images.push(image);
    }
    let mut tarballs = vec![];
    for (spec, image) in SPECS.iter().zip(&images) {
        if spec.save {
            let name = format!("lightwave-sts-{}", spec.tag);
            let t = ensure_tarballs(d, image, &dir, &name, &mut rebuilt).await;
            tarballs.push(t);
        }
    }
    drop(lock);

    let mut images = images.into_iter();
    let mut tarballs = tarballs.into_iter();
    let f = Fixtures {
        old: images.next().unwrap(),
        good: images.next().unwrap(),
        broken: images.next().unwrap(),
        good_tarballs: tarballs.next().unwrap(),
        broken_tarballs: tarballs.next().unwrap(),
        dir,
        sim,
        sim_sha256,
        rebuilt,
        elapsed: start.elapsed(),
    };
    CACHE
        .lock()
        .unwrap()
        .push((d.socket().to_owned(), f.clone()));
    f
}

/// The sim binary, built when it is missing or older than its sources.
/// Calling cargo from every test process costs little alone but queues on
/// cargo's lock while other builds run, so a fresh binary is taken as is.
fn build_sim() -> (PathBuf, Vec<u8>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = root.join("target/x86_64-unknown-linux-gnu/release/lightwave-sim");
    let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let sources = [
        "fixtures/lightwave-sim/Cargo.toml",
        "fixtures/lightwave-sim/src/main.rs",
        ".cargo/config.toml",
    ];
    let fresh = mtime(&exe).is_some_and(|built| {
        sources
            .iter()
            .all(|s| mtime(&root.join(s)).is_some_and(|m| m <= built))
    });
    if fresh {
        let bin = fs::read(&exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        return (exe, bin);
    }
    cargo_build_sim()
}

/// `cargo build --release -p lightwave-sim`; returns the binary's path and
/// bytes. Cargo reports the path (target dir and triple included).
fn cargo_build_sim() -> (PathBuf, Vec<u8>) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "lightwave-sim",
            "--message-format=json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {cargo:?} to build lightwave-sim: {e}"));
    assert!(
        out.status.success(),
        "`cargo build --release -p lightwave-sim` failed ({})",
        out.status
    );
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["target"]["name"] == "lightwave-sim")
        .find_map(|v| v["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/x86_64-unknown-linux-gnu/release/lightwave-sim")
        });
    let bin = fs::read(&exe).unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
    (exe, bin)
}

/// The image of `spec`, imported unless it exists with the same sim and
/// recipe. Returns it and whether it was built now.
async fn ensure_image(d: &Docker, spec: &Spec, bin: &[u8], sim_sha256: &str) -> (Image, bool) {
    let reference = format!("{REPO}:{}", spec.tag);
    let image = |id: String| Image {
        reference: reference.clone(),
        id,
        tag: spec.tag.to_owned(),
        version: spec.version.to_owned(),
    };
    let existing = match d.image_inspect(&reference).await {
        Ok(v) => Some(v),
        Err(e) if e.is_not_found() => None,
        Err(e) => panic!("{e}"),
    };
    if let Some(v) = &existing {
        let labels = &v["Config"]["Labels"];
        if labels[SIM_LABEL] == sim_sha256 && labels[RECIPE_LABEL] == RECIPE {
            return (
                image(v["Id"].as_str().unwrap_or_default().to_owned()),
                false,
            );
        }
    }

    let mut fs = super::images::RootFs::new();
    for dir in ["usr", "usr/sbin", "usr/bin", "bin", "etc", "var", "var/lib"] {
        fs.dir(dir, 0o755);
    }
    fs.file("usr/sbin/lightwave-sim", bin, 0o755);
    fs.hardlink("usr/bin/journalctl", "usr/sbin/lightwave-sim");
    fs.hardlink("bin/true", "usr/sbin/lightwave-sim");
    for dir in DATA_PATHS {
        fs.dir(dir.trim_start_matches('/'), 0o755);
    }
    fs.dir("var/lib/vmware/config", 0o755);
    fs.dir("var/log", 0o755);
    fs.dir("var/log/lightwave", 0o755);
    fs.dir("tmp", 0o1777);

    let mut changes = vec![
        format!("ENV LIGHTWAVE_VERSION={}", spec.version),
        "ENV PATH=/usr/sbin:/usr/bin:/bin".to_owned(),
    ];
    if spec.fail_upgrade {
        changes.push("ENV LIGHTWAVE_SIM_UPGRADE=fail".to_owned());
    }
    changes.extend([
        "ENTRYPOINT [\"/usr/sbin/lightwave-sim\"]".to_owned(),
        format!("LABEL org.opencontainers.image.version={}", spec.version),
        format!("LABEL {SIM_LABEL}={sim_sha256}"),
        format!("LABEL {RECIPE_LABEL}={RECIPE}"),
    ]);
    // The engine's import takes no STOPSIGNAL change (20.10: "stopsignal is
    // not a valid change command"), but a commit takes a whole config: import
    // the rootfs untagged, then commit a never-started container of it with
    // StopSignal set. The commit adds no layer (its diff is empty).
    let rootfs = d
        .image_import(body::full(fs.finish()), "", "", &changes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = match commit_stop_signal(d, &rootfs, spec.tag).await {
        Ok(id) => id,
        Err(e) => {
            let _ = d.image_remove(&rootfs, false).await;
            panic!("{e}");
        }
    };
    // The stale image lost its tag: remove it unless a container uses it.
    if let Some(old) = existing.as_ref().and_then(|v| v["Id"].as_str()) {
        if old != id {
            let _ = d.image_remove(old, false).await;
        }
    }
    (image(id), true)
}

/// Commit a container of image `rootfs` as `REPO:tag` with STOPSIGNAL
/// SIGTERM (the rest of the config comes from the image); returns the id.
async fn commit_stop_signal(d: &Docker, rootfs: &str, tag: &str) -> Result<String, String> {
    let tmp = format!("berth-fixture-build-{}-{tag}", std::process::id());
    let _ = d.container_remove(&tmp, true, false).await;
    d.container_create(&tmp, &json!({ "Image": rootfs }))
        .await
        .map_err(|e| e.to_string())?;
    let doing = format!("committing {tmp} as {REPO}:{tag}");
    let committed = d
        .post_json(
            &format!(
                "/commit?container={}&repo={}&tag={}",
                enc(&tmp),
                enc(REPO),
                enc(tag)
            ),
            Some(&json!({ "StopSignal": "SIGTERM" })),
            &doing,
        )
        .await;
    let _ = d.container_remove(&tmp, true, false).await;
    let committed = committed.map_err(|e| e.to_string())?;
    committed["Id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{doing}: no Id in {committed}"))
}

/// The tarballs of `image`, saved unless both exist and hold its id.
async fn ensure_tarballs(
    d: &Docker,
    image: &Image,
    dir: &Path,
    name: &str,
    rebuilt: &mut Vec<String>,
) -> Tarballs {
    let t = Tarballs {
        tar: dir.join(format!("{name}.tar")),
        tar_gz: dir.join(format!("{name}.tar.gz")),
    };
    let (tar, tar_gz, id) = (t.tar.clone(), t.tar_gz.clone(), image.id.clone());
    let current = tokio::task::spawn_blocking(move || {
        saved_id(&tar, false).as_deref() == Some(id.as_str())
            && saved_id(&tar_gz, true).as_deref() == Some(id.as_str())
    })
    .await
    .unwrap();
    if current {
        return t;
    }
    let reader = d
        .image_save(&image.reference)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (tar, tar_gz) = (t.tar.clone(), t.tar_gz.clone());
    tokio::task::spawn_blocking(move || write_both(reader, &tar, &tar_gz))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("writing {}: {e}", t.tar.display()));
    rebuilt.push(t.tar.display().to_string());
    rebuilt.push(t.tar_gz.display().to_string());
    t
}

/// Copy a `docker save` stream to `tar` and, gzipped, to `tar_gz` in one
/// pass; each file appears whole (temporary name, then rename) or not at all.
fn write_both(mut reader: impl Read, tar: &Path, tar_gz: &Path) -> io::Result<()> {
    let tmp = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(format!(".tmp-{}", std::process::id()));
        PathBuf::from(s)
    };
    let (tar_tmp, gz_tmp) = (tmp(tar), tmp(tar_gz));
    let result = (|| {
        let mut plain = io::BufWriter::new(File::create(&tar_tmp)?);
        let mut gz = flate2::write::GzEncoder::new(
            io::BufWriter::new(File::create(&gz_tmp)?),
            flate2::Compression::default(),
        );
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            plain.write_all(&buf[..n])?;
            gz.write_all(&buf[..n])?;
        }
        plain.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        gz.finish()?
            .into_inner()
            .map_err(|e| e.into_error())?
            .sync_all()?;
        fs::rename(&tar_tmp, tar)?;
        fs::rename(&gz_tmp, tar_gz)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tar_tmp);
        let _ = fs::remove_file(&gz_tmp);
    }
    result
}

/// The image id in a `docker save` tarball (from manifest.json's Config:
/// `<hex>.json` in the legacy layout, `blobs/sha256/<hex>` in OCI layout).
pub fn saved_id(path: &Path, gzip: bool) -> Option<String> {
    let file = File::open(path).ok()?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(io::BufReader::new(file))
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.as_os_str() != "manifest.json" {
            continue;
        }
        let mut text = String::new();
        entry.read_to_string(&mut text).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        let config = v[0]["Config"].as_str()?;
        let hex = config.rsplit('/').next()?.trim_end_matches(".json");
        return Some(format!("sha256:{hex}"));
    }
    None
}

/// flock(LOCK_EX), released when the file closes. (std's File::lock does
/// the same but needs Rust 1.89; the crate's rust-version is 1.85.)
fn lock_exclusive(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a file descriptor that `f` keeps open.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
