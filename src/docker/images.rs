//! Image calls: inspect, tag, remove, load (docker save tarballs), import
//! (a rootfs tar, as `docker import`) and save.

use hyper::Method;
use serde_json::Value;

use super::body::{self, BodyReader, ReqBody};
use super::stream::{stream_error, JsonLines};
use super::transport::{enc, Docker};
use crate::error::{Error, Result};

impl Docker {
    pub async fn image_inspect(&self, name: &str) -> Result<Value> {
        self.get_json(
            &format!("/images/{}/json", enc(name)),
            &format!("inspecting image {name}"),
        )
        .await
    }

    /// Give image `name` the reference `repo:tag`.
    pub async fn image_tag(&self, name: &str, repo: &str, tag: &str) -> Result<()> {
        let doing = format!("tagging image {name} as {repo}:{tag}");
        self.post_json(
            &format!(
                "/images/{}/tag?repo={}&tag={}",
                enc(name),
                enc(repo),
                enc(tag)
            ),
            None,
            &doing,
        )
        .await
        .map(drop)
    }

    pub async fn image_remove(&self, name: &str, force: bool) -> Result<()> {
        let doing = format!("removing image {name}");
        let resp = self
            .send(
                Method::DELETE,
                &format!("/images/{}?force={force}&noprune=false", enc(name)),
                body::empty(),
                None,
                &doing,
            )
            .await?;
        self.collect(resp.into_body(), &doing).await.map(drop)
    }

    /// Load a `docker save` tarball (plain or compressed, streamed). Returns
    /// what the engine said it loaded ("repo:tag" or "sha256:..." ids). An
    /// error inside the 200 stream fails the load.
    pub async fn image_load(&self, tarball: ReqBody) -> Result<Vec<String>> {
        let doing = "loading an image";
        let mut d = self.clone();
        d.call_timeout = std::time::Duration::from_secs(24 * 3600);
        let resp = d
            .send(
                Method::POST,
                "/images/load?quiet=1",
                tarball,
                Some("application/x-tar"),
                doing,
            )
            .await?;
        let msgs = self.json_stream(resp, doing).await?;
        let loaded = msgs
            .iter()
            .filter_map(|v| v.get("stream").and_then(Value::as_str))
            .flat_map(|s| s.lines())
            .filter_map(|l| {
                l.strip_prefix("Loaded image: ")
                    .or_else(|| l.strip_prefix("Loaded image ID: "))
            })
            .map(|s| s.trim().to_owned())
            .collect::<Vec<_>>();
        if loaded.is_empty() {
            return Err(Error::failed(format!(
                "{doing}: the engine loaded nothing from the file (is it a docker save tarball?)"
            )));
        }
        Ok(loaded)
    }

    /// Import a rootfs tar as image `repo:tag`, applying Dockerfile
    /// `changes` (e.g. "ENV A=1", "ENTRYPOINT [\"/app\"]"). Returns the id.
    pub async fn image_import(
        &self,
        rootfs: ReqBody,
        repo: &str,
        tag: &str,
        changes: &[String],
    ) -> Result<String> {
        let doing = format!("importing image {repo}:{tag}");
        let mut path = format!(
            "/images/create?fromSrc=-&repo={}&tag={}",
            enc(repo),
            enc(tag)
        );
        for c in changes {
            path.push_str("&changes=");
            path.push_str(&enc(c));
        }
        let resp = self
            .send(
                Method::POST,
                &path,
                rootfs,
                Some("application/x-tar"),
                &doing,
            )
            .await?;
        let msgs = self.json_stream(resp, &doing).await?;
        let id = msgs
            .iter()
            .rev()
            .filter_map(|v| v.get("status").and_then(Value::as_str))
            .find(|s| s.starts_with("sha256:"))
            .map(str::to_owned)
            .ok_or_else(|| Error::failed(format!("{doing}: the engine reported no image id")))?;
        if self.podman().is_some() && tag != "latest" {
            // Podman 4.3 takes the repo but not the tag: it names the
            // import `repo:latest`. Tag it as asked, and take back the
            // `latest` it gave (only that name: the image has another now).
            self.image_tag(&id, repo, tag).await?;
            let latest = format!("{repo}:latest");
            if self
                .image_inspect(&latest)
                .await
                .is_ok_and(|v| v["Id"] == id.as_str())
            {
                self.image_remove(&latest, false).await?;
            }
        }
        Ok(id)
    }

    /// `docker save`: the image as a tar stream.
    pub async fn image_save(&self, name: &str) -> Result<BodyReader> {
        let doing = format!("saving image {name}");
        let resp = self
            .send(
                Method::GET,
                &format!("/images/{}/get", enc(name)),
                body::empty(),
                None,
                &doing,
            )
            .await?;
        Ok(self.reader(resp, &doing))
    }

    /// Read a JSON-lines progress stream to its end; fail on an error in it.
    async fn json_stream(
        &self,
        resp: hyper::Response<hyper::body::Incoming>,
        doing: &str,
    ) -> Result<Vec<Value>> {
        let mut reader = self.reader(resp, doing);
        let mut lines = JsonLines::default();
        let mut out = vec![];
        loop {
            let chunk = reader.chunk().await?;
            let at_end = chunk.is_none();
            if let Some(b) = &chunk {
                lines.push(b);
            }
            while let Some(v) = lines.next_value(at_end)? {
                if let Some(e) = stream_error(&v) {
                    return Err(Error::failed(format!("{doing}: {e}")));
                }
                out.push(v);
            }
            if at_end {
                return Ok(out);
            }
        }
    }
}
