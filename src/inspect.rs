//! `berth inspect`: a container's image, state and the data a backup would
//! take. The JSON form is stable (see docs/inspect.md).

use serde::Serialize;
use serde_json::Value;

use crate::docker::{short_id as short, Docker};
use crate::error::Result;
use crate::mounts::{self, DataMap};

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: u32,
    pub container: ContainerInfo,
    pub image: ImageInfo,
    #[serde(flatten)]
    pub data: DataMap,
}

#[derive(Debug, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    pub running: bool,
}

#[derive(Debug, Serialize)]
pub struct ImageInfo {
    pub id: String,
    /// The reference the container was created from (Config.Image).
    pub reference: String,
    pub tags: Vec<String>,
}

pub async fn inspect(docker: &Docker, container: &str) -> Result<Report> {
    let c = docker.container_inspect(container).await?;
    let image_id = c.image.clone();
    // The image may be gone (removed by force): report what is known.
    let tags = match docker.image_inspect(&image_id).await {
        Ok(img) => img
            .get("RepoTags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) if e.is_not_found() => vec![],
        Err(e) => return Err(e),
    };
    Ok(Report {
        schema: 1,
        container: ContainerInfo {
            id: c.id.clone(),
            name: c.name().to_owned(),
            state: c.state.status.clone(),
            running: c.state.running,
        },
        image: ImageInfo {
            id: image_id,
            reference: c.config.image.clone(),
            tags,
        },
        data: mounts::resolve(docker, &c).await?,
    })
}

impl Report {
    /// The human table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let c = &self.container;
        s += &format!("container  {} ({}) {}\n", c.name, short(&c.id), c.state);
        let tags = if self.image.tags.is_empty() {
            "<untagged>".to_owned()
        } else {
            self.image.tags.join(", ")
        };
        s += &format!("image      {} ({})\n\n", tags, short(&self.image.id));
        let rows: Vec<[String; 5]> = self
            .data
            .mounts
            .iter()
            .map(|m| {
                [
                    m.destination.clone(),
                    m.kind.clone(),
                    m.name.clone().unwrap_or_else(|| m.source.clone()),
                    m.from.clone().unwrap_or_else(|| "-".into()),
                    if m.backup {
                        "yes".into()
                    } else {
                        format!("NO: {}", m.reason.clone().unwrap_or_default())
                    },
                ]
            })
            .collect();
        s += &table(
            &["PATH", "TYPE", "SOURCE", "VOLUMES-FROM", "BACKED UP"],
            &rows,
        );
        for e in &self.data.excluded {
            s += &format!("left out of {}: {} ({})\n", e.inside, e.path, e.reason);
        }
        if self.data.mounts.is_empty() {
            s += "\nthis container has no mounts: there is no data to back up\n";
        }
        s
    }
}

/// A plain left-aligned text table.
pub(crate) fn table<const N: usize>(head: &[&str; N], rows: &[[String; N]]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                l += c;
            } else {
                l += &format!("{c:<width$}  ", width = w[i]);
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut s = line(head.to_vec());
    for r in rows {
        s += &line(r.iter().map(String::as_str).collect());
    }
    s
}
