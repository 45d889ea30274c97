//! `berth status` (no DIR) and `berth prune` against the real engine.
//!
//! One backup root holds what real runs of berth leave: a plain backup,
//! a finished upgrade, then two `--keep-old` upgrades of one container
//! (the older one no longer usable by `berth rollback`, the newer one
//! still), and an upgrade of a second container killed with SIGKILL while
//! it watched the new version.
//! Beside them: a `.partial` a killed backup left, one a running writer
//! holds locked, directories that are not berth's, a stale and a live wipe
//! helper, the same for a pre-copy's delta helper, and a stale restore
//! stand-in (these last are made as berth makes them: a berth killed in
//! the middle of a wipe cannot be timed).
//!
//! The assertions are on the engine (which tags, containers and images
//! exist) and on the directories left, not only on what berth printed.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use berth::docker::{body, Docker};
use serde_json::{json, Value};
use support::cli::Run;
use support::engine::Scope;
use support::images::RootFs;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(args: &[&str], env: &[(&str, &str)]) -> Run {
    let t = Instant::now();
    let mut c = Command::new(BERTH);
    c.args(args).env_remove("BERTH_TEST_KILL_AT");
    for (k, v) in env {
        c.env(k, v);
    }
    Run::from(c.output().expect("running berth"), t.elapsed())
}

/// A tiny application image: busybox's shell, printing `say` then waiting
/// (and stopping at once on SIGTERM). Each version is its own image.
async fn app_image(d: &Docker, repo: &str, tag: &str, say: &str) -> String {
    let bin = fs::read("/bin/busybox").expect("busybox-static (apt-get install busybox-static)");
    let mut fs_ = RootFs::new();
    fs_.file("bin/busybox", &bin, 0o755);
    for a in ["sh", "sleep", "echo"] {
        fs_.symlink(&format!("bin/{a}"), "busybox");
    }
    fs_.dir("data", 0o755);
    let cmd = format!("trap 'exit 0' TERM; echo '{say}'; while :; do sleep 1; done");
    let changes = vec![
        "ENV PATH=/bin".to_owned(),
        format!("CMD [\"sh\", \"-c\", {}]", json!(cmd)),
    ];
    d.image_import(body::full(fs_.finish()), repo, tag, &changes)
        .await
        .unwrap()
}

/// `docker save` of `image` into `path`.
async fn save(d: &Docker, image: &str, path: &Path) {
    let reader = d.image_save(image).await.unwrap();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut r = reader;
        let mut f = fs::File::create(&path).unwrap();
        std::io::copy(&mut r, &mut f).unwrap();
    })
    .await
    .unwrap();
}

struct Setup {
    scope: Scope,
    root: PathBuf,
    /// The containers' names.
    app: String,
    other: String,
    /// Runs an image of its own, upgraded to one that fails.
    third: String,
    third_repo: String,
    v1_id: String,
    /// v2, v3, v4, bad.
    files: Vec<PathBuf>,
}

impl Setup {
    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    /// `berth upgrade C --image-file F` watching for the new version's line.
    fn upgrade(&self, c: &str, file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Run {
        let mut args = vec![
            "upgrade",
            c,
            "--image-file",
            file.to_str().unwrap(),
            "--backup-root",
            self.root.to_str().unwrap(),
            "--watch",
            "logs",
            "--success",
            "upgraded ok",
            "--timeout",
            "60s",
            "--stop-timeout",
            "5",
            "--json",
        ];
        args.extend(extra);
        let r = berth(&args, env);
        self.track_tags();
        r
    }

    /// The rollback tags the plans name: removed with the scope.
    fn track_tags(&self) {
        for dir in dirs(&self.root) {
            if let Ok(b) = fs::read(dir.join("plan.json")) {
                let p: Value = serde_json::from_slice(&b).unwrap();
                self.scope.track_image(p["rollback_tag"].as_str().unwrap());
            }
        }
    }

    async fn exists(&self, container: &str) -> bool {
        self.d().container_exists(container).await.unwrap()
    }

    async fn image(&self, reference: &str) -> bool {
        self.d().image_inspect(reference).await.is_ok()
    }
}

fn dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

fn run_dirs_of(root: &Path, c: &str) -> Vec<PathBuf> {
    dirs(root)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with(&format!("{c}-")) && n.contains("-upgrade")
        })
        .collect()
}

fn plan_of(run: &Path) -> Value {
    serde_json::from_slice(&fs::read(run.join("plan.json")).unwrap()).unwrap()
}

