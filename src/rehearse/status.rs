//! `berth status RUN_DIR` of a rehearsal: how far it got, its verdict, and
//! what of it the engine still holds.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::record::Record;
use crate::docker::Docker;
use crate::error::Result;
use crate::upgrade::journal::{self, Phase, Step};
use crate::upgrade::watch::Verdict;

#[derive(Debug, Serialize)]
pub struct Status {
    pub run_dir: PathBuf,
    pub container: String,
    pub old_image: String,
    pub new_image: String,
    /// The cleanup ran to its end.
    pub ended: bool,
    pub verdict: Option<Verdict>,
    pub last_step: Option<(Step, Phase)>,
    /// The run's containers and volumes on the engine (None: not asked,
    /// or the engine did not answer).
    pub left_on_engine: Option<Vec<String>>,
}

pub async fn status(d: Option<&Docker>, run: &Path) -> Result<Status> {
    let r = Record::load(run)?;
    let events = journal::read(&run.join(journal::JOURNAL)).unwrap_or_default();
    let done = |s: Step| {
        events
            .iter()
            .rev()
            .find(|e| e.step == Some(s) && e.phase == Some(Phase::Done))
    };
    let left_on_engine = match d {
        Some(d) => left(d, &r).await.ok(),
        None => None,
    };
    Ok(Status {
        run_dir: run.to_owned(),
        container: r.plan.container.clone(),
        old_image: r.plan.old_image_ref.clone(),
        new_image: r.plan.new_image_ref.clone(),
        ended: done(Step::Finish).is_some(),
        verdict: done(Step::Watch).and_then(|e| serde_json::from_value(e.data.clone()).ok()),
        last_step: journal::last(&events),
        left_on_engine,
    })
}

/// Names of the containers and volumes labelled with the run.
async fn left(d: &Docker, r: &Record) -> Result<Vec<String>> {
    let mut out: Vec<String> = d
        .container_list(&r.filter())
        .await?
        .iter()
        .map(|c| format!("container {}", c.name()))
        .collect();
    for v in d.volume_list(&r.filter()).await? {
        let name = v.get("Name").and_then(serde_json::Value::as_str);
        out.push(format!("volume {}", name.unwrap_or("")));
    }
    Ok(out)
}

impl Status {
    pub fn render(&self) -> String {
        let state = match (&self.verdict, self.ended) {
            (Some(Verdict::Success(w)), true) => format!("rehearsal passed: {w}"),
            (Some(Verdict::Failure(w)), true) => format!("rehearsal FAILED: {w}"),
            (None, true) => "rehearsal ended without a verdict (it could not be done)".into(),
            (_, false) => format!(
                "rehearsal UNFINISHED at {}: run `berth resume {}` to remove what it left",
                self.last_step
                    .map(|(s, p)| format!("{s} ({p:?})").to_lowercase())
                    .unwrap_or_else(|| "its start".into()),
                self.run_dir.display()
            ),
        };
        let mut s = format!(
            "{}  {}  {} -> {}  {state}\n",
            self.run_dir.display(),
            self.container,
            self.old_image,
            self.new_image
        );
        match &self.left_on_engine {
            Some(l) if l.is_empty() => s += "  nothing of it is left on the engine\n",
            Some(l) => s += &format!("  on the engine: {}\n", l.join(", ")),
            None => {}
        }
        s
    }
}
