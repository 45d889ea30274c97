//! What needs no engine: the command line (completions, manual pages, exit
//! statuses of bad flags and unusable directories) and the client's
//! connection errors against tiny fake sockets. `just test-unit` runs this
//! suite with the unit tests.

use std::process::{Command, Output};

use berth::docker::Docker;
use berth::error::Kind;
use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(args: &[&str]) -> Output {
    Command::new(BERTH)
        .args(args)
        .env("DOCKER_HOST", "unix:///nonexistent/berth-offline.sock")
        .output()
        .expect("running berth")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The commands `berth --help` lists (the hidden `wipe` is not one).
fn commands() -> Vec<String> {
    let help = stdout(&berth(&["--help"]));
    let list = help
        .split("Commands:\n")
        .nth(1)
        .expect("a list of commands in --help");
    let names: Vec<String> = list
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect();
    assert!(names.len() >= 13, "{names:?} from:\n{help}");
    assert!(names.iter().any(|n| n == "rehearse"), "{names:?}");
    names
}

#[test]
fn completions_name_every_command() {
    let cmds = commands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = berth(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {o:?}");
        let script = stdout(&o);
        for c in &cmds {
            assert!(script.contains(c.as_str()), "{shell} completion lacks {c}");
        }
        // Flags of commands are completed too.
        assert!(script.contains("image-file"), "{shell}: no --image-file");
    }
    let bad = berth(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[test]
fn man_pages_name_every_command_and_flag() {
    let cmds = commands();
    let o = berth(&["man"]);
    assert!(o.status.success(), "{o:?}");
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq") || page.contains(".TH berth 1"),
        "{page}"
    );
    for c in &cmds {
        assert!(
            page.contains(&format!("berth\\-{c}(1)")),
            "berth.1 lacks {c}"
        );
    }
    let dir = std::env::temp_dir().join(format!("berth-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = berth(&["man", "--dir", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{o:?}");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    let mut want: Vec<String> = cmds.iter().map(|c| format!("berth-{c}.1")).collect();
    want.push("berth.1".into());
    want.sort();
    assert_eq!(pages, want);
    let upgrade = std::fs::read_to_string(dir.join("berth-upgrade.1")).unwrap();
    assert!(upgrade.contains("image\\-file"), "{upgrade}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `berth rehearse` never changes the container: the upgrade's flags that
/// would are not its flags (not listed, refused as usage errors).
#[test]
fn rehearse_has_no_flag_that_changes_the_container() {
    let help = stdout(&berth(&["rehearse", "--help"]));
    assert!(help.contains("--from-backup") && help.contains("--image-file"));
    for flag in ["--keep-old", "--rehearse-first"] {
        assert!(!help.contains(flag), "{flag} in:\n{help}");
        let o = berth(&["rehearse", "c", "--image-file", "x.tar", flag]);
        assert_eq!(o.status.code(), Some(2), "{flag}: {o:?}");
    }
}

/// A usage error: exit 2, and with --json one document with the error and
/// the exit code (the message is also the one line on stderr).
#[test]
fn bad_flags_exit_2_before_any_engine_is_asked() {
    for args in [
        &[
            "upgrade",
            "c",
            "--image-file",
            "x.tar",
            "--timeout",
            "soon",
            "--json",
        ][..],
        &["backup", "c", "--exec-before-backup", "'unclosed", "--json"],
        &[
            "prune",
            "/tmp",
            "--keep-last",
            "1",
            "--keep-within",
            "a while",
            "--json",
        ],
        &["verify", "/nonexistent/berth-backup", "--json"],
    ] {
        let o = berth(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {o:?}");
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["exit_code"], 2, "{v}");
        let e = v["error"].as_str().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).trim(),
            format!("berth: {e}")
        );
    }
    // clap's own refusals exit 2 too.
    assert_eq!(berth(&["backup"]).status.code(), Some(2));
}

/// No engine: exit 1 with the reason.
#[test]
fn no_engine_exits_1() {
    let o = berth(&["version", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["exit_code"], 1);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/berth-offline.sock"),
        "{v}"
    );
}

/// A backup directory whose files do not match SHA256SUMS: exit 5.
#[test]
fn a_damaged_backup_exits_5() {
    let dir = std::env::temp_dir().join(format!("berth-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), "{}").unwrap();
    std::fs::write(
        dir.join("SHA256SUMS"),
        format!("{}  manifest.json\n", "0".repeat(64)),
    )
    .unwrap();
    let o = berth(&["verify", dir.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(5), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("manifest.json"),
        "{o:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn no_socket_is_a_clear_error() {
    let e = Docker::connect(std::path::Path::new("/nonexistent/docker.sock"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, Kind::Connection);
    assert!(
        e.msg
            .contains("cannot reach the Docker engine at /nonexistent/docker.sock"),
        "{e}"
    );
}

/// A unix socket that answers every connection with `reply` and closes.
async fn fake_socket(reply: &'static [u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "berth-fake-{}-{}.sock",
        std::process::id(),
        reply.len()
    ));
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut c, _)) = l.accept().await {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf).await;
            let _ = c.write_all(reply).await;
            let _ = c.shutdown().await;
        }
    });
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_is_not_docker() {
    let p = fake_socket(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK").await;
    let e = Docker::connect(&p).await.err().unwrap();
    assert!(
        e.msg
            .contains("does not answer like a Docker engine (no Api-Version header)"),
        "{e}"
    );
    let p = fake_socket(b"SSH-2.0-OpenSSH_9.2\r\n").await;
    let e = Docker::connect(&p).await.err().unwrap();
    assert_eq!(e.kind, Kind::Connection, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_version_out_of_range() {
    let p =
        fake_socket(b"HTTP/1.1 200 OK\r\nApi-Version: 1.24\r\nContent-Length: 2\r\n\r\nOK").await;
    let e = Docker::connect(&p).await.err().unwrap();
    assert!(
        e.msg
            .contains("speaks API 1.24, older than the oldest berth supports (1.41"),
        "{e}"
    );
    // Podman 3 answered 1.40: the refusal names Podman and the version
    // it needs.
    let p = fake_socket(
        b"HTTP/1.1 200 OK\r\nApi-Version: 1.40\r\nLibpod-Api-Version: 3.4.4\r\nContent-Length: 2\r\n\r\nOK",
    )
    .await;
    let e = Docker::connect(&p).await.err().unwrap();
    assert!(
        e.msg.starts_with("Podman 3.4.4 at ")
            && e.msg.contains("speaks API 1.40")
            && e.msg.contains("(1.41, Podman 4.0)"),
        "{e}"
    );
    let p =
        fake_socket(b"HTTP/1.1 200 OK\r\nApi-Version: 1.99\r\nContent-Length: 2\r\n\r\nOK").await;
    assert_eq!(
        Docker::connect(&p).await.unwrap().api(),
        berth::docker::MAX_API
    );
    let p =
        fake_socket(b"HTTP/1.1 200 OK\r\nApi-Version: banana\r\nContent-Length: 2\r\n\r\nOK").await;
    assert!(Docker::connect(&p)
        .await
        .err()
        .unwrap()
        .msg
        .contains("unreadable Api-Version"));
}
