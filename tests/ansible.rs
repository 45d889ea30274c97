//! The fleet example (`examples/ansible/upgrade.yml`) run for real:
//! ansible-core from PyPI (`scripts/ansible-up`, a venv under target/)
//! against the two local engines as two inventory hosts (local connection,
//! each with its own engine socket and its own directory, so the copies of
//! the berth binary and the image tarball are real).
//!
//! One lightwave-sim appliance per engine. The play to 6.7.0 upgrades both,
//! one after the other; the play to 6.8.0-broken rolls the first host back
//! and stops there: the second host is never touched (same container, never
//! restarted, the broken tarball never copied to it). The play to 6.7.0
//! once more passes over both hosts as already upgraded.
//!
//! Without ansible (no Python, no PyPI) the test fails under CI=true and
//! says it skips otherwise.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use berth::docker::Docker;
use serde_json::{json, Value};
use support::appliance::{self, Appliance, DATA_MDB};
use support::dockerd::second_engine;
use support::engine::{engine, Scope};
use support::fixtures::{self, Fixtures};
use support::tools::tool_path;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");
const PLAYBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ansible/upgrade.yml");
const ANSIBLE_CFG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ansible/ansible.cfg");

/// `ansible-playbook` from `scripts/ansible-up` (which installs it when
/// missing). None (skip) only outside CI.
fn ansible_playbook() -> Option<PathBuf> {
    let why = match tool_path("ansible-up", &[]) {
        Ok(path) => return Some(path),
        Err(why) => why,
    };
    let msg = format!("scripts/ansible-up: {why}: this test needs ansible-core (python3, PyPI)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg} (CI=true: failing, not skipping)");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// One inventory host: an engine with an appliance on it and the host's
/// own directory (where the play copies berth and the image tarball).
struct Host {
    name: &'static str,
    app: Appliance,
    dir: PathBuf,
    // Last: dropped (containers removed) after everything above.
    scope: Scope,
}

impl Host {
    async fn up(name: &'static str, docker: Docker) -> Host {
        let scope = Scope::on(docker, "ansible");
        let app = appliance::up(&scope, "6.6.0").await;
        let dir = scope.dir(name);
        Host {
            name,
            app,
            dir,
            scope,
        }
    }

    fn d(&self) -> &Docker {
        &self.scope.docker
    }

    /// The inventory entry: local connection, own engine, own directory.
    fn inventory(&self) -> Value {
        json!({
            "berth_docker_host": format!("unix://{}", self.d().socket().display()),
            "berth_dir": self.dir,
            "berth_backup_root": self.dir.join("backups"),
            "berth_container": self.app.app,
        })
    }

    async fn inspect(&self) -> Value {
        self.d()
            .container_inspect_raw(&self.app.app)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    /// The run directories berth made on this host.
    fn run_dirs(&self) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(self.dir.join("backups")) else {
            return vec![];
        };
        let mut v: Vec<PathBuf> = rd
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("plan.json").is_file())
            .collect();
        v.sort();
        v
    }

    /// Have the scope remove the rollback tags berth made (named in the
    /// plans): they are on the shared fixture repository.
    fn track_rollback_tags(&self) {
        for run in self.run_dirs() {
            let plan: Value = serde_json::from_slice(&fs::read(run.join("plan.json")).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", run.display()));
            if let Some(tag) = plan["rollback_tag"].as_str() {
                self.scope.track_image(tag);
            }
        }
    }

    /// Upgraded to 6.7.0: a new container under the name, running the good
    /// image, the data migrated by it, the config file gone.
    async fn assert_upgraded(&self, fx: &Fixtures, old_id: &Value) {
        let c = self.inspect().await;
        let who = self.name;
        assert_eq!(c["Image"], fx.good.id.as_str(), "{who}: image");
        assert_eq!(c["State"]["Running"], true, "{who}: {}", c["State"]);
        assert_ne!(&c["Id"], old_id, "{who}: still the old container");
        assert_eq!(
            self.app.installed_version(self.d()).await.as_deref(),
            Some("6.7.0"),
            "{who}: installed version"
        );
        let mdb = self.app.data_mdb(self.d()).await.expect("data.mdb");
        assert!(
            mdb.starts_with(b"schema=2\n"),
            "{who}: data.mdb not migrated: {}",
            String::from_utf8_lossy(&mdb)
        );
        assert!(
            !self.app.config_file.exists(),
            "{who}: the config file with the password is still there"
        );
    }

    /// The play copied this file here, byte for byte.
    fn assert_copied(&self, src: &Path, dest: &str) {
        let dest = self.dir.join(dest);
        let (a, b) = (fs::read(src).unwrap(), fs::read(&dest));
        let b = b.unwrap_or_else(|e| panic!("{}: {}: {e}", self.name, dest.display()));
        assert!(
            a == b,
            "{}: {} differs from {}",
            self.name,
            dest.display(),
            src.display()
        );
    }
}

/// The controller side: the inventory and the config file source.
struct Controller {
    playbook: PathBuf,
    dir: PathBuf,
    /// The berth binary the play ships.
    berth: PathBuf,
    inventory: PathBuf,
    config_src: PathBuf,
}

impl Controller {
    fn new(playbook: PathBuf, dir: PathBuf, hosts: &[&Host]) -> Controller {
        // The config file the new version reads at upgrade time.
        let config_src = appliance::write_config_file(
            &dir.join("secret"),
            &appliance::config_text("standalone"),
        );
        let mut group = json!({
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "berth_profile": "lightwave",
                "berth_config_file": config_src,
            },
            "hosts": {},
        });
        for h in hosts {
            group["hosts"][h.name] = h.inventory();
        }
        let inventory = dir.join("inventory.json");
        fs::write(&inventory, json!({ "berth": group }).to_string()).unwrap();
        let berth = ship_binary(&dir);
        Controller {
            playbook,
            dir,
            berth,
            inventory,
            config_src,
        }
    }

    /// Run the play with `image_file` and the extra variables `vars`.
    fn play(&self, image_file: &Path, vars: Value) -> Play {
        let t = Instant::now();
        let home = self.dir.join("ansible-home");
        let mut extra = json!({
            "berth_binary": self.berth,
            "berth_image_file": image_file,
        });
        extra
            .as_object_mut()
            .unwrap()
            .extend(vars.as_object().unwrap().clone());
        let out = Command::new(&self.playbook)
            .arg("-i")
            .arg(&self.inventory)
            .arg(PLAYBOOK)
            .arg("-e")
            .arg(extra.to_string())
            .env("ANSIBLE_CONFIG", ANSIBLE_CFG)
            .env("ANSIBLE_STDOUT_CALLBACK", "ansible.builtin.default")
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_REMOTE_TMP", home.join("remote-tmp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("LC_ALL", "C.UTF-8")
            // Each host names its own engine: none comes from here.
            .env_remove("DOCKER_HOST")
            .env_remove("BERTH_TEST_KILL_AT")
            .stdin(Stdio::null())
            .output()
            .expect("running ansible-playbook");
        let p = Play {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            reports: vars["berth_report_dir"].as_str().map(PathBuf::from),
        };
        eprintln!(
            "ansible-playbook to {}: exit {:?} in {:.1}s",
            image_file.file_name().unwrap().to_string_lossy(),
            p.code,
            t.elapsed().as_secs_f64()
        );
        p
    }
}

