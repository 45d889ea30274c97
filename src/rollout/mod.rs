//! `berth rollout`: the same upgrade on several engines, strictly one node
//! after another, with the flow of `berth upgrade` on each.
//!
//! Every node is checked before the first is touched (engine reachable,
//! container there, a complete upgrade plan; the image file is read and
//! hashed once). Then each node runs `upgrade::flow::upgrade` with its run
//! directory under `<rollout dir>/<node>/`; rollout.json is rewritten
//! atomically before and after every node. The first node that does not end
//! upgraded stops the rollout (unless `--continue-on-failure`): the nodes
//! after it are never touched. `berth resume <rollout dir>` skips the nodes
//! already done and finishes or rolls back an interrupted node through its
//! run directory, as `berth resume` does for one upgrade.
//!
//! Test hook (debug builds only): BERTH_TEST_ROLLOUT_KILL_AT=<node>:<begin|done>
//! makes berth SIGKILL itself right after rollout.json says that node began
//! (state `running`, nothing done yet) or ended.

pub mod node;
pub mod render;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::archive::seal::Keys;
use crate::clock;
use crate::docker::Docker;
use crate::error::{Error, Kind, Result};
use crate::upgrade::imagefile::ImageFile;
use crate::upgrade::plan::{self, Request};
use crate::upgrade::{flow, Say, Summary};
use node::NodeSpec;
use state::{NodeRun, NodeState, Rollout};

/// What `berth rollout` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub nodes: Vec<NodeSpec>,
    /// The upgrade flags for every node (`container` and `backup_root` are
    /// replaced per node).
    pub request: Request,
    pub continue_on_failure: bool,
    pub dry_run: bool,
}

/// Check every node, then upgrade them one after another. A dry run
/// returns the checked plans and writes nothing.
pub async fn rollout(o: Options, say: Say) -> Result<Rollout> {
    let img = plan::read_image_file(&o.request.image_file).await?;
    plan::check_sha(&o.request, &img)?;
    let t = clock::now_unix();
    let mut request = o.request;
    // Pinned: each node's upgrade re-reads the file against this, so a
    // file replaced in the middle of a rollout is refused, not half-rolled.
    request.sha256 = Some(img.sha256.clone());
    let root = request.backup_root.clone();
    let mut r = Rollout {
        dir: root.join(format!("rollout-{}", clock::compact(t))),
        created: clock::rfc3339(t),
        image_file: request.image_file.clone(),
        image_sha256: img.sha256.clone(),
        image_id: img.config_digest.clone(),
        continue_on_failure: o.continue_on_failure,
        finished: false,
        interrupted: false,
        nodes: o.nodes.into_iter().map(NodeRun::new).collect(),
        request,
    };
    for i in 0..r.nodes.len() {
        preflight(&mut r, i, &img).await?;
    }
    check_space(&r)?;
    if o.dry_run {
        r.dir = PathBuf::new();
        return Ok(r);
    }
    for n in &mut r.nodes {
        n.plan = None;
    }
    r.dir = state::create_dir(&root, &clock::compact(t))?;
    let _lock = state::lock(&r.dir)?;
    r.save()?;
    say.step(format!(
        "rolling out {} to {} node(s) (rollout directory {})",
        r.nodes[0].new_image,
        r.nodes.len(),
        r.dir.display()
    ));
    run_nodes(&mut r, say).await?;
    Ok(r)
}

/// `berth resume <rollout dir>`: go on where a killed or interrupted
/// rollout stopped. A finished rollout is reported as it ended.
pub async fn resume(dir: &Path, say: Say) -> Result<Rollout> {
    let _lock = state::lock(dir)?;
    let mut r = Rollout::load(dir)?;
    if r.finished {
        return Ok(r);
    }
    r.interrupted = false;
    say.step(format!("resuming the rollout {}", dir.display()));
    run_nodes(&mut r, say).await?;
    Ok(r)
}

/// Whether `dir` is a rollout directory (rather than one upgrade's run).
pub fn is_rollout_dir(dir: &Path) -> bool {
    dir.join(state::STATE).is_file()
}

fn node_context(n: &NodeSpec) -> String {
    format!(
        "node {} ({} on {})",
        n.name,
        n.container,
        n.socket.display()
    )
}

