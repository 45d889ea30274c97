//! The backup manifest (schema 4, documented in docs/backup-format.md) and
//! the SHA256SUMS file beside it.
//!
//! A backup directory holds manifest.json, one `<slug>.tar.gz` and one
//! `<slug>.index.gz` (`<slug>.index` in older backups) per path, each with
//! `.age` after it when the backup is encrypted, and SHA256SUMS over every
//! other file. Names in a manifest or in SHA256SUMS
//! are plain file names inside the directory: anything with a '/' or a
//! leading '.' is refused, so a hostile manifest cannot make berth read or
//! write outside its directory.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::archive::index::ContentHash;
use crate::error::{Context, Error, Result};
use crate::mounts::{Excluded, Mount};
use crate::secrets::json_problem;

/// The newest schema this berth reads, and the one it writes. Schema 1
/// was a plain backup, 2 an encrypted one (so that a berth without
/// encryption said it was too old instead of failing on `.age` files); 3
/// has no `tar_sha256` (a SHA-256 pass over every byte of the tar that no
/// check needs: see [`PathEntry::tar_sha256`]), so berths that require it
/// say they are too old instead of failing on the missing field; 4 hashes
/// each file's content in the index with BLAKE3 instead of SHA-256
/// ([`PathEntry::content_hash`]), so berths that only know SHA-256 say they
/// are too old instead of finding every file's content "missing"; 5 is a
/// backup with a pre-copy's delta in it ([`PathEntry::delta`]), so that
/// berths without it say they are too old instead of restoring the
/// pre-copy alone. A backup without a delta is still written as 4.
pub(crate) const SCHEMA: u32 = 5;
/// What a backup without a delta is written as.
pub(crate) const SCHEMA_PLAIN: u32 = 4;
pub const MANIFEST: &str = "manifest.json";
pub const SUMS: &str = "SHA256SUMS";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub(crate) berth_version: String,
    /// RFC 3339 UTC.
    pub created: String,
    pub engine: Engine,
    pub container: Container,
    pub image: Image,
    pub compression: Compression,
    pub paths: Vec<PathEntry>,
    /// Set when the archives and indexes are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
    /// Mounts nested inside backed-up paths that were left out.
    #[serde(default)]
    pub excluded: Vec<Excluded>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    pub version: String,
    pub api: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// Whether it ran when the backup started.
    pub was_running: bool,
    /// Whether berth stopped it for a consistent copy.
    pub stopped_for_backup: bool,
    /// The whole inspect JSON, as the engine gave it, less the values of
    /// its environment: `Config.Env` is written as `Config.EnvNames` (a
    /// restore does not need them, and a backup gets copied off the host).
    #[serde(serialize_with = "without_env_values")]
    pub inspect: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    pub id: String,
    pub reference: String,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Compression {
    pub format: String,
    /// The back end's own level (see `deflate`).
    pub level: u32,
    /// Which deflate back end wrote the archives, e.g. "isa-l 3" or
    /// "zlib 9"; absent in backups older than the choice. Informational:
    /// any gzip reader reads either.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deflate: Option<String>,
}

/// How the archives and indexes are encrypted: public keys only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encryption {
    /// "age": each file is an age file (X25519 recipients).
    pub format: String,
    /// Every recipient the files are encrypted to (`age1...`).
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathEntry {
    /// Absolute path in the container.
    pub path: String,
    /// The mount that holds it, when it is one.
    pub mount: Option<Mount>,
    /// File names inside the backup directory.
    pub archive: String,
    pub index: String,
    /// sha256 and size of the .tar.gz file (of the .tar.gz.age when encrypted).
    pub sha256: String,
    pub bytes: u64,
    /// sha256 of the tar inside it: schemas 1 and 2 only. Not written any
    /// more: SHA256SUMS proves the file's bytes, gzip's CRC-32 each
    /// decompression, and the index every entry's content and metadata, so
    /// this third pass over every byte only cost CPU (0.5 s per GiB).
    /// Still checked by `verify --deep` where a backup has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tar_sha256: Option<String>,
    /// Size of the tar inside it.
    pub tar_bytes: u64,
    pub index_sha256: String,
    /// Size of the index file (0 in manifests written before it was kept).
    #[serde(default)]
    pub index_bytes: u64,
    /// The hash of each file's content in the index: "blake3" from schema
    /// 4 on; absent (SHA-256) before. Every check of the index (verify
    /// --deep, a restore's read-back) hashes with it.
    #[serde(default)]
    pub content_hash: ContentHash,
    pub entries: u64,
    /// Paths relative to `path` cut out of the archive (nested mounts).
    pub excluded: Vec<String>,
    pub seconds: f64,
    /// Schema 5: the archive above is a pre-copy, taken while the
    /// container ran; this is what changed from its start to the stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Box<Delta>>,
}

