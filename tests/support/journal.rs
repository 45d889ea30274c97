//! An upgrade run's journal (`journal.jsonl`), as the tests read it.

use std::fs;
use std::path::Path;

use serde_json::Value;

/// Every event of the run directory's journal (none if it has none).
pub fn journal(run: &Path) -> Vec<Value> {
    fs::read_to_string(run.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether `step` reached `phase` ("begin", "done", "failed").
pub fn journal_has(run: &Path, step: &str, phase: &str) -> bool {
    journal(run)
        .iter()
        .any(|e| e["step"] == step && e["phase"] == phase)
}

/// The newest outcome the journal records, if the run ended.
pub fn journal_outcome(run: &Path) -> Option<String> {
    journal(run)
        .iter()
        .rev()
        .find_map(|e| e["outcome"].as_str().map(String::from))
}
