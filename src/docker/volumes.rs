//! Volume calls: list, inspect, create, remove.

use serde_json::Value;

use super::transport::{enc, Docker};
use crate::error::Result;

impl Docker {
    /// Volumes matching an engine filter, e.g. {"name": ["berth-"]}.
    pub async fn volume_list(&self, filters: &Value) -> Result<Vec<Value>> {
        let v = self
            .get_json(
                &format!("/volumes?filters={}", enc(&filters.to_string())),
                "listing volumes",
            )
            .await?;
        Ok(v.get("Volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn volume_inspect(&self, name: &str) -> Result<Value> {
        self.get_json(
            &format!("/volumes/{}", enc(name)),
            &format!("inspecting volume {name}"),
        )
        .await
    }

    /// Create a volume from a spec {"Name", "Driver", "DriverOpts", "Labels"}.
    pub async fn volume_create(&self, spec: &Value) -> Result<Value> {
        let name = spec
            .get("Name")
            .and_then(Value::as_str)
            .unwrap_or("(anonymous)");
        self.post_json(
            "/volumes/create",
            Some(spec),
            &format!("creating volume {name}"),
        )
        .await
    }

    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        self.delete(
            &format!("/volumes/{}?force={force}", enc(name)),
            &format!("removing volume {name}"),
        )
        .await
    }
}
