//! The lightwave-sim fixtures against the real engine: the images, the
//! reference appliance layout, and the behaviour berth's upgrade relies on
//! (upgrade lines, a failed upgrade that damages data and hangs, a bad
//! config, journalctl through exec, restarts, a prompt stop, tarballs that
//! load back).

mod support;

use std::time::{Duration, Instant};

use berth::docker::body;
use serde_json::Value;
use support::appliance::{
    self, installed_version, logs, read_file, wait_for_line, wait_for_lines, Appliance,
    FAILURE_LINES, SETUP_COMPLETE, STARTED, STOPPED, UPGRADE_LINES,
};
use support::engine::Scope;
use support::fixtures;

const WAIT: Duration = Duration::from_secs(20);

/// The positions of `lines` in `text` (whole trimmed lines), in order.
fn in_order(text: &str, lines: &[&str]) -> bool {
    let all: Vec<&str> = text.lines().map(str::trim).collect();
    let mut at = 0;
    for want in lines {
        match all[at..].iter().position(|l| l == want) {
            Some(i) => at += i + 1,
            None => return false,
        }
    }
    true
}

fn count(text: &str, line: &str) -> usize {
    text.lines().filter(|l| l.trim() == line).count()
}

/// Stop the appliance, write the config file again and start a new app
/// container on `version` with the same HostConfig (the upgrade procedure).
async fn start_on(s: &Scope, a: &Appliance, what: &str, version: &str) -> String {
    let d = &s.docker;
    d.container_stop(&a.app, 10).await.unwrap();
    a.write_config();
    s.run(what, a.app_config(version)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_built_as_specified() {
    let s = Scope::new("fx-images").await;
    let d = &s.docker;
    let f = fixtures::ensure(d).await;
    assert_eq!(f.sim_sha256.len(), 64);
    for (image, version, fail) in [
        (&f.old, "6.6.0", false),
        (&f.good, "6.7.0", false),
        (&f.broken, "6.8.0", true),
    ] {
        let i = d.image_inspect(&image.reference).await.unwrap();
        assert_eq!(i["Id"], image.id.as_str());
        let c = &i["Config"];
        let env: Vec<&str> = c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(env.contains(&format!("LIGHTWAVE_VERSION={version}").as_str()));
        assert!(env.contains(&"PATH=/usr/sbin:/usr/bin:/bin"));
        assert_eq!(env.contains(&"LIGHTWAVE_SIM_UPGRADE=fail"), fail);
        assert_eq!(
            c["Entrypoint"],
            serde_json::json!(["/usr/sbin/lightwave-sim"])
        );
        assert_eq!(c["StopSignal"], "SIGTERM");
        assert!(c["Volumes"].is_null(), "{}", c["Volumes"]);
        assert_eq!(c["Labels"]["org.opencontainers.image.version"], version);
        assert_eq!(c["Labels"][fixtures::SIM_LABEL], f.sim_sha256.as_str());
    }
    // A second call finds everything.
    let again = fixtures::ensure(d).await;
    assert_eq!(again.good.id, f.good.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_install_sets_up_and_removes_the_config() {
    let s = Scope::new("fx-fresh").await;
    let d = &s.docker;
    let a = appliance::up(&s, "6.6.0").await;
    let text = logs(d, &a.app).await;
    assert!(in_order(&text, &[SETUP_COMPLETE, STARTED]), "{text}");
    assert!(!text.contains("Upgrade"), "{text}");
    // The password does not stay on the host.
    assert!(!a.config_file.exists());
    assert_eq!(
        a.config_file,
        a.config_dir.join("lightwave-server.cfg"),
        "config file path"
    );

    assert_eq!(a.installed_version(d).await.as_deref(), Some("6.6.0"));
    let mdb = a.data_mdb(d).await.unwrap();
    assert!(mdb.starts_with(b"schema=1\n"));
    assert!(
        read_file(d, &a.data, "/etc/vmware-sso/keys/machine-ssl.key")
            .await
            .is_some()
    );
    assert!(read_file(d, &a.data, "/no/such/file").await.is_none());

    // The reference layout.
    let data = d.container_inspect_raw(&a.data).await.unwrap();
    assert_eq!(data["State"]["Status"], "created");
    for p in fixtures::DATA_PATHS {
        assert!(data["Config"]["Volumes"].get(p).is_some(), "{p}");
    }
    let app = d.container_inspect_raw(&a.app).await.unwrap();
    let h = &app["HostConfig"];
    assert_eq!(h["VolumesFrom"], serde_json::json!([a.data]));
    assert_eq!(h["Privileged"], a.privileged);
    if std::env::var("BERTH_FIXTURE_PRIVILEGED").is_err() {
        assert_eq!(a.privileged, appliance::privileged(d).await);
    }
    assert_eq!(h["NetworkMode"], "host");
    assert_eq!(h["RestartPolicy"]["Name"], "no");
    assert_eq!(
        h["Binds"],
        serde_json::json!([format!("{}:/var/lib/vmware/config", a.config_dir.display())])
    );
    assert_eq!(app["State"]["Running"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn good_upgrade_logs_the_upgrade_and_migrates_the_data() {
    let s = Scope::new("fx-good").await;
    let d = &s.docker;
    let a = appliance::up(&s, "6.6.0").await;
    let before = a.data_mdb(d).await.unwrap();

    let new = start_on(&s, &a, "lw-670", "6.7.0").await;
    wait_for_lines(d, &new, &["Upgrade complete.", STARTED], WAIT)
        .await
        .unwrap();
    let text = logs(d, &new).await;
    assert!(in_order(&text, &UPGRADE_LINES), "{text}");
    assert!(
        text.contains("Upgrading Lightwave server from 6.6.0 to 6.7.0"),
        "{text}"
    );
    assert!(
        !text.contains(SETUP_COMPLETE) && !text.contains("failed"),
        "{text}"
    );

    assert_eq!(a.installed_version(d).await.as_deref(), Some("6.7.0"));
    assert_eq!(
        installed_version(d, &new).await.as_deref(),
        Some("6.7.0"),
        "the app sees the same volumes"
    );
    let after = a.data_mdb(d).await.unwrap();
    assert!(after.starts_with(b"schema=2\n"), "{after:?}");
    assert_ne!(before, after);
    assert!(read_file(
        d,
        &a.data,
        "/var/lib/vmware/vmdir/upgrade-6.6.0-to-6.7.0.done"
    )
    .await
    .is_some());

    // The reference check: docker exec <new> journalctl | grep configure-lightwave-server
    let out = d.exec_run(&new, &["journalctl".into()]).await.unwrap();
    assert_eq!(out.exit_code, 0);
    let journal = String::from_utf8_lossy(&out.stdout);
    let ours: Vec<&str> = journal
        .lines()
        .filter(|l| l.contains("configure-lightwave-server["))
        .collect();
    assert!(ours.len() >= UPGRADE_LINES.len(), "{journal}");
    assert!(
        ours.iter().any(|l| l.ends_with("]: Upgrade complete.")),
        "{journal}"
    );
    a.remove_config();
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_upgrade_damages_data_and_hangs() {
    let s = Scope::new("fx-broken").await;
    let d = &s.docker;
    let a = appliance::up(&s, "6.6.0").await;
    let before = a.data_mdb(d).await.unwrap();

    let new = start_on(&s, &a, "lw-680", "6.8.0-broken").await;
    wait_for_line(d, &new, "Upgrade failed.", WAIT)
        .await
        .unwrap();
    let text = logs(d, &new).await;
    assert!(
        in_order(
            &text,
            &["Running schema patch", "Running vdcupgrade"]
                .into_iter()
                .chain(FAILURE_LINES)
                .collect::<Vec<_>>()
        ),
        "{text}"
    );
    assert!(
        !text.contains("Upgrade complete.") && !text.contains(STARTED),
        "{text}"
    );

    // The version stays, the data does not.
    assert_eq!(a.installed_version(d).await.as_deref(), Some("6.6.0"));
    let after = a.data_mdb(d).await.unwrap();
    assert_ne!(before, after);
    assert!(after.starts_with(b"schema=1.5\n"), "{after:?}");
    assert!(
        read_file(d, &a.data, "/etc/vmware-sso/keys/machine-ssl.key")
            .await
            .is_none()
    );

    // It hangs, like the real appliance: still running a second later.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        d.container_inspect_raw(&new).await.unwrap()["State"]["Running"],
        true
    );
    let t = Instant::now();
    d.container_stop(&new, 10).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(d.container_wait(&new).await.unwrap(), 1);
    a.remove_config();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_exits_1() {
    let s = Scope::new("fx-badcfg").await;
    let d = &s.docker;
    let f = fixtures::ensure(d).await;
    let data = s
        .create("lw_data", appliance::data_config(&f.old.reference))
        .await;
    let dir = s.dir("lw-config");
    appliance::write_config_file(&dir, &appliance::config_text("bogus"));
    let app = s
        .run(
            "lw",
            appliance::app_config(
                &f.old.reference,
                &data,
                &dir,
                appliance::privileged(d).await,
            ),
        )
        .await;
    let code = tokio::time::timeout(WAIT, d.container_wait(&app))
        .await
        .expect("the app exits")
        .unwrap();
    assert_eq!(code, 1);
    let text = logs(d, &app).await;
    assert!(
        text.lines()
            .any(|l| l.trim() == "Invalid deployment type : bogus"),
        "{text}"
    );
    assert!(!text.contains(SETUP_COMPLETE), "{text}");
    assert_eq!(installed_version(d, &data).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn journalctl_through_exec() {
    let s = Scope::new("fx-journal").await;
    let d = &s.docker;
    let a = appliance::up(&s, "6.6.0").await;
    let out = d.exec_run(&a.app, &["journalctl".into()]).await.unwrap();
    assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
    let journal = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = journal.lines().collect();
    assert!(!lines.is_empty());
    // `Mon DD HH:MM:SS lightwave configure-lightwave-server[PID]: message`
    for l in &lines {
        assert!(l.contains(" configure-lightwave-server["), "{l}");
    }
    for want in [SETUP_COMPLETE, STARTED] {
        assert!(
            lines.iter().any(|l| l.ends_with(&format!("]: {want}"))),
            "{want}: {journal}"
        );
    }
    // `true` is there too (the data container's command).
    let t = d.exec_run(&a.app, &["true".into()]).await.unwrap();
    assert_eq!((t.exit_code, t.stdout.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_on_the_same_version_does_not_upgrade() {
    let s = Scope::new("fx-restart").await;
    let d = &s.docker;
    let a = appliance::up(&s, "6.6.0").await;
    // The same container restarted (no config file on the host any more).
    d.container_restart(&a.app, 10).await.unwrap();
    let t = Instant::now();
    loop {
        let text = logs(d, &a.app).await;
        if count(&text, STARTED) == 2 {
            assert_eq!(count(&text, SETUP_COMPLETE), 1, "{text}");
            assert_eq!(count(&text, STOPPED), 1, "{text}");
            assert!(!text.contains("Upgrad"), "{text}");
            assert!(!text.contains(UPGRADE_LINES[0]), "{text}");
            break;
        }
        assert!(t.elapsed() < WAIT, "no second start: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new container on the same version and volumes.
    let again = start_on(&s, &a, "lw-again", "6.6.0").await;
    wait_for_line(d, &again, STARTED, WAIT).await.unwrap();
    let text = logs(d, &again).await;
    assert!(
        !text.contains("Upgrad") && !text.contains(SETUP_COMPLETE),
        "{text}"
    );
    assert_eq!(a.installed_version(d).await.as_deref(), Some("6.6.0"));
    a.remove_config();
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_is_prompt() {
    let s = Scope::new("fx-stop").await;
    let d = &s.docker;
    let a = appliance::up(&s, "6.6.0").await;
    let t = Instant::now();
    d.container_stop(&a.app, 10).await.unwrap();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(3), "docker stop took {took:?}");
    assert_eq!(d.container_wait(&a.app).await.unwrap(), 0);
    let text = logs(d, &a.app).await;
    assert!(in_order(&text, &[STARTED, STOPPED]), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn saved_tarballs_load_back() {
    let s = Scope::new("fx-tarballs").await;
    let d = &s.docker;
    let f = fixtures::ensure(d).await;
    for (image, t) in [(&f.good, &f.good_tarballs), (&f.broken, &f.broken_tarballs)] {
        for (path, gzip) in [(&t.tar, false), (&t.tar_gz, true)] {
            assert!(path.starts_with(&f.dir), "{}", path.display());
            assert_eq!(
                fixtures::saved_id(path, gzip).as_deref(),
                Some(image.id.as_str()),
                "{}",
                path.display()
            );
            let file = std::fs::File::open(path).unwrap();
            let loaded = d.image_load(body::reader_body(file)).await.unwrap();
            assert!(
                loaded
                    .iter()
                    .any(|l| *l == image.reference || *l == image.id),
                "{}: {loaded:?}",
                path.display()
            );
            assert_eq!(
                d.image_inspect(&image.reference).await.unwrap()["Id"],
                image.id.as_str()
            );
        }
        // The gzip one is really compressed.
        let (plain, gz) = (
            std::fs::metadata(&t.tar).unwrap().len(),
            std::fs::metadata(&t.tar_gz).unwrap().len(),
        );
        assert!(gz < plain, "{gz} >= {plain}");
    }
}

/// The second engine gets the same images (same ids, by save and load) and
/// runs the appliance without a bridge network.
#[tokio::test(flavor = "multi_thread")]
async fn appliance_runs_on_the_second_engine() {
    let d2 = support::dockerd::second_engine().await;
    let f = fixtures::ensure(&d2).await;
    for image in [&f.old, &f.good, &f.broken] {
        let v = d2.image_inspect(&image.reference).await.unwrap();
        assert_eq!(v["Id"], image.id.as_str(), "{}", image.reference);
    }
    let s = Scope::on(d2, "second-engine");
    let a = appliance::up(&s, "6.6.0").await;
    assert_eq!(
        installed_version(&s.docker, &a.app).await.as_deref(),
        Some("6.6.0")
    );
}

/// An engine the test owns can be restarted under a running appliance, which
/// comes back stopped (no restart policy) with its data.
#[tokio::test(flavor = "multi_thread")]
async fn owned_engine_restarts_with_its_containers() {
    let mut e = support::dockerd::Dockerd::start("fixture-restart").await;
    let s = Scope::on(e.docker().await, "owned-engine");
    let a = appliance::up(&s, "6.6.0").await;
    e.restart().await;
    let d = e.docker().await;
    let v = d.container_inspect_raw(&a.app).await.unwrap();
    assert_eq!(v["State"]["Running"], false);
    d.container_start(&a.app).await.unwrap();
    wait_for_line(&d, &a.app, STARTED, WAIT).await.unwrap();
    assert_eq!(
        installed_version(&d, &a.app).await.as_deref(),
        Some("6.6.0")
    );
    drop(s);
}
