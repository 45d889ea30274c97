//! System calls: the engine's version, its host, and what its volumes hold.

use std::time::Duration;

use serde::Deserialize;

use super::transport::Docker;
use crate::error::{Error, Result};
use crate::secrets::json_problem;

/// GET /version, the parts berth reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Version {
    /// The engine's own version ("20.10.24+dfsg1"; Podman gives its own,
    /// "4.3.1", without saying it is Podman).
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
}

/// GET /info, the parts berth reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct Info {
    /// The host name of the machine the engine runs on.
    pub name: String,
    /// The engine host's clock (RFC 3339, to the nanosecond): the one its
    /// files' ctimes come from.
    pub system_time: String,
}

/// GET /system/df, the parts berth reads.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct DiskUsage {
    #[serde(deserialize_with = "super::model::or_default")]
    pub volumes: Vec<VolumeUsage>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeUsage {
    pub name: String,
    pub usage_data: Option<UsageData>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "PascalCase")]
pub struct UsageData {
    /// Bytes of the volume's files; -1 when the engine did not measure.
    pub size: i64,
}

impl DiskUsage {
    /// The measured size of volume `name`, in bytes.
    pub fn volume_size(&self, name: &str) -> Option<u64> {
        let v = self.volumes.iter().find(|v| v.name == name)?;
        u64::try_from(v.usage_data.as_ref()?.size).ok()
    }
}

/// How often, and how long apart, a refused disk-usage call is asked again.
const DF_TRIES: u32 = 40;
const DF_PAUSE: Duration = Duration::from_millis(250);

impl Docker {
    pub async fn version(&self) -> Result<Version> {
        let v = self
            .get_json("/version", "asking the engine for its version")
            .await?;
        typed(v, "its version")
    }

    pub async fn info(&self) -> Result<Info> {
        let v = self
            .get_json("/info", "asking the engine its host name")
            .await?;
        typed(v, "its system information")
    }

    /// GET /system/df. Docker 20.10 computes one at a time and answers a
    /// second one, while the first runs, with 500 ("a disk usage operation
    /// is already running"; later Dockers share the first one's answer):
    /// a server error is asked again, up to 10 s, rather than decided on
    /// by the daemon's wording. Any other error is returned at once.
    pub async fn system_df(&self) -> Result<DiskUsage> {
        let mut tries = 0;
        loop {
            match self
                .get_json("/system/df", "asking the engine for volume sizes")
                .await
            {
                Ok(v) => return typed(v, "its disk usage"),
                Err(e) if e.status() == Some(500) && tries + 1 < DF_TRIES => {
                    tries += 1;
                    tokio::time::sleep(DF_PAUSE).await
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn typed<T: for<'de> Deserialize<'de>>(v: serde_json::Value, what: &str) -> Result<T> {
    T::deserialize(v).map_err(|e| {
        Error::failed(format!(
            "the engine's answer about {what} has an unexpected shape: {}",
            json_problem(&e)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volume_sizes() {
        // As Docker 20.10 answers (Podman 4.3 leaves Volumes empty).
        let df: DiskUsage = serde_json::from_value(json!({
            "LayersSize": 1, "Images": [],
            "Volumes": [
                {"Name": "a", "UsageData": {"RefCount": 1, "Size": 512}},
                {"Name": "b", "UsageData": {"RefCount": 0, "Size": -1}},
                {"Name": "c", "UsageData": null},
            ]
        }))
        .unwrap();
        assert_eq!(df.volume_size("a"), Some(512));
        assert_eq!(df.volume_size("b"), None);
        assert_eq!(df.volume_size("c"), None);
        assert_eq!(df.volume_size("d"), None);
        let empty: DiskUsage = serde_json::from_value(json!({"Volumes": null})).unwrap();
        assert!(empty.volumes.is_empty());
    }

    #[test]
    fn version_of_both_engines() {
        for (file, want) in [
            ("docker-20.10-version", "20.10.24+dfsg1"),
            ("podman-4.3-version", "4.3.1"),
        ] {
            let path = format!(
                "{}/tests/data/engine/{file}.json",
                env!("CARGO_MANIFEST_DIR")
            );
            let raw = std::fs::read(&path).unwrap();
            let v: Version = serde_json::from_slice(&raw).unwrap();
            assert_eq!(v.version, want);
            assert!(v.api_version.starts_with("1."), "{}", v.api_version);
        }
    }
}