/// Create a container named like a berth helper, as berth creates it.
async fn helper(s: &Setup, name: &str, labels: Value) -> String {
    s.scope.track_container(name);
    s.d()
        .container_create(
            name,
            &json!({"Image": s.v1_id, "Labels": labels, "HostConfig": {"NetworkMode": "none"}}),
        )
        .await
        .unwrap()
}

async fn setup() -> Setup {
    let scope = Scope::new("prune").await;
    let d = scope.docker.clone();
    let repo = format!("{}/app", scope.prefix);
    let other_repo = format!("{}/other", scope.prefix);
    let v1_id = app_image(&d, &repo, "v1", "v1 up").await;
    app_image(&d, &repo, "v2", "upgraded ok").await;
    app_image(&d, &repo, "v3", "upgraded ok").await;
    app_image(&d, &repo, "v4", "upgraded ok").await;
    app_image(&d, &repo, "bad", "upgrade FAILED").await;
    let third_repo = format!("{}/third", scope.prefix);
    app_image(&d, &third_repo, "v1", "v1 up").await;
    scope.track_image(&format!("{third_repo}:v1"));
    d.image_tag(&v1_id, &other_repo, "v1").await.unwrap();
    for t in ["v1", "v2", "v3", "v4", "bad"] {
        scope.track_image(&format!("{repo}:{t}"));
    }
    scope.track_image(&format!("{other_repo}:v1"));
    let files_dir = scope.dir("images");
    let mut files = vec![];
    for t in ["v2", "v3", "v4", "bad"] {
        let f = files_dir.join(format!("{t}.tar"));
        save(&d, &format!("{repo}:{t}"), &f).await;
        files.push(f);
    }
    let make = |what: &str, image: String| {
        let vol = scope.name(&format!("{what}-data"));
        scope.track_volume(&vol);
        (
            what.to_owned(),
            json!({"Image": image, "HostConfig": {"NetworkMode": "none",
                "Mounts": [{"Type": "volume", "Source": vol, "Target": "/data"}]}}),
        )
    };
    let (a, a_cfg) = make("app", format!("{repo}:v1"));
    let (b, b_cfg) = make("other", format!("{other_repo}:v1"));
    let app = scope.run(&a, a_cfg).await;
    let other = scope.run(&b, b_cfg).await;
    let (c, c_cfg) = make("third", format!("{third_repo}:v1"));
    let third = scope.run(&c, c_cfg).await;
    let root = scope.dir("root");
    Setup {
        scope,
        root,
        app,
        other,
        third,
        third_repo,
        v1_id,
        files,
    }
}

