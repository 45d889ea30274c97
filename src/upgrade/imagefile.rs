//! An image tarball (`docker save`, plain or gzip) read before anything is
//! loaded: its repo tags and config digest (the image id it will load as),
//! and the sha256 of the file, in one streamed pass.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use serde::Serialize;
use serde_json::Value;

use crate::archive::hashio::HashReader;
use crate::error::{Error, Result};
use crate::secrets::{io_problem, json_problem};

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ImageFile {
    pub sha256: String,
    pub bytes: u64,
    pub gzip: bool,
    /// "sha256:<hex>": the id the engine will give the loaded image.
    pub(crate) config_digest: String,
    pub(crate) repo_tags: Vec<String>,
}

pub fn read(path: &Path) -> Result<ImageFile> {
    let bad = |why: String| {
        Error::usage(format!(
            "{}: not a docker save image tarball: {why}",
            path.display()
        ))
    };
    let f = File::open(path)
        .map_err(|e| Error::usage(format!("--image-file {}: {e}", path.display())))?;
    let mut hashed = BufReader::with_capacity(1 << 20, HashReader::new(f));
    let gzip = hashed
        .fill_buf()
        .map(|b| b.starts_with(&[0x1f, 0x8b]))
        .unwrap_or(false);
    let mut manifest: Option<Vec<u8>> = None;
    {
        let inner: Box<dyn Read> = if gzip {
            Box::new(MultiGzDecoder::new(&mut hashed))
        } else {
            Box::new(&mut hashed)
        };
        let mut ar = tar::Archive::new(inner);
        for e in ar.entries().map_err(|e| bad(io_problem(&e)))? {
            let mut e = e.map_err(|e| bad(io_problem(&e)))?;
            let p = e.path().map_err(|e| bad(io_problem(&e)))?.into_owned();
            if p.as_os_str() == "manifest.json" {
                let mut v = vec![];
                e.by_ref()
                    .take(16 << 20)
                    .read_to_end(&mut v)
                    .map_err(|e| bad(io_problem(&e)))?;
                manifest = Some(v);
            }
        }
    }
    // Hash whatever follows the tar's end (padding) too: sha256 of the file.
    io::copy(&mut hashed, &mut io::sink()).map_err(|e| bad(io_problem(&e)))?;
    let (_, sha256, bytes) = hashed.into_inner().finish();
    let manifest = manifest.ok_or_else(|| bad("it has no manifest.json".into()))?;
    let v: Value = serde_json::from_slice(&manifest)
        .map_err(|e| bad(format!("manifest.json: {}", json_problem(&e))))?;
    let images = v
        .as_array()
        .ok_or_else(|| bad("manifest.json is not a list".into()))?;
    let [img] = images.as_slice() else {
        return Err(bad(format!(
            "it holds {} images; berth loads exactly one",
            images.len()
        )));
    };
    let config = img
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no Config in manifest.json".into()))?;
    // "<hex>.json" (classic) or "blobs/sha256/<hex>" (OCI layout).
    let hex = config
        .rsplit('/')
        .next()
        .unwrap_or(config)
        .trim_end_matches(".json");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            "the Config of manifest.json is not a sha256 file name".into()
        ));
    }
    let repo_tags = img
        .get("RepoTags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(ImageFile {
        sha256,
        bytes,
        gzip,
        config_digest: format!("sha256:{hex}"),
        repo_tags,
    })
}
