//! Conversions several commands share, from flag values to library values.

use std::path::{Path, PathBuf};

use berth::error::Result;

/// A path from the command line, made absolute once here: the library
/// keeps paths in plan.json and rollout.json for a resume that may run from
/// another directory, and shows them in its reports.
pub fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

pub fn absolute_opt(p: Option<PathBuf>) -> Option<PathBuf> {
    p.map(absolute)
}

/// A `--profile` value: a built-in name stays a name (it wins over a file
/// of that name, see `profile::load`); a file is made absolute.
pub fn profile(p: Option<String>) -> Option<String> {
    p.map(|p| {
        if berth::profile::builtin(&p).is_none() && Path::new(&p).is_file() {
            absolute(PathBuf::from(&p)).to_string_lossy().into_owned()
        } else {
            p
        }
    })
}

/// A hook flag (`--exec-before-backup 'CMD ARG...'`) as its argv.
pub fn hook(cmd: Option<&str>) -> Result<Option<Vec<String>>> {
    cmd.map(berth::profile::parse_command).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute_and_names_stay() {
        let p = absolute(PathBuf::from("berth-backups"));
        assert!(p.is_absolute() && p.ends_with("berth-backups"), "{p:?}");
        assert_eq!(profile(Some("lightwave".into())).unwrap(), "lightwave");
        // Neither a built-in name nor an existing file: left for
        // profile::load to refuse with the name the user typed.
        assert_eq!(profile(Some("no-such".into())).unwrap(), "no-such");
        assert_eq!(
            hook(Some("sh -c 'a b'")).unwrap().unwrap(),
            ["sh", "-c", "a b"]
        );
    }
}
