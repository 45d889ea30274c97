//! The engine side of the pre-copy's delta (issue 25): a helper container
//! of the target's own image with its volumes mounted, running `berth
//! idle` as its main process, in which berth execs `berth delta` once per
//! volume (see [`super::delta`] for what it walks and writes).
//!
//! Exec output streams straight back, multiplexed (stdout: the tar of the
//! changed entries; stderr: one JSON line per removed path, then the
//! counts), without the log driver in between, which may drop or reorder
//! lines. The pre-copy's index of each volume is copied in beside berth's
//! binary when the helper is created, before anything is stopped.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use serde::Deserialize;
use serde_json::{json, Value};

use super::backup::stream_to_files;
use super::deflate::Method;
use super::delta::Counts;
use super::helper::{config, helper_tar, remove_helpers, HELPER_BIN};
use super::index::{write_line, IndexEntry};
use crate::docker::exec::Stdout;
use crate::docker::{body, Docker};
use crate::error::{Error, Result};
use crate::manifest::PathEntry;

/// One volume to look at: where it is mounted and what the pre-copy saw.
#[derive(Clone, Copy)]
pub struct DeltaOf<'a> {
    /// The mount point, as in the target container (`/var/lib/vmware`).
    pub path: &'a str,
    /// The pre-copy's content index of it.
    pub before: &'a [IndexEntry],
    /// Mountpoints below `path`, relative to it, that its archive left out.
    pub excluded: &'a [String],
    /// The owner Podman's archive gives every entry (the container's user,
    /// as numbers); None on Docker, which names the real owners.
    pub owner: Option<(u32, u32)>,
}

/// What `berth delta` reported on stderr besides the tar.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DeltaReport {
    /// The pre-copy's paths that are gone, in index form.
    pub removed: Vec<String>,
    pub counts: Counts,
}

/// Where [`DeltaHelper::write_delta`] writes.
pub struct DeltaFiles {
    pub dir: PathBuf,
    /// The files' stem: `<slug>.tar.gz`, `<slug>.index.gz`.
    pub slug: String,
    pub method: Method,
    /// age recipients, as for a backup; empty: plain files.
    pub encrypt_to: Vec<String>,
}

/// The exec's stdout, read on the scan thread.
struct ChannelRead {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChannelRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// A running helper; [`DeltaHelper::remove`] ends it.
pub struct DeltaHelper<'d> {
    d: &'d Docker,
    id: String,
    /// Write entries as Podman's archive names them, not Docker's.
    podman: bool,
}

/// Where the index of the `i`th volume is put in the helper.
fn index_file(i: usize) -> String {
    format!("/.berth-index-{i}.json")
}

