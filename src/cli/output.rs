//! Where the command line's output goes: results on stdout (text, or one
//! JSON document with --json), warnings and errors on stderr, and the
//! reporter the library tells its steps and progress through.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use berth::error::Error;
use berth::exit::ExitStatus;
use berth::rehearse::report::Report;
use berth::report::{Reporter, SILENT};
use berth::upgrade::Say;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON document on stdout instead of text; no step lines, no meters.
    pub json: bool,
}

impl Output {
    /// The reporter for the library: the terminal's, silent with --json
    /// (stdout then carries one document and stderr only what went wrong).
    pub fn reporter(self) -> &'static dyn Reporter {
        if self.json {
            &SILENT
        } else {
            &TERMINAL
        }
    }

    pub fn say(self) -> Say {
        Say {
            report: self.reporter(),
        }
    }

    /// A command's result: `doc` as the one JSON document with --json,
    /// else the text `text` renders.
    pub fn show(self, doc: &impl Serialize, text: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(doc).expect("serializable")
            );
        } else {
            print!("{}", text());
        }
    }

    /// The result of an upgrade or rollout that a passing rehearsal let run
    /// (--rehearse-first): the rehearsal's report in text before it, in the
    /// JSON document as "rehearsal".
    pub fn show_after(
        self,
        rehearsal: Option<&Report>,
        mut doc: serde_json::Value,
        text: impl FnOnce() -> String,
    ) {
        if let Some(rep) = rehearsal {
            doc["rehearsal"] = serde_json::to_value(rep).expect("serializable");
        }
        self.show(&doc, || {
            rehearsal.map(Report::render).unwrap_or_default() + &text()
        });
    }

    /// What the user should know although the command succeeded (stderr,
    /// with --json too).
    pub fn warnings(self, warnings: &[String]) {
        for w in warnings {
            eprintln!("berth: warning: {w}");
        }
    }

    /// A failed command: the message on stderr (and with --json the error
    /// document on stdout); its exit status.
    pub fn error(self, e: &Error) -> ExitStatus {
        let status = e.kind.exit_status();
        if self.json {
            println!(
                "{}",
                serde_json::json!({ "error": e.msg, "exit_code": status })
            );
        }
        eprintln!("berth: {e}");
        status
    }
}

/// Step lines as `berth: ...` on stderr; meters on stderr when it is a
/// terminal (redrawn in place, cleared when done).
pub struct Terminal;

static TERMINAL: Terminal = Terminal;

impl Reporter for Terminal {
    fn step(&self, msg: &str) {
        eprintln!("berth: {msg}");
    }

    fn meters(&self) -> bool {
        std::io::stderr().is_terminal()
    }

    fn meter(&self, label: &str, line: &str) {
        eprint!("\r\x1b[K{label}  {line}");
        let _ = std::io::stderr().flush();
    }

    fn meter_done(&self) {
        eprint!("\r\x1b[K");
    }
}