/// What changed in a path between the start of its pre-copy and the stop
/// (see docs/backup-format.md). The path's state at the stop is the
/// pre-copy's archive less the `removed` paths, then the delta's archive;
/// `final_index` is its content index, which every check proves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delta {
    /// The changed and new entries: their archive and its own index, as a
    /// path's (`<slug>.delta.tar.gz`, `<slug>.delta.index.gz`; the same
    /// `path`, no delta of its own).
    pub changes: PathEntry,
    /// `<slug>.removed`: the tar names of the pre-copy's entries that are
    /// gone, each ended by a NUL byte (`xargs -0 rm -rf --` reads it).
    pub removed: String,
    pub removed_sha256: String,
    pub removed_bytes: u64,
    /// How many names `removed` holds.
    pub removed_count: u64,
    /// `<slug>.final.index.gz`: the content index of the path at the stop.
    pub final_index: String,
    pub final_index_sha256: String,
    pub final_index_bytes: u64,
    pub final_entries: u64,
    /// Entries changed at or after this instant (ns since the epoch, the
    /// start of the second before the pre-copy's first read) were taken
    /// again.
    pub since_ns: i64,
}

impl PathEntry {
    /// Every file of the path in the backup directory, with its sha256:
    /// what SHA256SUMS lists for it.
    pub fn files(&self) -> Vec<(&str, &str)> {
        let mut out = vec![
            (self.archive.as_str(), self.sha256.as_str()),
            (self.index.as_str(), self.index_sha256.as_str()),
        ];
        if let Some(d) = &self.delta {
            out.extend(d.changes.files());
            out.push((&d.removed, &d.removed_sha256));
            out.push((&d.final_index, &d.final_index_sha256));
        }
        out
    }

    /// The content index of the path's state in the backup, its sha256 and
    /// size: the final index when there is a delta, the archive's own
    /// otherwise.
    pub fn state_index(&self) -> (&str, u64) {
        match &self.delta {
            Some(d) => (&d.final_index, d.final_entries),
            None => (&self.index, self.entries),
        }
    }

    /// The archives' whole size in the backup (the pre-copy's and the
    /// delta's).
    pub fn all_bytes(&self) -> u64 {
        self.bytes + self.delta.as_ref().map_or(0, |d| d.changes.bytes)
    }
}

impl Manifest {
    /// Read and check a manifest: schema known, file names confined.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let p = dir.join(MANIFEST);
        let text = std::fs::read(&p).ctx(format!("reading {}", p.display()))?;
        let v: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::integrity(format!("{}: {}", p.display(), json_problem(&e))))?;
        let schema = v.get("schema").and_then(Value::as_u64).unwrap_or(0);
        if schema > u64::from(SCHEMA) {
            return Err(Error::integrity(format!(
                "{}: backup format {schema} is newer than this berth understands ({SCHEMA}); use a newer berth",
                p.display()
            )));
        }
        let m: Manifest = serde_json::from_value(v).map_err(|e| {
            Error::integrity(format!(
                "{}: not a berth manifest: {}",
                p.display(),
                json_problem(&e)
            ))
        })?;
        for e in &m.paths {
            if m.schema < 3 && e.tar_sha256.is_none() {
                return Err(Error::integrity(format!(
                    "{}: not a berth manifest: a schema {} path without tar_sha256",
                    p.display(),
                    m.schema
                )));
            }
            for (name, _) in e.files() {
                plain_name(name)?;
            }
            if let Some(d) = &e.delta {
                let same = d.changes.path == e.path
                    && d.changes.content_hash == e.content_hash
                    && d.changes.excluded == e.excluded;
                if m.schema < 5 || d.changes.delta.is_some() || !same {
                    return Err(Error::integrity(format!(
                        "{}: not a berth manifest: the delta of {:?} is not one of schema 5",
                        p.display(),
                        e.path
                    )));
                }
            }
            if !clean_absolute(&e.path) {
                return Err(Error::integrity(format!(
                    "{}: path {:?} is not a clean absolute path (no `.`, `..` or empty components)",
                    p.display(),
                    e.path
                )));
            }
        }
        Ok(m)
    }

    pub fn entry(&self, path: &str) -> Option<&PathEntry> {
        self.paths.iter().find(|e| e.path == path)
    }
}