impl<'d> DeltaHelper<'d> {
    /// Create and start the helper from `image` with `mounts` (the
    /// engine's `HostConfig.Mounts` form, every volume of `volumes`
    /// mounted at its path), berth's binary and each volume's index in it.
    /// `label` names the target container, so a helper left by a killed
    /// berth can be found and removed. `berth`: the static binary to run
    /// (`helper::own_binary()`; a test passes the berth it built).
    pub async fn start(
        d: &'d Docker,
        berth: &Path,
        image: &str,
        mounts: Value,
        volumes: &[DeltaOf<'_>],
        label: &str,
    ) -> Result<DeltaHelper<'d>> {
        let doing = "starting the helper that finds what changed since the pre-copy";
        let mut files = Vec::with_capacity(volumes.len());
        for (i, v) in volumes.iter().enumerate() {
            let mut lines = Vec::new();
            for e in v.before {
                write_line(&mut lines, e)?;
            }
            files.push((index_file(i), lines));
        }
        let named: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (&n[..], &b[..])).collect();
        let tar = helper_tar(berth, &named)?;
        let name = format!(
            "berth-delta-{}-{}",
            std::process::id(),
            crate::clock::now_unix()
        );
        let labels = json!({"berth.helper": "delta", "berth.container": label});
        let cfg = config(image, mounts, &["idle".to_owned()], labels);
        // One upgrade of a container at a time (its lock): a delta helper
        // found on it now was left by a berth that was killed.
        remove_helpers(d, "delta", ("berth.container", label))
            .await
            .map_err(|e| e.context(doing))?;
        let id = d
            .container_create(&name, &cfg)
            .await
            .map_err(|e| e.context(doing))?;
        let h = DeltaHelper {
            d,
            id,
            podman: d.podman().is_some(),
        };
        let started = async {
            d.archive_put(&h.id, "/", body::full(tar)).await?;
            d.container_start(&h.id).await
        };
        match started.await {
            Ok(()) => Ok(h),
            Err(e) => {
                let _ = h.d.container_remove(&h.id, true, false).await;
                Err(e.context(doing))
            }
        }
    }

    /// Run `berth delta` on the `i`th volume of those given to
    /// [`DeltaHelper::start`] and write what changed since `since_ns` as
    /// `<slug>.tar.gz` and `<slug>.index.gz` in `dir`, as a backup writes
    /// an archive and its index (the tar is scanned and checked on the
    /// way). The entry's `path` is left empty.
    pub async fn write_delta(
        &self,
        i: usize,
        v: &DeltaOf<'_>,
        since_ns: i128,
        to: DeltaFiles,
    ) -> Result<(PathEntry, DeltaReport)> {
        let (mut tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let scan = tokio::task::spawn_blocking(move || {
            let input = ChannelRead {
                rx,
                cur: Bytes::new(),
            };
            stream_to_files(input, &to.dir, &to.slug, &[], to.method, &to.encrypt_to)
        });
        let report = self.changes(i, v, since_ns, false, &mut tx).await;
        // The scan waits for the stream's end, so it has only stopped by
        // now if it failed first (a full disk, a tar it refused): then its
        // error is the cause. Otherwise a helper that failed is, and the
        // scan's "ended early" follows from it.
        let scan_stopped = tx.is_closed();
        drop(tx);
        let scanned = scan
            .await
            .map_err(|e| Error::failed(format!("the delta's scan thread failed: {e}")))
            .and_then(|r| r);
        match (report, scanned) {
            (Ok(r), Ok(entry)) => Ok((entry, r)),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
            (Err(e), Err(scan)) => Err(if scan_stopped { scan } else { e }),
        }
    }

    /// How much the delta of the `i`th volume would carry now: the walk
    /// in the helper, the changed files read there but nothing sent.
    pub async fn count(&self, i: usize, v: &DeltaOf<'_>, since_ns: i128) -> Result<Counts> {
        let mut none = Vec::new();
        let r = self.changes(i, v, since_ns, true, &mut none).await?;
        Ok(r.counts)
    }

    /// Run `berth delta` in the helper: the tar goes to `tar` as it comes
    /// (none with `count`).
    async fn changes(
        &self,
        i: usize,
        v: &DeltaOf<'_>,
        since_ns: i128,
        count: bool,
        tar: &mut impl Stdout,
    ) -> Result<DeltaReport> {
        let doing = format!("finding what changed in {} since the pre-copy", v.path);
        let mut cmd = vec![
            HELPER_BIN.to_owned(),
            "delta".to_owned(),
            v.path.to_owned(),
            format!("--name={}", super::tar_base(v.path)),
            format!("--since={since_ns}"),
            format!("--index={}", index_file(i)),
        ];
        cmd.extend(v.excluded.iter().map(|x| format!("--exclude={x}")));
        if let Some((u, g)) = v.owner {
            cmd.push(format!("--owner={u}:{g}"));
        }
        if self.podman {
            cmd.push("--podman".to_owned());
        }
        if count {
            cmd.push("--count".to_owned());
        }
        let run = async {
            let exec = self.d.exec_create(&self.id, &cmd, None).await?;
            let mut stderr = Vec::new();
            let streamed = self.d.exec_stream(&exec, &mut stderr, tar).await;
            let code = self
                .d
                .exec_inspect(&exec)
                .await?
                .get("ExitCode")
                .and_then(Value::as_i64);
            streamed?;
            report(code, &stderr)
        };
        run.await.map_err(|e| e.context(doing))
    }

    /// Stop and remove the helper.
    pub async fn remove(self) -> Result<()> {
        self.d
            .container_remove(&self.id, true, false)
            .await
            .map_err(|e| e.context("removing the delta helper"))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Removed {
        removed: String,
    },
    Done {
        walked: u64,
        changed: u64,
        bytes: u64,
    },
}

/// Parse `berth delta`'s stderr: the removed paths, then the counts. A
/// non-zero exit, or a last line that is not the counts, is an error with
/// the helper's last line (berth's own message: paths, never file bytes).
fn report(code: Option<i64>, stderr: &[u8]) -> Result<DeltaReport> {
    let text = String::from_utf8_lossy(stderr);
    let last = text.lines().last().unwrap_or("").trim();
    if code != Some(0) {
        let code = code.map_or("an unknown status".to_owned(), |c| c.to_string());
        return Err(Error::failed(format!(
            "the helper exited with {code}: {last}"
        )));
    }
    let mut r = DeltaReport::default();
    let mut done = false;
    for l in text.lines() {
        match serde_json::from_str::<Line>(l) {
            Ok(Line::Removed { removed }) if !done => r.removed.push(removed),
            Ok(Line::Done {
                walked,
                changed,
                bytes,
            }) if !done => {
                r.counts = Counts {
                    walked,
                    changed,
                    bytes,
                    removed: r.removed.len() as u64,
                };
                done = true;
            }
            _ => {
                return Err(Error::failed(format!(
                    "the helper wrote a line berth does not know ({} bytes)",
                    l.len()
                )))
            }
        }
    }
    if !done {
        return Err(Error::failed("the helper ended without its counts"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_reads_removed_paths_then_counts() {
        let err = b"{\"removed\":\"v/a\"}\n{\"removed\":\"v/b c\"}\n{\"walked\":9,\"changed\":2,\"bytes\":5}\n";
        let r = report(Some(0), err).unwrap();
        assert_eq!(r.removed, ["v/a", "v/b c"]);
        assert_eq!(
            r.counts,
            Counts {
                walked: 9,
                changed: 2,
                bytes: 5,
                removed: 2
            }
        );
    }

    #[test]
    fn report_refuses_a_failure_a_cut_or_a_stray_line() {
        let e = report(Some(1), b"berth: reading /v/x: Permission denied\n").unwrap_err();
        assert!(
            e.to_string().contains("exited with 1: berth: reading /v/x"),
            "{e}"
        );
        let e = report(Some(0), b"{\"removed\":\"v/a\"}\n").unwrap_err();
        assert!(e.to_string().contains("without its counts"), "{e}");
        let e = report(
            Some(0),
            b"secret=hunter2\n{\"walked\":1,\"changed\":0,\"bytes\":0}\n",
        )
        .unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let after = b"{\"walked\":1,\"changed\":0,\"bytes\":0}\n{\"removed\":\"v/a\"}\n";
        assert!(report(Some(0), after).is_err());
        assert!(report(None, b"").is_err());
    }
}
