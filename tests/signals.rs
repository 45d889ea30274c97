//! SIGINT and SIGTERM sent to the real binary at chosen moments of a
//! backup, a restore and an upgrade. The moments are picked by watching
//! berth's progress (the `.partial` directory and its archive growing, the
//! wipe helper, the volume filling, the journal), not by sleeping.
//!
//! The end states asserted: a backup directory is whole or absent (no
//! `.partial` left) and the container runs as before; an interrupted
//! restore is written again by the next run and reads back equal; an
//! interrupted upgrade ends recorded in its journal, and `berth resume`
//! finishes whatever a signal left half done.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth::archive::index::{compare, IndexEntry};
use berth::archive::restore::read_index_of;
use berth::docker::Docker;
use serde_json::{json, Value};
use support::appliance::{self, CONFIG_NAME};
use support::engine::Scope;
use support::fixtures;
use support::images::busybox;
use support::journal::{journal, journal_has};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// A busybox command that idles and exits at once on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 0.1; done";
/// Random (incompressible) data in the volume: about 1-2 s of backup.
const BIG_MIB: u64 = 200;
/// Longest wait for a moment to come.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------- running berth

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// From the signal to the exit.
    after_signal: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}, {:.2}s after the signal\n--- stdout\n{}--- stderr\n{}",
            self.code,
            self.after_signal.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// A berth running in the background, its output going to files.
struct Berth {
    child: Child,
    out: PathBuf,
    err: PathBuf,
    signalled: Option<Instant>,
}

