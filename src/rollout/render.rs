//! The human form of a rollout: one row per node, then why the nodes that
//! did not upgrade did not, and what to run next.

use super::state::{NodeState, Rollout};

const HEADER: [&str; 7] = [
    "NODE",
    "CONTAINER",
    "OLD IMAGE",
    "NEW IMAGE",
    "OUTCOME",
    "BACKUP",
    "TIME",
];

/// The table (and, for a dry run, each node's plan first).
pub fn render(r: &Rollout) -> String {
    let mut s = String::new();
    if r.dir.as_os_str().is_empty() {
        s += "rollout plan (nothing was changed):\n";
        for n in &r.nodes {
            s += &format!("node {} on {}:\n", n.spec.name, n.spec.socket.display());
            match &n.plan {
                Some(p) => s += &indent(&crate::upgrade::render_plan(p)),
                None => s += &format!("  already runs {}: left alone\n", n.new_image),
            }
        }
        return s;
    }
    s += &table(r);
    for n in r.nodes.iter().filter(|n| n.cause.is_some()) {
        s += &format!(
            "{}: {}\n",
            n.spec.name,
            n.cause.as_deref().unwrap_or_default()
        );
    }
    s += &format!("rollout {}: {}\n", r.dir.display(), counts(r));
    if !r.finished {
        s += &format!(
            "interrupted: run `berth resume {}` to go on\n",
            r.dir.display()
        );
    } else if r.nodes.iter().any(|n| n.outcome == NodeState::Pending) {
        s += "the nodes not reached were not touched\n";
    }
    s
}

fn table(r: &Rollout) -> String {
    let rows: Vec<[String; 7]> = r
        .nodes
        .iter()
        .map(|n| {
            let untouched = n.outcome == NodeState::Pending;
            [
                n.spec.name.clone(),
                n.spec.container.clone(),
                n.old_image.clone(),
                n.new_image.clone(),
                n.outcome.label().to_owned(),
                n.backup_dir
                    .as_ref()
                    .filter(|b| b.exists())
                    .map(|b| b.display().to_string())
                    .unwrap_or_else(|| "-".into()),
                if untouched || n.outcome == NodeState::Current {
                    "-".into()
                } else {
                    format!("{:.1}s", n.seconds)
                },
            ]
        })
        .collect();
    let mut width = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut l: String = cells
            .iter()
            .zip(width)
            .map(|(c, w)| format!("{c:<w$}  "))
            .collect();
        l.truncate(l.trim_end().len());
        l + "\n"
    };
    let mut s = line(&HEADER);
    for row in &rows {
        s += &line(&row.each_ref().map(String::as_str));
    }
    s
}

/// "2 upgraded, 1 rolled back, 1 not reached".
fn counts(r: &Rollout) -> String {
    let mut seen: Vec<(NodeState, usize)> = vec![];
    for n in &r.nodes {
        match seen.iter_mut().find(|(s, _)| *s == n.outcome) {
            Some((_, c)) => *c += 1,
            None => seen.push((n.outcome, 1)),
        }
    }
    seen.iter()
        .map(|(s, c)| format!("{c} {}", s.label().to_lowercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
