//! The pre-copy's delta helper (issue 25) against the real engines: berth's
//! own binary in a helper container walks a volume and writes a tar that
//! must index exactly as the engine's own archive of the same volume.
//!
//! - A full walk (since the epoch, no index before) equals the engine's
//!   archive entry by entry and in the same order.
//! - After a writer changed every kind of thing (including an overwrite of
//!   the same size with its mtime set back, which size and mtime cannot
//!   see), the pre-copy's index without the removed paths, with the delta
//!   on top, equals the engine's archive of the changed volume.
//!
//! On the default engine and on Podman (`podman_*`, which the engine
//! matrix also runs on Podman 5).

mod support;

use std::io::BufReader;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use berth::archive::backup::Level;
use berth::archive::delta::since_of;
use berth::archive::delta_helper::{DeltaFiles, DeltaHelper, DeltaOf};
use berth::archive::index::{compare, read_index, IndexEntry};
use berth::archive::merge::merged;
use berth::archive::restore::{index_of_tar, read_index_of};
use berth::docker::body;
use flate2::read::GzDecoder;
use serde_json::{json, Value};
use support::engine::Scope;
use support::images::busybox;
use support::scene::podman;
use support::tree::{hard_tree, MUTATE};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
/// A busybox command that idles and exits at once on SIGTERM.
const IDLE: &str = "trap 'exit 0' TERM; while :; do sleep 0.1; done";

/// What MUTATE does not: a same-size overwrite whose mtime is put back
/// (only the ctime shows it), a rename and a new hard link.
const HIDDEN: &str = r#"set -e
cd /data
touch -r setgid-dir/inside /tmp/ref
printf 'IN\n' > setgid-dir/inside
touch -r /tmp/ref setgid-dir/inside
mv added.txt renamed.txt
ln added-dir/x/y y-link
"#;

fn mounts(vol: &str) -> Value {
    json!([{"Type": "volume", "Source": vol, "Target": "/data"}])
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

/// The helper's delta of /data since `since_ns` against `before`, written
/// as a backup writes an archive: the index it wrote (which must be the
/// archive's own), the removed paths and the entries walked.
async fn delta(
    s: &Scope,
    img: &str,
    vol: &str,
    c: &str,
    before: &[IndexEntry],
    since_ns: i128,
) -> (Vec<IndexEntry>, Vec<String>, u64) {
    let d = &s.docker;
    let v = DeltaOf {
        path: "/data",
        before,
        excluded: &[],
        // Podman's archive names every entry as owned by the container's
        // user (root here); Docker's names the real owners.
        owner: d.podman().map(|_| (0, 0)),
    };
    let dir = s.dir(&format!("delta-{since_ns}"));
    let h = DeltaHelper::start(d, Path::new(BERTH), img, mounts(vol), &[v], c)
        .await
        .unwrap();
    let to = DeltaFiles {
        dir: dir.clone(),
        slug: "data.delta".into(),
        method: Level::Default.method(),
        encrypt_to: vec![],
    };
    let r = h.write_delta(0, &v, since_ns, to).await;
    h.remove().await.unwrap();
    let (entry, r) = r.unwrap();
    let open = |name: &str| std::fs::File::open(dir.join(name)).unwrap();
    let idx = read_index(BufReader::new(open(&entry.index))).unwrap();
    let archived = index_of_tar(GzDecoder::new(open(&entry.archive))).unwrap();
    assert_eq!(archived, idx, "the index file is the archive's");
    assert_eq!(
        (r.counts.changed, entry.entries),
        (idx.len() as u64, idx.len() as u64)
    );
    (idx, r.removed, r.counts.walked)
}

fn paths(i: &[IndexEntry]) -> Vec<&str> {
    i.iter().map(|e| e.path.as_str()).collect()
}

async fn run_in(s: &Scope, c: &str, script: &str) {
    let out = s
        .docker
        .exec_run(c, &["sh".into(), "-c".into(), script.into()])
        .await
        .unwrap();
    assert_eq!(
        out.exit_code,
        0,
        "{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn delta_matches_the_engine(s: Scope) {
    let d = &s.docker;
    let img = busybox(d).await;
    let vol = s.volume("vol").await;
    let cfg =
        json!({"Image": img, "Cmd": ["sh", "-c", IDLE], "HostConfig": {"Mounts": mounts(&vol)}});
    let c = s.run("app", cfg).await;
    d.archive_put(&c, "/", body::full(hard_tree()))
        .await
        .unwrap();
    // Nothing but the writer below changes ctimes after `since`.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let since = since_of(now_ns());

    let engine = read_index_of(d, &c, "/data", &[]).await.unwrap();
    let (full, removed, walked) = delta(&s, &img, &vol, &c, &[], 0).await;
    assert_eq!(compare(&engine, &full), vec![], "a full walk");
    assert_eq!(paths(&full), paths(&engine), "the walk's order");
    assert_eq!((removed.len(), walked), (0, engine.len() as u64));

    run_in(&s, &c, MUTATE).await;
    run_in(&s, &c, HIDDEN).await;
    let after = read_index_of(d, &c, "/data", &[]).await.unwrap();
    let (changed, removed, walked) = delta(&s, &img, &vol, &c, &engine, since).await;
    assert_eq!(walked, after.len() as u64);
    assert!(changed.len() < after.len(), "the delta is not everything");
    let inside = changed.iter().find(|e| e.path == "data/setgid-dir/inside");
    assert!(
        inside.is_some(),
        "the hidden overwrite: {:?}",
        paths(&changed)
    );
    assert!(
        removed.iter().any(|p| p == "data/a/b/c/deep.txt"),
        "{removed:?}"
    );
    assert_eq!(
        compare(
            &after,
            &merged("data", &engine, &changed, &removed).unwrap().state
        ),
        vec![],
        "the pre-copy with the delta on top"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn helper_delta_indexes_as_the_engines_archive() {
    delta_matches_the_engine(Scope::new("delta").await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_helper_delta_indexes_as_the_engines_archive() {
    delta_matches_the_engine(Scope::on(podman().await, "delta-podman")).await;
}

/// A delta that cannot be taken is one error naming the volume, and no
/// helper outlives it: neither the one that failed nor one a killed berth
/// left (found by its label on the next start).
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_delta_is_one_error_and_leaves_no_helper() {
    let s = Scope::new("delta-fail").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let vol = s.volume("vol").await;
    let c = s.name("app");
    let v = DeltaOf {
        path: "/no/such/dir",
        before: &[],
        excluded: &[],
        owner: None,
    };
    let helpers = || async {
        let f = json!({"label": ["berth.helper=delta", format!("berth.container={c}")]});
        d.container_list(&f).await.unwrap().len()
    };
    let left = DeltaHelper::start(d, Path::new(BERTH), &img, mounts(&vol), &[v], &c)
        .await
        .unwrap();
    // As if berth had been killed here: the next start removes it.
    std::mem::forget(left);
    assert_eq!(helpers().await, 1);
    let h = DeltaHelper::start(d, Path::new(BERTH), &img, mounts(&vol), &[v], &c)
        .await
        .unwrap();
    assert_eq!(helpers().await, 1, "the stale helper is gone");
    let to = DeltaFiles {
        dir: s.dir("out"),
        slug: "x.delta".into(),
        method: Level::Default.method(),
        encrypt_to: vec![],
    };
    let e = h.write_delta(0, &v, 0, to).await.unwrap_err().to_string();
    h.remove().await.unwrap();
    assert!(
        e.contains("finding what changed in /no/such/dir") && e.contains("exited with"),
        "{e}"
    );
    assert_eq!(helpers().await, 0);
}