/// Everything `berth upgrade` checks before it changes anything, for one
/// node: nothing is changed on any node until every node passed.
async fn preflight(r: &mut Rollout, i: usize, img: &ImageFile) -> Result<()> {
    let ctx = node_context(&r.nodes[i].spec);
    let d = Docker::connect(&r.nodes[i].spec.socket)
        .await
        .map_err(|e| e.context(&ctx))?;
    if let Some(old) = current(&d, &r.nodes[i].spec.container, &r.image_id)
        .await
        .map_err(|e| e.context(&ctx))?
    {
        let n = &mut r.nodes[i];
        n.outcome = NodeState::Current;
        (n.old_image, n.new_image) = (old.clone(), old);
        return Ok(());
    }
    config_reachable(&d, &r.request)
        .await
        .map_err(|e| e.context(&ctx))?;
    let p = plan::plan_with(&d, &r.request_for(i), img)
        .await
        .map_err(|e| e.context(&ctx))?;
    let n = &mut r.nodes[i];
    n.old_image = p.old_image_ref.clone();
    n.new_image = p.new_image_ref.clone();
    n.plan = Some(p);
    Ok(())
}

/// `--config-file` is written to a host path on the machine berth runs
/// on: a node whose engine runs on another host (a socket forwarded over
/// SSH) would never see it, and this machine would get the secret instead.
async fn config_reachable(d: &Docker, r: &Request) -> Result<()> {
    if r.config_file.is_none() || r.force {
        return Ok(());
    }
    let there = d.info().await?.name;
    let here = local_hostname();
    if there == here {
        return Ok(());
    }
    Err(Error::usage(format!(
        "the engine runs on host {there:?}, not on this one ({here:?}): --config-file would be written here, where that node's container cannot see it; run berth on that node, or put the file in place there yourself (--force if this host and the engine's share the path)"
    )))
}

fn local_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname(2) into a buffer of the length given.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The container's image reference when it already runs `image_id`.
async fn current(d: &Docker, container: &str, image_id: &str) -> Result<Option<String>> {
    let c = d.container_inspect(container).await?;
    let reference = Some(c.config.image).filter(|r| !r.is_empty());
    Ok((c.image == image_id).then(|| reference.unwrap_or_else(|| image_id.to_owned())))
}

/// The backups of all nodes land under one root: each plan checked its
/// own backup against the free space, this checks their sum.
fn check_space(r: &Rollout) -> Result<()> {
    let plans: Vec<_> = r.nodes.iter().filter_map(|n| n.plan.as_ref()).collect();
    let total: u64 = plans.iter().map(|p| p.backup_bytes_estimate).sum();
    let free = plans.iter().map(|p| p.free_bytes).min().unwrap_or(u64::MAX);
    if total > free && !r.request.force {
        return Err(Error::failed(format!(
            "not enough space under {} for the backups of every node: {} free, the nodes' volumes hold about {}; free some or choose --backup-root (--force to try anyway)",
            r.request.backup_root.display(),
            crate::progress::human(free as f64),
            crate::progress::human(total as f64)
        )));
    }
    Ok(())
}

/// The node loop: skip what is done, stop after a failure (unless asked to
/// go on) or a signal.
async fn run_nodes(r: &mut Rollout, say: Say) -> Result<()> {
    let stop = stop_on_signal();
    for i in 0..r.nodes.len() {
        if !r.nodes[i].outcome.is_final() {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            run_node(r, i, say, &stop).await?;
            test_kill_hook(&r.nodes[i].spec.name, "done");
            let n = &r.nodes[i];
            say.step(format!("node {}: {}", n.spec.name, n.outcome.label()));
        }
        // Also for a node that failed before a kill: a resume must not go
        // past it either.
        if !r.nodes[i].outcome.is_success() && !r.continue_on_failure {
            break;
        }
    }
    r.interrupted = stop.load(Ordering::SeqCst);
    r.finished = !r.interrupted
        && !r
            .nodes
            .iter()
            .any(|n| matches!(n.outcome, NodeState::Running | NodeState::Interrupted));
    r.save()
}

