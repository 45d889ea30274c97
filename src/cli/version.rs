//! `berth version`: berth's version, the engine's and the negotiated API.

use berth::docker::transport;
use berth::error::Result;

use crate::cli::global::Global;

pub async fn run(g: &Global) -> Result<()> {
    let d = g.connect().await?;
    let v = d.version().await?;
    let engine = Some(v.version).filter(|e| !e.is_empty());
    let engine = engine.unwrap_or_else(|| "?".to_owned());
    // Podman's version says nothing of Podman: name it.
    let product = if d.podman().is_some() {
        "Podman"
    } else {
        "Docker"
    };
    let out = serde_json::json!({
        "berth": env!("CARGO_PKG_VERSION"),
        "engine": engine,
        "product": product,
        "engine_api": Some(v.api_version).filter(|a| !a.is_empty()),
        "api": d.api().to_string(),
        "socket": d.socket(),
    });
    let text = || {
        format!(
            "berth   {}\nengine  {product} {engine} at {}\napi     {} (engine {}, berth {}..{})\n",
            env!("CARGO_PKG_VERSION"),
            d.socket().display(),
            d.api(),
            out["engine_api"].as_str().unwrap_or("?"),
            transport::MIN_API,
            transport::MAX_API
        )
    };
    g.output().show(&out, text);
    Ok(())
}
