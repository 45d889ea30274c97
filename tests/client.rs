//! The Engine API client against the real engine: every call, asserted on
//! what the engine reports. Error paths that a real engine cannot produce
//! on demand (no socket, not Docker, an ancient API) need no engine: they
//! are in tests/offline.rs.

mod support;

use std::io::Read;

use berth::docker::{body, containers::LogOptions, stream::Channel};
use berth::error::Kind;
use serde_json::{json, Value};
use support::engine::Scope;
use support::images::{busybox, RootFs};

#[tokio::test(flavor = "multi_thread")]
async fn negotiates_a_version_in_range() {
    let s = Scope::new("version").await;
    let d = &s.docker;
    assert!(d.api() >= berth::docker::MIN_API && d.api() <= berth::docker::MAX_API);
    let v = d.version().await.unwrap();
    let engine_api = berth::docker::ApiVersion::parse(&v.api_version).unwrap();
    assert_eq!(d.api(), engine_api.min(berth::docker::MAX_API));
    assert!(!v.version.is_empty() && v.os == "linux", "{v:?}");
    // The host the engine runs on is this one (the engines of the tests are local).
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_eq!(d.info().await.unwrap().name, host.trim());
}

/// /system/df's volume sizes: a volume with a 4 KiB file counts it.
#[tokio::test(flavor = "multi_thread")]
async fn disk_usage_reads_volume_sizes() {
    let s = Scope::new("df").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let vol = s.name("vol");
    s.track_volume(&vol);
    let name = s
        .run(
            "c",
            json!({"Image": img, "Cmd": ["sh", "-c", "head -c 4096 /dev/zero > /v/f"],
                   "HostConfig": {"Binds": [format!("{vol}:/v")]}}),
        )
        .await;
    assert_eq!(d.container_wait(&name).await.unwrap(), 0);
    let df = d.system_df().await.unwrap();
    if d.podman().is_some() {
        // Podman 4.3 lists no volumes in its df.
        return;
    }
    assert!(df.volume_size(&vol).is_some_and(|n| n >= 4096), "{df:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn container_lifecycle_logs_exec_wait() {
    let s = Scope::new("lifecycle").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let name = s
        .run(
            "c",
            json!({"Image": img, "Cmd": ["sh", "-c", "echo out-line; echo err-line >&2; trap 'exit 7' TERM; while :; do sleep 0.1; done"]}),
        )
        .await;
    let i = d.container_inspect(&name).await.unwrap();
    assert!(i.state.running && i.state.status == "running", "{i:?}");
    assert_eq!(
        (i.name(), i.config.image.as_str()),
        (name.as_str(), img.as_str())
    );
    // The whole JSON, for a re-create: fields berth does not model are there.
    let raw = d.container_inspect_raw(&name).await.unwrap();
    assert!(raw.get("HostConfig").is_some() && raw.get("GraphDriver").is_some());
    assert_eq!(raw["Id"], i.id.as_str());

    // Starting a running container is not an error (the engine answers 304);
    // removing it without force is refused with a status, not only words
    // (Docker 20.10: 409, Podman 4.3: 500).
    d.container_start(&name).await.unwrap();
    let e = d.container_remove(&name, false, false).await.unwrap_err();
    assert!(matches!(e.status(), Some(409 | 500)), "{e}");
    // A second container under the name: the same.
    let e = d
        .container_create(&name, &json!({"Image": img}))
        .await
        .unwrap_err();
    assert!(matches!(e.status(), Some(409 | 500)), "{e}");

    // Logs, multiplexed: stdout and stderr frames arrive on their channels.
    let mut want = (false, false);
    for _ in 0..50 {
        let mut logs = d
            .container_logs(
                &name,
                &LogOptions {
                    stdout: true,
                    stderr: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        while let Some((ch, b)) = logs.next().await.unwrap() {
            match (ch, String::from_utf8_lossy(&b).trim()) {
                (Channel::Stdout, "out-line") => want.0 = true,
                (Channel::Stderr, "err-line") => want.1 = true,
                _ => {}
            }
        }
        if want == (true, true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(want, (true, true));

    // Exec: output and exit code.
    let out = d
        .exec_run(
            &name,
            &[
                "sh".into(),
                "-c".into(),
                "echo hi; echo oops >&2; exit 3".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, out.stdout.as_slice(), out.stderr.as_slice()),
        (3, &b"hi\n"[..], &b"oops\n"[..])
    );
    // An exec of a command that does not exist fails (exit code 126/127 or a system frame).
    let bad = d.exec_run(&name, &["/no/such/cmd".into()]).await;
    assert!(bad.map(|o| o.exit_code != 0).unwrap_or(true));

    // Rename, restart, stop with timeout (the trap exits 7), wait.
    let renamed = s.name("renamed");
    d.container_rename(&name, &renamed).await.unwrap();
    assert_eq!(d.container_inspect(&renamed).await.unwrap().name(), renamed);
    assert!(d.container_inspect(&name).await.unwrap_err().is_not_found());
    d.container_restart(&renamed, 5).await.unwrap();
    assert!(d.container_inspect(&renamed).await.unwrap().state.running);
    d.container_stop(&renamed, 5).await.unwrap();
    assert_eq!(d.container_wait(&renamed).await.unwrap(), 7);
    let st = d.container_inspect(&renamed).await.unwrap().state;
    assert_eq!(
        (st.running, st.exit_code, st.status.as_str()),
        (false, 7, "exited")
    );
    // Stopping a stopped container is not an error.
    d.container_stop(&renamed, 1).await.unwrap();
    d.container_remove(&renamed, false, true).await.unwrap();
    assert!(d
        .container_inspect(&renamed)
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test(flavor = "multi_thread")]
async fn followed_logs_stream_as_they_come() {
    let s = Scope::new("follow").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let name = s
        .run("c", json!({"Image": img, "Cmd": ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done"]}))
        .await;
    let mut logs = d
        .container_logs(
            &name,
            &LogOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut text = String::new();
    while let Some((_, b)) = logs.next().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&b));
    }
    // The stream ends when the container exits.
    assert_eq!(text, "line1\nline2\nline3\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn tty_logs_are_raw() {
    let s = Scope::new("tty").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let name = s
        .run(
            "c",
            json!({"Image": img, "Tty": true, "Cmd": ["echo", "raw"]}),
        )
        .await;
    assert_eq!(d.container_wait(&name).await.unwrap(), 0);
    let mut logs = d
        .container_logs(
            &name,
            &LogOptions {
                stdout: true,
                stderr: true,
                tty: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut text = vec![];
    while let Some((_, b)) = logs.next().await.unwrap() {
        text.extend_from_slice(&b);
    }
    assert_eq!(String::from_utf8_lossy(&text).trim(), "raw");
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_put_head_get_round_trip() {
    let s = Scope::new("archive").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let name = s
        .create("c", json!({"Image": img, "Volumes": {"/data": {}}}))
        .await;
    let mut t = RootFs::new();
    t.dir("data/sub", 0o750)
        .file("data/sub/a.txt", b"alpha", 0o640)
        .symlink("data/l", "sub/a.txt");
    // A created, never started container takes archives too.
    d.archive_put(&name, "/", body::full(t.finish()))
        .await
        .unwrap();
    let st = d.archive_stat(&name, "/data/sub/a.txt").await.unwrap();
    assert_eq!(
        (st.name.as_str(), st.size, st.is_dir()),
        ("a.txt", 5, false)
    );
    assert!(d.archive_stat(&name, "/data").await.unwrap().is_dir());
    let (stat, reader) = d.archive_get(&name, "/data").await.unwrap();
    assert!(stat.is_dir());
    let entries = tokio::task::spawn_blocking(move || {
        let mut a = tar::Archive::new(reader);
        let mut out = vec![];
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            out.push((
                e.path().unwrap().display().to_string(),
                e.header().mode().unwrap() & 0o7777,
                s,
            ));
        }
        out
    })
    .await
    .unwrap();
    let find = |p: &str| {
        entries
            .iter()
            .find(|e| e.0.trim_end_matches('/') == p)
            .cloned()
    };
    assert_eq!(
        find("data/sub/a.txt"),
        Some(("data/sub/a.txt".into(), 0o640, "alpha".into()))
    );
    assert_eq!(find("data/sub").unwrap().1, 0o750);
    assert!(find("data/l").is_some());
    let e = d.archive_stat(&name, "/nope").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_import_tag_save_load_remove() {
    let s = Scope::new("images").await;
    let d = &s.docker;
    busybox(d).await;
    let repo = format!("berth-test/{}", s.prefix);
    s.track_image(&format!("{repo}:a"));
    s.track_image(&format!("{repo}:b"));
    let mut t = RootFs::new();
    t.file("hello", b"hi", 0o644);
    let id = d
        .image_import(
            body::full(t.finish()),
            &repo,
            "a",
            &["ENV BERTH_T=1".into(), "CMD [\"/hello\"]".into()],
        )
        .await
        .unwrap();
    assert!(id.starts_with("sha256:"));
    let i = d.image_inspect(&format!("{repo}:a")).await.unwrap();
    assert_eq!(i["Id"], id);
    assert!(i["Config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e == "BERTH_T=1"));
    d.image_tag(&id, &repo, "b").await.unwrap();
    assert_eq!(
        d.image_inspect(&format!("{repo}:b")).await.unwrap()["Id"],
        id
    );

    // Save streams a tar; load it back after removing the image.
    let reader = d.image_save(&format!("{repo}:a")).await.unwrap();
    let saved = tokio::task::spawn_blocking(move || {
        let mut v = vec![];
        { reader }.read_to_end(&mut v).unwrap();
        v
    })
    .await
    .unwrap();
    assert!(saved.len() > 1024);
    d.image_remove(&format!("{repo}:b"), false).await.unwrap();
    d.image_remove(&format!("{repo}:a"), false).await.unwrap();
    assert!(d.image_inspect(&id).await.unwrap_err().is_not_found());
    let loaded = d.image_load(body::full(saved)).await.unwrap();
    assert!(
        loaded.iter().any(|l| l == &format!("{repo}:a") || l == &id),
        "{loaded:?}"
    );
    assert_eq!(
        d.image_inspect(&format!("{repo}:a")).await.unwrap()["Id"],
        id
    );

    // A file that is not an image: the engine's error comes out as a failure.
    let e = d
        .image_load(body::full(b"not a tarball at all".to_vec()))
        .await
        .unwrap_err();
    assert!(e.msg.starts_with("loading an image"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_create_list_inspect_remove() {
    let s = Scope::new("volumes").await;
    let d = &s.docker;
    let name = s.name("v");
    s.track_volume(&name);
    let v = d
        .volume_create(&json!({"Name": name, "Labels": {"berth.test": "1"}}))
        .await
        .unwrap();
    assert_eq!(v["Name"], name);
    let listed = d
        .volume_list(&json!({"name": [name.clone()]}))
        .await
        .unwrap();
    assert!(listed.iter().any(|v| v["Name"] == name));
    assert_eq!(
        d.volume_inspect(&name).await.unwrap()["Labels"]["berth.test"],
        "1"
    );
    d.volume_remove(&name, false).await.unwrap();
    assert!(d.volume_inspect(&name).await.unwrap_err().is_not_found());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_container_error_names_the_step() {
    let s = Scope::new("missing").await;
    let e = s
        .docker
        .container_stop("berth-no-such-container", 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind, Kind::Api(404));
    assert_eq!(e.msg, "stopping container berth-no-such-container: 404 No such container: berth-no-such-container");
}

/// `berth inspect` on the reference layout: volumes from a data container,
/// a config bind mount nested inside one of them.
#[tokio::test(flavor = "multi_thread")]
async fn inspect_names_the_data_container_and_the_bind_mount() {
    let s = Scope::new("inspect").await;
    let d = &s.docker;
    let img = busybox(d).await;
    let data = s
        .create("lw_data", json!({"Image": img, "Cmd": ["true"], "Volumes": {"/var/lib/vmware": {}, "/var/lib/likewise": {}}}))
        .await;
    let cfg = s.dir("cfg");
    let app = s
        .create(
            "app",
            json!({"Image": img, "Cmd": ["sleep", "60"], "HostConfig": {
                "VolumesFrom": [data.clone()],
                "Binds": [format!("{}:/var/lib/vmware/config", cfg.display())]
            }}),
        )
        .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["inspect", &app, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["container"]["name"], app);
    assert_eq!(r["image"]["tags"][0], img);
    let mounts = r["mounts"].as_array().unwrap();
    let by = |p: &str| {
        mounts
            .iter()
            .find(|m| m["destination"] == p)
            .unwrap()
            .clone()
    };
    for p in ["/var/lib/vmware", "/var/lib/likewise"] {
        let m = by(p);
        assert_eq!(
            (
                m["type"].as_str(),
                m["from"].as_str(),
                m["backup"].as_bool()
            ),
            (Some("volume"), Some(data.as_str()), Some(true))
        );
    }
    let b = by("/var/lib/vmware/config");
    assert_eq!(
        (b["type"].as_str(), b["backup"].as_bool()),
        (Some("bind"), Some(false))
    );
    assert_eq!(b["source"], cfg.display().to_string());
    assert_eq!(r["excluded"][0]["path"], "/var/lib/vmware/config");
    // The human table says the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["inspect", &app])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&data) && text.contains("NO: host bind mount"),
        "{text}"
    );
    // A missing container: one clear line, exit 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["inspect", "berth-no-such"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "berth: inspecting container berth-no-such: 404 No such container: berth-no-such"
    );
}