impl Berth {
    fn spawn(scratch: &Path, args: &[&str]) -> Berth {
        let (out, err) = (scratch.join("stdout"), scratch.join("stderr"));
        let child = Command::new(BERTH)
            .args(args)
            .env_remove("BERTH_TEST_KILL_AT")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("running berth");
        Berth {
            child,
            out,
            err,
            signalled: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    fn signal(&mut self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(r, 0, "kill");
        self.signalled.get_or_insert_with(Instant::now);
    }

    /// Poll `moment` until it holds (true) or berth exits first (false).
    fn wait_for(&mut self, what: &str, mut moment: impl FnMut() -> bool) -> bool {
        let t = Instant::now();
        loop {
            if moment() {
                return true;
            }
            if self.exited() {
                return false;
            }
            assert!(t.elapsed() < PATIENCE, "{what} never came");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(mut self) -> Run {
        let status = self.child.wait().unwrap();
        Run {
            code: status.code(),
            stdout: fs::read_to_string(&self.out).unwrap(),
            stderr: fs::read_to_string(&self.err).unwrap(),
            after_signal: self.signalled.map(|t| t.elapsed()).unwrap_or_default(),
        }
    }
}

fn berth(scratch: &Path, args: &[&str]) -> Run {
    Berth::spawn(scratch, args).finish()
}

fn sig_name(sig: i32) -> &'static str {
    if sig == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

/// Exit 130 with a message that says so.
#[track_caller]
fn assert_interrupted(r: &Run, why: &str) {
    assert_eq!(r.code, Some(130), "{why}: {r}");
    assert!(r.stderr.contains("interrupted"), "{why}: {r}");
    assert!(
        r.after_signal < Duration::from_secs(10),
        "{why}: slow to stop: {r}"
    );
}

// ---------------------------------------------- a volume of random data

/// A busybox container `app` with a named volume at /data holding
/// `data/big` (BIG_MIB of random bytes) and a small file; `running`: it
/// idles (and stops at once on SIGTERM).
async fn big_volume(s: &Scope, running: bool) -> (String, PathBuf) {
    let d = &s.docker;
    let image = busybox(d).await;
    let vol = s.name("vol");
    s.track_volume(&vol);
    let v = d.volume_create(&json!({ "Name": vol })).await.unwrap();
    let mounts = json!([{"Type": "volume", "Source": vol, "Target": "/data"}]);
    let fill = s
        .run(
            "fill",
            json!({
                "Image": image,
                "Cmd": ["sh", "-c", format!(
                    "dd if=/dev/urandom of=/data/big bs=1048576 count={BIG_MIB} 2>/dev/null && echo small > /data/small")],
                "HostConfig": {"Mounts": mounts, "NetworkMode": "none"},
            }),
        )
        .await;
    assert_eq!(
        d.container_wait(&fill).await.unwrap(),
        0,
        "filling the volume"
    );
    let app = json!({
        "Image": image,
        "Cmd": ["sh", "-c", IDLE],
        "HostConfig": {"Mounts": mounts, "NetworkMode": "none"},
    });
    let app = if running {
        s.run("app", app).await
    } else {
        s.create("app", app).await
    };
    // The engine's own directory of the volume: where a restore's progress
    // shows (the tests run on the engine's host, as root).
    let host = PathBuf::from(v["Mountpoint"].as_str().unwrap());
    assert!(
        host.join("big").is_file(),
        "{}: the volume must be readable from here",
        host.display()
    );
    (app, host)
}

fn size_of(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The one entry of `out` ending in `.partial`, if any.
fn partial_in(out: &Path) -> Option<PathBuf> {
    fs::read_dir(out).ok()?.find_map(|e| {
        let p = e.ok()?.path();
        p.to_str()?.ends_with(".partial").then_some(p)
    })
}

fn entries_of(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn started_at(d: &Docker, c: &str) -> (bool, String) {
    let i = d.container_inspect_raw(c).await.unwrap();
    (
        i.pointer("/State/Running").and_then(Value::as_bool) == Some(true),
        i.pointer("/State/StartedAt")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Moment {
    /// The `.partial` directory was just made.
    Early,
    /// A third of the archive is written.
    Middle,
    /// 90% of the archive is written.
    Late,
    /// The manifest is being written, or the backup is done.
    End,
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_during_backup_leaves_no_partial_and_restarts_the_container() {
    let s = Scope::new("sig-backup").await;
    let d = &s.docker;
    let (app, _) = big_volume(&s, true).await;
    let work = s.dir("work");
    let archive_full = BIG_MIB << 20;
    for (i, (sig, moment)) in [
        (libc::SIGINT, Moment::Early),
        (libc::SIGTERM, Moment::Middle),
        (libc::SIGINT, Moment::Late),
        (libc::SIGTERM, Moment::Early),
        (libc::SIGINT, Moment::Middle),
        (libc::SIGTERM, Moment::End),
    ]
    .into_iter()
    .enumerate()
    {
        let why = format!("{} at {moment:?}", sig_name(sig));
        let out = work.join(format!("out-{i}"));
        let (_, started_before) = started_at(d, &app).await;
        let mut b = Berth::spawn(
            &work,
            &["backup", &app, "--stop", "--out", out.to_str().unwrap()],
        );
        let reached = b.wait_for(&why, || {
            let Some(p) = partial_in(&out) else {
                // The backup may be done already: only for the last moment.
                return moment == Moment::End && !entries_of(&out).is_empty();
            };
            let written = size_of(&p.join("data.tar.gz"));
            match moment {
                Moment::Early => true,
                Moment::Middle => written > archive_full / 3,
                Moment::Late => written > archive_full * 9 / 10,
                Moment::End => p.join("manifest.json").exists(),
            }
        });
        assert!(reached, "{why}: berth ended first: {}", b.finish());
        b.signal(sig);
        let r = b.finish();
        eprintln!(
            "backup, {why}: exit {:?} {:.2}s after the signal",
            r.code,
            r.after_signal.as_secs_f64()
        );
        let left = entries_of(&out);
        if moment == Moment::End && r.code == Some(0) {
            // Past the last point where stopping was safe: the backup is
            // whole (and only then may it be there).
            assert_eq!(left.len(), 1, "{why}: {left:?}");
            assert!(!left[0].ends_with(".partial"), "{why}: {left:?}");
            let v = berth(
                &work,
                &["verify", out.join(&left[0]).to_str().unwrap(), "--deep"],
            );
            assert_eq!(v.code, Some(0), "{why}: the backup left must verify: {v}");
        } else {
            assert_interrupted(&r, &why);
            assert!(left.is_empty(), "{why}: left behind in --out: {left:?}");
        }
        // `--stop` stopped it; berth started it again.
        let (running, started) = started_at(d, &app).await;
        assert!(running, "{why}: the container is not running");
        assert_ne!(started, started_before, "{why}: it was never stopped?");
    }
}

async fn index_of(d: &Docker, c: &str) -> Vec<IndexEntry> {
    read_index_of(d, c, "/data", &[]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_during_restore_stops_it_and_the_next_restore_finishes() {
    let s = Scope::new("sig-restore").await;
    let d = &s.docker;
    let (app, host) = big_volume(&s, false).await;
    let work = s.dir("work");
    let out = work.join("out");
    let r = berth(&work, &["backup", &app, "--out", out.to_str().unwrap()]);
    assert_eq!(r.code, Some(0), "backup: {r}");
    let backup = PathBuf::from(r.stdout.lines().last().unwrap().trim());
    let genuine = index_of(d, &app).await;
    // Something the backup lacks: only a restore that wrote removes it.
    fs::write(host.join("marker"), b"not in the backup\n").unwrap();
    let marked = index_of(d, &app).await;
    let big = host.join("big");
    let full = BIG_MIB << 20;
    let wipe_helper = |pid: u32| {
        let prefix = format!("berth-wipe-{pid}-");
        let d = d.clone();
        move || {
            let list = containers_named(&d, &prefix);
            !list.is_empty()
        }
    };

    // Before anything is written: berth has hashed the archive (the fast
    // check) and is half through decompressing it (the deep check).
    let archive = size_of(&backup.join("data.tar.gz"));
    let mut b = Berth::spawn(&work, &["restore", backup.to_str().unwrap()]);
    let pid = b.pid();
    let reached = b.wait_for("the deep check", || read_bytes(pid) > archive * 3 / 2);
    assert!(reached, "berth ended first: {}", b.finish());
    b.signal(libc::SIGINT);
    let r = b.finish();
    assert_interrupted(&r, "SIGINT while checking");
    assert!(r.stderr.contains("before anything was written"), "{r}");
    assert_eq!(index_of(d, &app).await, marked, "the volume was written");

    for (sig, moment) in [
        (libc::SIGTERM, "wipe"),
        (libc::SIGINT, "upload"),
        (libc::SIGTERM, "read-back"),
    ] {
        let why = format!("{} during the {moment}", sig_name(sig));
        let mut b = Berth::spawn(&work, &["restore", backup.to_str().unwrap()]);
        let helper = wipe_helper(b.pid());
        let reached = match moment {
            "wipe" => b.wait_for(&why, helper),
            "upload" => b.wait_for(&why, || {
                let n = size_of(&big);
                n > 0 && n < full / 2 && !host.join("marker").exists()
            }),
            // Written again by this run: emptied first, then full.
            _ => {
                let mut emptied = false;
                b.wait_for(&why, || {
                    emptied |= size_of(&big) < full;
                    emptied && size_of(&big) == full
                })
            }
        };
        assert!(reached, "{why}: berth ended first: {}", b.finish());
        b.signal(sig);
        let r = b.finish();
        eprintln!(
            "restore, {why}: exit {:?} {:.2}s after the signal",
            r.code,
            r.after_signal.as_secs_f64()
        );
        if moment == "read-back" && r.code == Some(0) {
            // Past the last safe point: the restore finished and proved it.
            assert!(r.stdout.contains("every path reads back equal"), "{r}");
        } else {
            assert_interrupted(&r, &why);
            assert!(r.stderr.contains("run the restore again"), "{why}: {r}");
        }
        // The next restore puts everything back and proves it.
        let again = berth(&work, &["restore", backup.to_str().unwrap()]);
        assert_eq!(again.code, Some(0), "{why}: restore again: {again}");
        assert_eq!(
            index_of(d, &app).await,
            genuine,
            "{why}: after restoring again"
        );
        fs::write(host.join("marker"), b"not in the backup\n").unwrap();
    }
}

/// Bytes a process has read so far (`rchar` of /proc/PID/io).
fn read_bytes(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The containers whose name starts with `prefix`, asked from a thread of
/// our own (the callers poll from blocking code).
fn containers_named(d: &Docker, prefix: &str) -> Vec<berth::docker::model::ContainerSummary> {
    let (d, prefix) = (d.clone(), prefix.to_owned());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                d.container_list(&json!({"name": [prefix.clone()]}))
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.name().starts_with(&prefix))
                    .collect()
            })
    })
    .join()
    .unwrap()
}

// ------------------------------------------------------------ upgrade

fn outcome(run: &Path) -> Option<(String, Value)> {
    let last = journal(run).last().cloned()?;
    Some((last["outcome"].as_str()?.to_owned(), last))
}

fn run_dir(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.join("journal.jsonl").exists())
}

/// A data path's content index, the config bind mount cut out (as berth
/// does: the upgrade writes the config file there and removes it again).
async fn data_index(d: &Docker, app: &str, path: &str) -> Vec<IndexEntry> {
    let excluded: Vec<String> = if path == "/var/lib/vmware" {
        vec!["config".into()]
    } else {
        vec![]
    };
    read_index_of(d, app, path, &excluded).await.unwrap()
}

struct Upgrade {
    scope: Scope,
    app: String,
    old_id: String,
    old_image: String,
    config_src: PathBuf,
    data_before: Vec<(String, Vec<IndexEntry>)>,
}

impl Upgrade {
    async fn up(test: &str) -> Upgrade {
        let scope = Scope::new(test).await;
        let a = appliance::up(&scope, "6.6.0").await;
        let d = &scope.docker;
        let c = d.container_inspect_raw(&a.app).await.unwrap();
        let secret = scope.dir("secret");
        let config_src = secret.join(CONFIG_NAME);
        fs::write(&config_src, appliance::config_text("standalone")).unwrap();
        fs::set_permissions(&config_src, fs::Permissions::from_mode(0o600)).unwrap();
        let mut data_before = vec![];
        for p in fixtures::DATA_PATHS {
            data_before.push((p.to_string(), data_index(d, &a.app, p).await));
        }
        Upgrade {
            app: a.app.clone(),
            old_id: c["Id"].as_str().unwrap().to_owned(),
            old_image: c["Image"].as_str().unwrap().to_owned(),
            config_src,
            data_before,
            scope,
        }
    }

    fn spawn(&self, root: &Path, image_file: &Path) -> Berth {
        Berth::spawn(
            root.parent().unwrap(),
            &[
                "upgrade",
                &self.app,
                "--image-file",
                image_file.to_str().unwrap(),
                "--profile",
                "lightwave",
                "--config-file",
                self.config_src.to_str().unwrap(),
                "--backup-root",
                root.to_str().unwrap(),
                "--json",
                // No success line ever: the watch lasts until the timeout,
                // so a signal sent once it began lands in it.
                "--success",
                "never-logged-by-the-fixture",
                "--timeout",
                "60s",
            ],
        )
    }

    /// The rollback tag berth put on the shared old image goes with the scope.
    fn track_rollback_tag(&self, run: &Path) {
        let plan: Value =
            serde_json::from_slice(&fs::read(run.join("plan.json")).unwrap()).unwrap();
        if let Some(t) = plan["rollback_tag"].as_str() {
            self.scope.track_image(t);
        }
    }

    /// The old container, on the old image, running, with its data as
    /// before; nothing half-done left in the run directory.
    async fn assert_rolled_back(&self, run: &Path, why: &str) {
        let d = &self.scope.docker;
        let c = d.container_inspect_raw(&self.app).await.unwrap();
        assert_eq!(
            c["Id"],
            self.old_id.as_str(),
            "{why}: not the old container"
        );
        assert_eq!(c["Image"], self.old_image.as_str(), "{why}: image");
        assert_eq!(c["State"]["Running"], true, "{why}: not running");
        for (p, before) in &self.data_before {
            let now = data_index(d, &self.app, p).await;
            let diffs = compare(before, &now);
            assert!(
                diffs.is_empty(),
                "{why}: {p} differs from before the upgrade: {}",
                diffs
                    .iter()
                    .take(10)
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        assert!(
            !run.join("backup.partial").exists(),
            "{why}: backup.partial left"
        );
    }
}

/// One signal at a moment of the upgrade: berth rolls back by itself
/// (documented: a signal starts the rollback) and records the outcome;
/// `resume` then has nothing left to do and says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_signal_during_upgrade_rolls_back_and_resume_has_nothing_left() {
    let u = Upgrade::up("sig-upgrade").await;
    let fx = fixtures::ensure(&u.scope.docker).await;
    let work = u.scope.dir("work");
    // The image load is no safe point: that signal takes effect in the watch.
    for (i, (sig, step)) in [
        (libc::SIGTERM, "backup"),
        (libc::SIGINT, "load"),
        (libc::SIGINT, "watch"),
    ]
    .into_iter()
    .enumerate()
    {
        let why = format!("{} at {step}", sig_name(sig));
        let root = work.join(format!("runs-{i}"));
        fs::create_dir_all(&root).unwrap();
        let mut b = u.spawn(&root, &fx.good_tarballs.tar);
        let reached = b.wait_for(&why, || {
            run_dir(&root).is_some_and(|r| journal_has(&r, step, "begin"))
        });
        assert!(reached, "{why}: berth ended first: {}", b.finish());
        b.signal(sig);
        let r = b.finish();
        let run = run_dir(&root).unwrap();
        u.track_rollback_tag(&run);
        let (out, last) = outcome(&run).unwrap_or_else(|| panic!("{why}: no outcome: {r}"));
        eprintln!(
            "upgrade, {why}: exit {:?} {:.2}s after the signal, {out}",
            r.code,
            r.after_signal.as_secs_f64()
        );
        let code = match out.as_str() {
            "aborted" => 1,
            "rolled-back" => 3,
            _ => panic!("{why}: outcome {out}: {r}"),
        };
        assert_eq!(r.code, Some(code), "{why}: {r}");
        assert!(
            last.to_string().contains("interrupted by a signal"),
            "{why}: the journal does not say a signal caused it: {last}"
        );
        u.assert_rolled_back(&run, &why).await;
        let again = berth(&work, &["resume", run.to_str().unwrap(), "--json"]);
        assert_eq!(again.code, Some(code), "{why}: resume: {again}");
        assert!(again.stdout.contains(&out), "{why}: {again}");
        u.assert_rolled_back(&run, &why).await;
    }
}

/// A second signal while the rollback restores the data: exit 4, and
/// `berth resume` finishes the rollback, data verified.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_signal_during_the_rollback_is_finished_by_resume() {
    let u = Upgrade::up("sig-twice").await;
    let fx = fixtures::ensure(&u.scope.docker).await;
    let root = u.scope.dir("runs");
    let mut b = u.spawn(&root, &fx.good_tarballs.tar);
    let why = "SIGINT at watch, SIGTERM at restore";
    let reached = b.wait_for(why, || {
        run_dir(&root).is_some_and(|r| journal_has(&r, "watch", "begin"))
    });
    assert!(reached, "berth ended before the watch: {}", b.finish());
    b.signal(libc::SIGINT);
    let reached = b.wait_for(why, || {
        run_dir(&root).is_some_and(|r| journal_has(&r, "restore", "begin"))
    });
    assert!(reached, "berth ended before restoring: {}", b.finish());
    b.signal(libc::SIGTERM);
    let r = b.finish();
    let run = run_dir(&root).unwrap();
    u.track_rollback_tag(&run);
    eprintln!(
        "{why}: exit {:?} {:.2}s after the first signal",
        r.code,
        r.after_signal.as_secs_f64()
    );
    assert_eq!(r.code, Some(4), "{why}: {r}");
    assert!(
        r.stdout.contains("interrupted") || r.stderr.contains("interrupted"),
        "{r}"
    );
    assert!(outcome(&run).is_none(), "{why}: no outcome yet");

    let res = berth(root.as_path(), &["resume", run.to_str().unwrap(), "--json"]);
    assert_eq!(res.code, Some(3), "{why}: resume: {res}");
    let (out, _) = outcome(&run).expect("resume recorded an outcome");
    assert_eq!(out, "rolled-back");
    u.assert_rolled_back(&run, why).await;
}