fn without_env_values<S: serde::Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
    crate::secrets::redact_inspect(v).serialize(s)
}

/// A file name that stays inside the backup directory.
pub(crate) fn plain_name(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.contains('\0')
        && !name.contains('\n');
    if ok {
        Ok(name)
    } else {
        Err(Error::integrity(format!(
            "refusing file name {name:?}: it points outside the backup directory"
        )))
    }
}

/// `/` or `/a/b` without empty, `.` or `..` components: a restore writes
/// into the parent of this path, so it must name the place it seems to.
fn clean_absolute(path: &str) -> bool {
    path == "/"
        || path.strip_prefix('/').is_some_and(|rest| {
            rest.split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
        })
}

/// A path's archive base name: "/var/lib/vmware" -> "var-lib-vmware".
pub(crate) fn slug(path: &str) -> String {
    let s: String = path
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if s.is_empty() {
        "root".into()
    } else {
        s.trim_start_matches('.').to_owned()
    }
}

/// SHA256SUMS text in the format `sha256sum -c` reads.
pub fn sums_text(files: &[(String, String)]) -> String {
    files
        .iter()
        .map(|(name, hex)| format!("{hex}  {name}\n"))
        .collect()
}

/// Parse SHA256SUMS into (name, hex) pairs; names must be plain.
pub(crate) fn parse_sums(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // The line itself is not quoted: the file may be anything.
        let bad = || {
            Error::integrity(format!(
                "{SUMS} line {}: not `<sha256>  <file name>`",
                i + 1
            ))
        };
        let (hex, name) = line
            .split_once("  ")
            .or_else(|| line.split_once(" *"))
            .ok_or_else(bad)?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        out.push((plain_name(name)?.to_owned(), hex.to_ascii_lowercase()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("/var/lib/vmware"), "var-lib-vmware");
        assert_eq!(slug("/etc/vmware-sso/"), "etc-vmware-sso");
        assert_eq!(slug("/"), "root");
        assert_eq!(slug("/a b/ü"), "a-b--");
        assert_eq!(slug("/.hidden"), "hidden");
    }

    #[test]
    fn names_are_confined() {
        for bad in ["../x", "/etc/passwd", "a/b", ".hidden", "", "a\nb"] {
            assert!(plain_name(bad).is_err(), "{bad:?}");
        }
        assert!(plain_name("var-lib-vmware.tar.gz").is_ok());
    }

    #[test]
    fn manifest_paths_are_clean() {
        for ok in ["/", "/var/lib/vmware", "/a b/ü"] {
            assert!(clean_absolute(ok), "{ok:?}");
        }
        for bad in ["", "x", "/a/../etc", "/a/./b", "//a", "/a/", "/..", "a/b"] {
            assert!(!clean_absolute(bad), "{bad:?}");
        }
    }

    #[test]
    fn no_env_value_is_written() {
        let c = Container {
            id: "i".into(),
            name: "n".into(),
            was_running: true,
            stopped_for_backup: false,
            inspect: serde_json::json!({"Config": {"Env": ["SECRET_TOKEN=v4lue-xyz"]}}),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert!(!text.contains("v4lue-xyz"), "{text}");
        assert!(text.contains("SECRET_TOKEN"), "{text}");
    }

    #[test]
    fn sums_round_trip() {
        let h = "ab".repeat(32);
        let t = sums_text(&[("a.tar.gz".into(), h.clone())]);
        assert_eq!(
            parse_sums(&t).unwrap(),
            vec![("a.tar.gz".to_owned(), h.clone())]
        );
        assert!(parse_sums(&format!("{h}  ../evil\n")).is_err());
        assert!(parse_sums("zz  a\n").is_err());
    }
}