/// The berth binary to ship: this test's own (static, optimised), without
/// its debug info (88 MB -> 6 MB: ansible checksums and copies it for each
/// host). `strip` comes with the linker cargo uses; without it the binary
/// goes as it is.
fn ship_binary(dir: &Path) -> PathBuf {
    let stripped = dir.join("berth");
    let status = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(BERTH)
        .status();
    match status {
        Ok(s) if s.success() => stripped,
        other => {
            eprintln!("strip {BERTH}: {other:?}; shipping it unstripped");
            PathBuf::from(BERTH)
        }
    }
}

/// One ansible-playbook run, read through the default callback's output
/// and the reports the play keeps.
struct Play {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// `berth_report_dir`, when given.
    reports: Option<PathBuf>,
}

impl std::fmt::Display for Play {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Play {
    /// berth's summary (plus `rc` and `current`) as the play kept it for
    /// `host`; None when the play did not get that far there.
    fn report(&self, host: &str) -> Option<Value> {
        let dir = self.reports.as_ref().expect("a play with berth_report_dir");
        let text = fs::read(dir.join(format!("{host}.json"))).ok()?;
        Some(serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{host}.json: {e}\n{self}")))
    }

    /// The per-host outcomes the play recorded (set_stats, printed under
    /// CUSTOM STATS as `RUN: {"berth": {HOST: OUTCOME}}`).
    fn outcomes(&self) -> Value {
        self.stdout
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("RUN: "))
            .map(|j| serde_json::from_str::<Value>(j).unwrap()["berth"].take())
            .unwrap_or(Value::Null)
    }

