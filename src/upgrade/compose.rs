//! Compose's view of an upgraded container. berth keeps compose's labels
//! as they were (recreate.rs), but compose re-creates a service from its
//! file: when the file (or, unreadable, the image reference the container
//! was made from) still gives the old image, compose's next re-create
//! would start the old version on the migrated data. berth cannot edit the
//! file; it says which line to change.

use std::collections::BTreeMap;

use super::recreate::COMPOSE_PROJECT;

const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
const SERVICE: &str = "com.docker.compose.service";

/// Warnings for a compose-made container (`labels`: its labels) upgraded
/// from `old_ref` to `new_ref`. None when the container is not compose's
/// or the old reference will name the new image (same reference).
pub(crate) fn warnings(
    labels: &BTreeMap<String, String>,
    old_ref: &str,
    new_ref: &str,
) -> Vec<String> {
    if !labels.contains_key(COMPOSE_PROJECT) || old_ref == new_ref {
        return vec![];
    }
    let service = labels.get(SERVICE).map_or("?", String::as_str);
    let files: Vec<&str> = labels
        .get(CONFIG_FILES)
        .map(|f| f.split(',').filter(|f| !f.is_empty()).collect())
        .unwrap_or_default();
    let mut out = vec![];
    let mut unread = vec![];
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(text) => {
                for n in image_lines(&text, old_ref) {
                    out.push(format!(
                        "compose file {f} line {n} (`image: {old_ref}`) still names the old image: compose's next re-create of service {service} would start it on the migrated data; change it to `image: {new_ref}`"
                    ));
                }
            }
            Err(_) => unread.push(*f),
        }
    }
    if out.is_empty() {
        let files = if files.is_empty() {
            "no compose file recorded".to_owned()
        } else if unread.is_empty() {
            format!("no `image: {old_ref}` line in {}", files.join(", "))
        } else {
            format!("compose file {} not readable here", unread.join(", "))
        };
        out.push(format!(
            "compose service {service} was created from {old_ref}, which still names the old image: compose's next re-create would start it on the migrated data; set the service's image to {new_ref} ({files})"
        ));
    }
    out
}

/// Line numbers (from 1) of `image: REF` lines (quoted or not) in a
/// compose file. Only numbers: the file's bytes are not repeated.
fn image_lines(text: &str, reference: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            l.trim()
                .strip_prefix("image:")
                .map(|v| v.trim().trim_matches(['"', '\'']))
                == Some(reference)
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(files: &str) -> BTreeMap<String, String> {
        [
            ("com.docker.compose.project", "p"),
            ("com.docker.compose.service", "lw"),
            ("com.docker.compose.project.config_files", files),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn the_line_that_names_the_old_image_is_named() {
        let dir = std::env::temp_dir().join(format!("berth-compose-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("docker-compose.yml");
        std::fs::write(
            &f,
            "services:\n  lw:\n    image: \"app:1\"\n  other:\n    image: app:10\n",
        )
        .unwrap();
        let w = warnings(&container(f.to_str().unwrap()), "app:1", "app:2");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("line 3") && w[0].contains("image: app:2"),
            "{w:?}"
        );
    }

    #[test]
    fn an_unreadable_file_still_warns_and_same_reference_does_not() {
        let w = warnings(&container("/nonexistent/dc.yml"), "app:1", "app:2");
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("not readable") && w[0].contains("app:2"),
            "{w:?}"
        );
        assert!(warnings(&container("/x.yml"), "app:latest", "app:latest").is_empty());
        assert!(warnings(&BTreeMap::new(), "a:1", "a:2").is_empty());
    }
}
