//! One scene builder for the engine tests: the reference appliance on the
//! lightwave-sim 6.6.0 fixture, as the suites that upgrade it need it.
//!
//! ```ignore
//! let scope = Scope::new("my-test").await;
//! let s = stage().app(json!({"StopSignal": "SIGUSR1"})).up(&scope).await;
//! let run = berth(&["upgrade", &s.lw.app, "--image-file", ..., "--backup-root", ...]);
//! ```
//!
//! By default the app runs a per-scope tag of 6.6.0 (so the rollback tags
//! berth makes are the test's own, removed with its scope), unprivileged,
//! with the reference config file: written for setup, removed once the
//! appliance is up (it holds the admin password), and kept as a copy
//! outside the appliance for `--config-file`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::appliance::{self, Appliance, CONFIG_NAME, SETUP_COMPLETE, STARTED};
use super::engine::Scope;
use super::fixtures::{self, Fixtures};

/// What to stand up; see [`stage`].
pub struct Stage {
    config: String,
    patch: Value,
    own_tag: bool,
    privileged: Option<bool>,
}

/// The reference appliance on a tag of its own, unprivileged.
pub fn stage() -> Stage {
    Stage {
        config: appliance::config_text("standalone"),
        patch: json!({}),
        own_tag: true,
        privileged: Some(false),
    }
}

/// An appliance that is up, and what an upgrade of it takes.
pub struct Staged {
    pub fx: Fixtures,
    pub lw: Appliance,
    /// The app container's id as stood up.
    pub app_id: String,
    /// The config file for `--config-file` (mode 0600, outside the appliance).
    pub config_src: PathBuf,
    /// A scope directory for `--backup-root`.
    pub root: PathBuf,
}

impl Stage {
    /// The config file's text (setup's and `config_src`'s).
    pub fn config(mut self, text: String) -> Stage {
        self.config = text;
        self
    }

    /// Settings of the app container: `patch`'s keys replace the reference
    /// config's, its `HostConfig` keys those of the HostConfig.
    pub fn app(mut self, patch: Value) -> Stage {
        self.patch = patch;
        self
    }

    /// Run the fixture's shared reference instead of a tag of the scope's
    /// own (Podman removes every tag of an image when one is removed by
    /// force).
    pub fn shared_image(mut self) -> Stage {
        self.own_tag = false;
        self
    }

    /// Privileged when the engine can start privileged containers (see
    /// [`appliance::privileged`]).
    pub fn privileged_if_possible(mut self) -> Stage {
        self.privileged = None;
        self
    }

    /// Stand it up in `scope` (containers `<prefix>-lw_data` and
    /// `<prefix>-lw`, removed with the scope); panics when setup does not
    /// complete.
    pub async fn up(self, scope: &Scope) -> Staged {
        let d = &scope.docker;
        let fx = fixtures::ensure(d).await;
        let image = if self.own_tag {
            let repo = format!("{}/lightwave-sts", scope.prefix);
            scope.track_image(&format!("{repo}:6.6.0"));
            d.image_tag(&fx.old.id, &repo, "6.6.0").await.unwrap();
            format!("{repo}:6.6.0")
        } else {
            fx.old.reference.clone()
        };
        let privileged = match self.privileged {
            Some(p) => p,
            None => appliance::privileged(d).await,
        };
        let (data, app) = (scope.name("lw_data"), scope.name("lw"));
        // Tracked before they exist, so a failed setup is cleaned up too;
        // removed in reverse order: the app before the data container.
        scope.track_container(&data);
        scope.track_container(&app);
        let config_dir = scope.dir("lw-config");
        let config_file = appliance::write_config_file(&config_dir, &self.config);
        d.container_create(&data, &appliance::data_config(&image))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = appliance::app_config(&image, &data, &config_dir, privileged);
        patch_config(&mut cfg, &self.patch);
        let app_id = d
            .container_create(&app, &cfg)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        d.container_start(&app)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        appliance::wait_for_lines(
            d,
            &app,
            &[SETUP_COMPLETE, STARTED],
            appliance::SETUP_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let lw = Appliance {
            data,
            app,
            config_dir,
            config_file,
            image,
            privileged,
        };
        fs::remove_file(&lw.config_file)
            .unwrap_or_else(|e| panic!("{}: {e}", lw.config_file.display()));
        let config_src = scope.dir("secret").join(CONFIG_NAME);
        fs::write(&config_src, &self.config).unwrap();
        fs::set_permissions(&config_src, fs::Permissions::from_mode(0o600)).unwrap();
        Staged {
            fx,
            lw,
            app_id,
            config_src,
            root: scope.dir("runs"),
        }
    }
}

/// `patch`'s keys replace `config`'s; its `HostConfig` keys those of the
/// HostConfig.
pub fn patch_config(config: &mut Value, patch: &Value) {
    for (k, v) in patch.as_object().into_iter().flatten() {
        if k == "HostConfig" {
            for (hk, hv) in v.as_object().into_iter().flatten() {
                config["HostConfig"][hk] = hv.clone();
            }
        } else {
            config[k] = v.clone();
        }
    }
}

/// The run directories under a `--backup-root`, oldest first.
pub fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The rollback tags berth made under `root` (read from the plans): removed
/// with the scope.
pub fn track_rollback_tags(scope: &Scope, root: &Path) {
    for dir in run_dirs(root) {
        let plan = fs::read(dir.join("plan.json")).ok();
        if let Some(p) = plan.and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
            if let Some(t) = p["rollback_tag"].as_str() {
                scope.track_image(t);
            }
        }
    }
}