    /// A PLAY RECAP counter of `host` (`ok`, `changed`, `failed`...); None
    /// when the host is not in the recap.
    fn recap(&self, host: &str, counter: &str) -> Option<u64> {
        let recap = self.stdout.split("PLAY RECAP").nth(1)?;
        let line = recap
            .lines()
            .find(|l| l.split_whitespace().next() == Some(host))?;
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(counter)?.strip_prefix('='))
            .map(|n| n.parse().unwrap())
    }

    /// What the default callback printed for `host` under the task `task`
    /// (`ok`, `changed`, `fatal`, `skipping`); None when it did not run
    /// there.
    fn task_status(&self, task: &str, host: &str) -> Option<&str> {
        let header = format!("TASK [{task}]");
        let tag = format!(": [{host}]");
        self.stdout
            .split(header.as_str())
            .skip(1)
            .find_map(|section| {
                section
                    .lines()
                    .skip(1)
                    .take_while(|l| !l.starts_with("TASK [") && !l.starts_with("PLAY"))
                    .find_map(|l| l.split_once(tag.as_str()).map(|(status, _)| status))
            })
    }

    /// The line the default callback printed for `host`'s failure.
    fn fatal(&self, host: &str) -> Option<&str> {
        let tag = format!("fatal: [{host}]: FAILED! => ");
        self.stdout
            .lines()
            .find_map(|l| l.strip_prefix(tag.as_str()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_rollout_upgrades_stops_at_first_rollback_and_runs_again() {
    let t = Instant::now();
    let (d1, d2) = (engine().await, second_engine().await);
    let Some(playbook) = ansible_playbook() else {
        return;
    };
    let fx = fixtures::ensure(&d1).await;
    fixtures::ensure(&d2).await;
    let hosts = [
        Host::up("engine-1", d1).await,
        Host::up("engine-2", d2).await,
    ];
    let ctl_dir = hosts[0].scope.dir("controller");
    fs::set_permissions(&ctl_dir, fs::Permissions::from_mode(0o700)).unwrap();
    let ctl = Controller::new(playbook, ctl_dir, &[&hosts[0], &hosts[1]]);
    eprintln!("two appliances up in {:.1}s", t.elapsed().as_secs_f64());

    // 0. A tarball other than the one announced: refused on the
    // controller, before any host is touched.
    let p = ctl.play(
        &fx.good_tarballs.tar,
        json!({"berth_image_sha256": "0".repeat(64)}),
    );
    assert_eq!(p.code, Some(2), "a wrong sha256:\n{p}");
    assert_eq!(p.recap("localhost", "failed"), Some(1), "{p}");
    for h in &hosts {
        assert_eq!(p.recap(h.name, "ok"), None, "{} was reached:\n{p}", h.name);
        assert!(!h.dir.join("berth").exists(), "{}: berth copied", h.name);
    }

    // 1. To 6.7.0: both hosts upgraded, one after the other.
    let mut old_ids = vec![];
    for h in &hosts {
        old_ids.push(h.inspect().await["Id"].clone());
    }
    let p = ctl.play(&fx.good_tarballs.tar, json!({}));
    for h in &hosts {
        h.track_rollback_tags();
    }
    assert_eq!(p.code, Some(0), "the play to 6.7.0 failed:\n{p}");
    for (h, old_id) in hosts.iter().zip(&old_ids) {
        let who = h.name;
        assert_eq!(p.recap(who, "failed"), Some(0), "{who}:\n{p}");
        assert_eq!(
            p.task_status("Run berth upgrade", who),
            Some("changed"),
            "{who}: an upgrade is a change\n{p}"
        );
        h.assert_upgraded(&fx, old_id).await;
        h.assert_copied(&ctl.berth, "berth");
        h.assert_copied(&fx.good_tarballs.tar, "lightwave-sts-6.7.0.tar");
        assert!(
            !h.dir.join(appliance::CONFIG_NAME).exists(),
            "{who}: the copied config file is still there"
        );
        assert_eq!(h.run_dirs().len(), 1, "{who}: run directories");
    }
    assert_eq!(
        p.outcomes(),
        json!({"engine-1": "upgraded", "engine-2": "upgraded"}),
        "{p}"
    );
    assert!(
        ctl.config_src.exists(),
        "the play deleted the controller's config file"
    );

    // 2. To 6.8.0-broken: the first host rolls back, the play stops.
    let mut before = vec![];
    for h in &hosts {
        let c = h.inspect().await;
        let mdb = h.app.data_mdb(h.d()).await.expect("data.mdb");
        before.push((c["Id"].clone(), c["State"]["StartedAt"].clone(), mdb));
    }
    // berth's summaries kept on the controller this time.
    let reports = ctl.dir.join("reports");
    let p = ctl.play(
        &fx.broken_tarballs.tar,
        json!({ "berth_report_dir": reports }),
    );
    for h in &hosts {
        h.track_rollback_tags();
    }
    assert_eq!(
        p.code,
        Some(2),
        "ansible-playbook's code for a failed host:\n{p}"
    );

    let [first, second] = &hosts;
    assert_eq!(p.recap(first.name, "failed"), Some(1), "{p}");
    assert_eq!(
        p.task_status("Run berth upgrade", first.name),
        Some("ok"),
        "a rollback is no change\n{p}"
    );
    let r = p
        .report(first.name)
        .unwrap_or_else(|| panic!("no report\n{p}"));
    assert_eq!(r["rc"], 3, "berth's exit code: rolled back: {r}");
    assert_eq!(r["outcome"], "rolled-back", "{r}");
    assert_eq!(r["container"], first.app.app.as_str(), "{r}");
    assert_eq!(r["current"], false, "{r}");
    assert_eq!(p.outcomes(), json!({"engine-1": "rolled-back"}), "{p}");
    let fatal = p
        .fatal(first.name)
        .unwrap_or_else(|| panic!("no failure\n{p}"));
    assert!(
        fatal.contains("rolled back, ") && fatal.contains("Directory upgrade failure"),
        "the failure says what berth said: {fatal}"
    );
    // The first host is back on 6.7.0: the same container, the same data.
    let c = first.inspect().await;
    assert_eq!(c["Id"], before[0].0, "engine-1: not the 6.7.0 container");
    assert_eq!(c["Image"], fx.good.id.as_str(), "engine-1: image");
    assert_eq!(c["State"]["Running"], true, "engine-1: {}", c["State"]);
    assert_eq!(
        first.app.data_mdb(first.d()).await.as_deref(),
        Some(before[0].2.as_slice()),
        "engine-1: {DATA_MDB} not restored"
    );
    assert_eq!(
        first.app.installed_version(first.d()).await.as_deref(),
        Some("6.7.0")
    );
    assert!(
        !first.app.config_file.exists(),
        "engine-1: config file left"
    );
    assert_eq!(first.run_dirs().len(), 2, "engine-1: run directories");

    // The second host was never reached: nothing ran, nothing was copied,
    // the container never stopped.
    let who = second.name;
    assert!(
        p.recap(who, "ok").unwrap_or(0) == 0 && p.recap(who, "changed").unwrap_or(0) == 0,
        "{who} was reached:\n{p}"
    );
    assert_eq!(p.task_status("Run berth upgrade", who), None, "{p}");
    assert!(p.report(who).is_none(), "{who}: a report");
    assert!(
        !second.dir.join("lightwave-sts-6.8.0-broken.tar").exists(),
        "the broken tarball was copied to {who}"
    );
    assert_eq!(second.run_dirs().len(), 1, "{who}: a second run");
    let c = second.inspect().await;
    assert_eq!(c["Id"], before[1].0, "{who}: container replaced");
    assert_eq!(c["State"]["StartedAt"], before[1].1, "{who}: restarted");
    assert_eq!(c["State"]["Running"], true, "{who}: {}", c["State"]);
    assert_eq!(c["Image"], fx.good.id.as_str(), "{who}: image");
    assert_eq!(
        second.app.data_mdb(second.d()).await.as_deref(),
        Some(before[1].2.as_slice()),
        "{who}: data changed"
    );

    // 3. To 6.7.0 again: both hosts are there already; the play passes
    // and changes nothing.
    let p = ctl.play(&fx.good_tarballs.tar, json!({}));
    assert_eq!(p.code, Some(0), "the play again:\n{p}");
    for (h, runs) in hosts.iter().zip([2, 1]) {
        let who = h.name;
        assert_eq!(p.recap(who, "failed"), Some(0), "{who}:\n{p}");
        assert_eq!(p.task_status("Run berth upgrade", who), Some("ok"), "{p}");
        let c = h.inspect().await;
        assert_eq!(c["Image"], fx.good.id.as_str(), "{who}: image");
        assert_eq!(c["State"]["Running"], true, "{who}: {}", c["State"]);
        assert_eq!(h.run_dirs().len(), runs, "{who}: berth began a run");
    }
    assert_eq!(
        p.outcomes(),
        json!({"engine-1": "already upgraded", "engine-2": "already upgraded"}),
        "{p}"
    );
    let c = second.inspect().await;
    assert_eq!(
        (&c["Id"], &c["State"]["StartedAt"]),
        (&before[1].0, &before[1].1),
        "{}: restarted",
        second.name
    );
    eprintln!("fleet test in {:.1}s", t.elapsed().as_secs_f64());
}