/// One node: `running` in rollout.json first (so a kill is resumed through
/// the node's run directory), then the upgrade, then its outcome.
async fn run_node(r: &mut Rollout, i: usize, say: Say, stop: &AtomicBool) -> Result<()> {
    let t0 = Instant::now();
    say.step(format!("{}: upgrading", node_context(&r.nodes[i].spec)));
    let was = r.nodes[i].outcome;
    r.nodes[i].outcome = NodeState::Running;
    r.save()?;
    test_kill_hook(&r.nodes[i].spec.name, "begin");
    let result = upgrade_node(r, i, was, say).await;
    let root = r.node_root(i);
    let n = &mut r.nodes[i];
    n.seconds += t0.elapsed().as_secs_f64();
    match result {
        Ok(NodeEnd::Ran(s)) => n.record(&s),
        Ok(NodeEnd::Current(old)) => {
            n.outcome = NodeState::Current;
            (n.old_image, n.new_image) = (old.clone(), old);
        }
        Err(e) => {
            n.outcome = match e.kind {
                Kind::RollbackIncomplete => NodeState::RollbackIncomplete,
                Kind::Interrupted => NodeState::Interrupted,
                _ => NodeState::Failed,
            };
            n.cause = Some(e.msg);
            // What `berth resume` or `berth rollback` would be given.
            if let Some(run) = state::unfinished_run(&root) {
                n.backup_dir = Some(run.join(crate::upgrade::BACKUP));
                n.run_dir = Some(run);
            }
        }
    }
    // Put back because of Ctrl-C, not because the new version failed: a
    // resume upgrades it again.
    if stop.load(Ordering::SeqCst)
        && matches!(n.outcome, NodeState::RolledBack | NodeState::Aborted)
    {
        n.outcome = NodeState::Interrupted;
    }
    r.save()
}

enum NodeEnd {
    Ran(Box<Summary>),
    /// Already on the new image (upgraded by someone else meanwhile).
    Current(String),
}

/// Resume the node's unfinished run if there is one, else upgrade it.
/// `was`: the node's state before this attempt.
async fn upgrade_node(r: &Rollout, i: usize, was: NodeState, say: Say) -> Result<NodeEnd> {
    let spec = &r.nodes[i].spec;
    let ctx = node_context(spec);
    let d = Docker::connect(&spec.socket)
        .await
        .map_err(|e| e.context(&ctx))?;
    // A node left `running` by a killed berth: the run its last attempt
    // made (newer than the run recorded for an earlier attempt) decides,
    // ended or not (someone may have run `berth resume` on it since).
    // Otherwise only a run that has not ended is picked up: the ended run
    // of an interrupted node that was put back is not its answer.
    let root = r.node_root(i);
    let run = if was == NodeState::Running {
        state::latest_run(&root).filter(|run| r.nodes[i].run_dir.as_ref() != Some(run))
    } else {
        state::unfinished_run(&root)
    };
    if let Some(run) = run {
        say.step(format!(
            "{ctx}: resuming its interrupted upgrade {}",
            run.display()
        ));
        return flow::resume(&d, &run, say, &Keys::none())
            .await
            .map(|s| NodeEnd::Ran(Box::new(s)));
    }
    if let Some(old) = current(&d, &spec.container, &r.image_id)
        .await
        .map_err(|e| e.context(&ctx))?
    {
        return Ok(NodeEnd::Current(old));
    }
    flow::upgrade(&d, &r.request_for(i), false, say)
        .await
        .map(|s| NodeEnd::Ran(Box::new(s)))
}

/// A flag set by SIGINT/SIGTERM. The upgrade in progress reacts to the
/// same signal through `cancel` (and rolls back); this one keeps the
/// rollout from starting the next node.
fn stop_on_signal() -> Arc<AtomicBool> {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = Arc::new(AtomicBool::new(false));
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        if let Ok(mut s) = signal(kind) {
            let stop = stop.clone();
            tokio::spawn(async move {
                if s.recv().await.is_some() {
                    stop.store(true, Ordering::SeqCst);
                }
            });
        }
    }
    stop
}

#[cfg(not(debug_assertions))]
fn test_kill_hook(_: &str, _: &str) {}

#[cfg(debug_assertions)]
fn test_kill_hook(node: &str, at: &str) {
    if std::env::var("BERTH_TEST_ROLLOUT_KILL_AT").ok().as_deref() == Some(&format!("{node}:{at}"))
    {
        // SAFETY: kill(2) on our own pid; nothing else is touched.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
