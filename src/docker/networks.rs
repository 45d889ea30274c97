//! Network calls: attach a container to one more network.

use hyper::Method;
use serde_json::{json, Value};

use super::body;
use super::transport::{enc, Docker};
use crate::error::Result;

impl Docker {
    /// POST /networks/{net}/connect: attach container `id` with the
    /// endpoint settings `endpoint` (aliases, static addresses, links, ...).
    pub async fn network_connect(&self, net: &str, id: &str, endpoint: &Value) -> Result<()> {
        let doing = format!("connecting container {id} to network {net}");
        let body = json!({ "Container": id, "EndpointConfig": endpoint });
        // Docker answers an empty body, Podman `OK`: the status is the answer.
        let resp = self
            .send(
                Method::POST,
                &format!("/networks/{}/connect", enc(net)),
                body::full(serde_json::to_vec(&body).expect("JSON")),
                Some("application/json"),
                &doing,
            )
            .await?;
        self.collect(resp.into_body(), &doing).await.map(drop)
    }
}