fn names(v: &Value, key: &str, field: &str) -> BTreeSet<String> {
    v[key]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| x[field].as_str().unwrap_or("").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_lists_leftovers_and_prune_removes_exactly_the_safe_ones() {
    let s = setup().await;
    let root = s.root.to_str().unwrap().to_owned();

    // A plain backup, a finished upgrade, then two --keep-old upgrades of the app.
    let r = berth(&["backup", &s.app, "--out", &root, "--json"], &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let backup = PathBuf::from(r.json()["dir"].as_str().unwrap());
    for (f, keep) in s.files.iter().zip([false, true, true]) {
        // Each run directory is named by the second it started in.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let r = s.upgrade(&s.app, f, if keep { &["--keep-old"] } else { &[] }, &[]);
        assert_eq!(r.code, Some(0), "{r}");
    }
    let app_runs = run_dirs_of(&s.root, &s.app);
    assert_eq!(app_runs.len(), 3, "{app_runs:?}");
    let (r0, r1, r2) = (
        app_runs[0].clone(),
        app_runs[1].clone(),
        app_runs[2].clone(),
    );
    let (p0, p1, p2) = (plan_of(&r0), plan_of(&r1), plan_of(&r2));
    let tag = |p: &Value| p["rollback_tag"].as_str().unwrap().to_owned();
    let aside = |p: &Value| p["aside_name"].as_str().unwrap().to_owned();

    // The other container's upgrade is killed while it watches.
    let r = s.upgrade(
        &s.other,
        &s.files[0],
        &[],
        &[("BERTH_TEST_KILL_AT", "watch:begin")],
    );
    assert_eq!(r.signal, Some(9), "{r}");
    let killed = run_dirs_of(&s.root, &s.other).pop().expect("its run");
    let pk = plan_of(&killed);

    // The third container's upgrade fails and is rolled back; a newer
    // backup follows. Its image then keeps only the rollback tag as a name.
    let r = s.upgrade(&s.third, &s.files[3], &["--failure", "FAILED"], &[]);
    assert_eq!(r.code, Some(3), "{r}");
    let failed = run_dirs_of(&s.root, &s.third).pop().expect("its run");
    let pf = plan_of(&failed);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = berth(&["backup", &s.third, "--out", &root, "--json"], &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let third_backup = PathBuf::from(r.json()["dir"].as_str().unwrap());
    let third_image = s.d().container_inspect_raw(&s.third).await.unwrap()["Image"].clone();
    s.d()
        .image_remove(&format!("{}:v1", s.third_repo), false)
        .await
        .unwrap();

    // What a killed backup leaves, what a running one holds, and what is not berth's.
    let stale = s.root.join(format!("{}-20200101T000000Z.partial", s.app));
    let busy = s.root.join(format!("{}-20200101T000001Z.partial", s.app));
    for p in [&stale, &busy] {
        fs::create_dir(p).unwrap();
        fs::write(p.join("data.tar.gz"), b"half").unwrap();
    }
    let _writer = berth::files::try_lock_dir(&busy).unwrap().expect("free");
    let notes = s.root.join("notes");
    fs::create_dir(&notes).unwrap();
    fs::write(notes.join("manifest.json"), b"{\"mine\": true}").unwrap();
    let photos = s.root.join("photos");
    fs::create_dir(&photos).unwrap();
    fs::write(photos.join("a.jpg"), b"jpg").unwrap();

    // Helpers: one whose berth is gone, one whose berth (this pid) lives,
    // a restore stand-in whose berth holds no lock.
    let gone = {
        let mut c = Command::new("true").spawn().unwrap();
        c.wait().unwrap();
        c.id()
    };
    let now = berth::clock::now_unix();
    let stale_wipe = format!("berth-wipe-{gone}-{now}");
    let live_wipe = format!("berth-wipe-{}-{now}", std::process::id());
    let stand_in = format!("{}-berth-restore-{now}", s.app);
    let vol = s.scope.name("app-data");
    for n in [&stale_wipe, &live_wipe] {
        helper(&s, n, json!({"berth.helper": "wipe", "berth.volume": vol})).await;
    }
    // Pre-copy delta helpers of the app, one stale and one live.
    let stale_delta = format!("berth-delta-{gone}-{now}");
    let live_delta = format!("berth-delta-{}-{now}", std::process::id());
    for n in [&stale_delta, &live_delta] {
        helper(
            &s,
            n,
            json!({"berth.helper": "delta", "berth.container": s.app}),
        )
        .await;
    }
    helper(&s, &stand_in, json!({"berth.helper": "restore"})).await;

    // ------------------------------------------------------------ status
    let r = berth(&["status", "--root", &root, "--json"], &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let st = r.json();
    let app = &st["by_container"][&s.app];
    let dir_kinds: BTreeSet<(String, String)> = app["dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_owned(),
                d["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let p = |p: &Path, k: &str| (p.display().to_string(), k.to_owned());
    for want in [
        p(&backup, "backup"),
        p(&r0, "run"),
        p(&r1, "run"),
        p(&r2, "run"),
        p(&stale, "partial"),
        p(&busy, "partial"),
    ] {
        assert!(dir_kinds.contains(&want), "{want:?} not in {dir_kinds:?}");
    }
    for d in app["dirs"].as_array().unwrap() {
        if d["kind"] != "partial" {
            assert!(d["bytes"].as_u64().unwrap() > 0, "no size: {d}");
        }
        if d["path"] == busy.display().to_string() {
            assert_eq!(d["owned"], true, "{d}");
        }
        if d["path"] == r2.display().to_string() {
            assert_eq!(d["run"]["rollback_possible"], true, "{d}");
        }
        if d["path"] == r1.display().to_string() || d["path"] == r0.display().to_string() {
            assert_eq!(d["run"]["state"], "upgraded", "{d}");
            assert_eq!(d["run"]["rollback_possible"], false, "{d}");
        }
    }
    assert_eq!(
        names(app, "tags", "reference"),
        [tag(&p0), tag(&p1), tag(&p2)].into(),
        "{app}"
    );
    for t in app["tags"].as_array().unwrap() {
        let made_by = [(&p0, &r0), (&p1, &r1), (&p2, &r2)]
            .into_iter()
            .find(|(p, _)| t["reference"] == tag(p).as_str())
            .unwrap()
            .1;
        assert_eq!(t["run"], made_by.display().to_string(), "{t}");
    }
    assert_eq!(
        names(app, "containers", "name"),
        [
            aside(&p1),
            aside(&p2),
            stand_in.clone(),
            stale_delta.clone(),
            live_delta.clone()
        ]
        .into(),
        "{app}"
    );
    let other = &st["by_container"][&s.other];
    assert_eq!(other["dirs"][0]["run"]["state"], "unfinished", "{other}");
    assert_eq!(names(other, "tags", "reference"), [tag(&pk)].into());
    assert_eq!(names(other, "containers", "name"), [aside(&pk)].into());
    let unknown = &st["by_container"]["(unknown container)"];
    let wipes = names(unknown, "containers", "name");
    assert!(
        wipes.contains(&stale_wipe) && wipes.contains(&live_wipe),
        "{unknown}"
    );
    let text = berth(&["status", "--root", &root], &[]);
    assert!(
        text.stdout.contains("UNFINISHED") && text.stdout.contains(&tag(&p1)),
        "{text}"
    );

    // ----------------------------------------------------- prune --dry-run
    let before = dirs(&s.root);
    let r = berth(
        &["prune", &root, "--keep-last", "1", "--dry-run", "--json"],
        &[],
    );
    assert_eq!(r.code, Some(0), "{r}");
    let dry = r.json();
    let would: BTreeSet<String> = dry["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["path"]
                .as_str()
                .or(i["reference"].as_str())
                .or(i["name"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = [
        failed.display().to_string(),
        r0.display().to_string(),
        r1.display().to_string(),
        backup.display().to_string(),
        stale.display().to_string(),
        tag(&p0),
        tag(&p1),
        aside(&p1),
        stale_wipe.clone(),
        stale_delta.clone(),
        stand_in.clone(),
    ]
    .into();
    // Other tests' stale helpers on this shared engine may be listed too.
    assert!(would.is_superset(&expected), "{would:?}");
    for extra in would.difference(&expected) {
        assert!(
            extra.contains("berth-wipe-")
                || extra.contains("berth-delta-")
                || extra.contains("-berth-restore-"),
            "{extra}"
        );
    }
    assert_eq!(dirs(&s.root), before, "--dry-run removed a directory");
    for c in [&aside(&p1), &stale_wipe, &stale_delta, &stand_in] {
        assert!(s.exists(c).await, "--dry-run removed {c}");
    }
    assert!(s.image(&tag(&p1)).await, "--dry-run removed {}", tag(&p1));

    // ------------------------------------------------------------- prune
    let removed_bytes: u64 = [&r0, &r1, &backup]
        .iter()
        .map(|p| berth::leftovers::du(p))
        .sum();
    let r = berth(&["prune", &root, "--keep-last", "1", "--json"], &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let done = r.json();
    assert!(
        done["freed_bytes"].as_u64().unwrap() >= removed_bytes,
        "{done}"
    );
    // Directories: exactly the old runs, the old backup and the stale partial went.
    let left: BTreeSet<PathBuf> = dirs(&s.root).into_iter().collect();
    let want: BTreeSet<PathBuf> = [
        r2.clone(),
        killed.clone(),
        third_backup.clone(),
        busy.clone(),
        notes,
        photos,
    ]
    .into();
    assert_eq!(left, want);
    // The engine: the old runs' tags and aside container went; what the
    // newer keep-old run and the killed run need stayed.
    for t in [tag(&p0), tag(&p1)] {
        assert!(!s.image(&t).await, "{t} stayed");
    }
    assert!(!s.exists(&aside(&p1)).await, "{} stayed", aside(&p1));
    for t in [tag(&p2), tag(&pk)] {
        assert!(s.image(&t).await, "{t} was removed");
    }
    for c in [
        aside(&p2),
        aside(&pk),
        s.other.clone(),
        live_wipe.clone(),
        live_delta.clone(),
    ] {
        assert!(s.exists(&c).await, "{c} was removed");
    }
    for c in [&stale_wipe, &stale_delta, &stand_in] {
        assert!(!s.exists(c).await, "{c} stayed");
    }
    // The failed run went, but not the tag that is now the only name of
    // the image the third container runs again.
    assert!(s.image(&tag(&pf)).await, "{} was removed", tag(&pf));
    let c = s.d().container_inspect_raw(&s.third).await.unwrap();
    assert_eq!(c["Image"], third_image);
    let why = done["kept"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["target"] == tag(&pf).as_str())
        .map(|k| k["why"].as_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(why.contains("last name of an image"), "{done}");
    // The image the removed tag named is still there (other containers use it).
    assert!(s.image(&s.v1_id).await, "the v1 image was removed");
    // What berth rollback needs still works: the newer run rolls back.
    drop(_writer);
    let r = berth(&["rollback", r2.to_str().unwrap(), "--json"], &[]);
    assert_eq!(r.code, Some(0), "{r}");
    let c = s.d().container_inspect_raw(&s.app).await.unwrap();
    assert_eq!(c["Id"], p2["container_id"], "the old container is back");
}
