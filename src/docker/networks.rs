//! Network calls: attach a container to one more network.

use serde_json::{json, Value};

use super::transport::{enc, Docker};
use crate::error::Result;

impl Docker {
    /// POST /networks/{net}/connect: attach container `id` with the
    /// endpoint settings `endpoint` (aliases, static addresses, links, ...).
    pub async fn network_connect(&self, net: &str, id: &str, endpoint: &Value) -> Result<()> {
        let doing = format!("connecting container {id} to network {net}");
        let body = json!({ "Container": id, "EndpointConfig": endpoint });
        self.post_json(
            &format!("/networks/{}/connect", enc(net)),
            Some(&body),
            &doing,
        )
        .await
        .map(drop)
    }
}
