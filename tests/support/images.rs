//! Test images built through berth's own Engine API client from a rootfs
//! tar: never pulled.

use berth::docker::{body, Docker};

pub const BUSYBOX: &str = "berth-test/busybox:1";

const APPLETS: &[&str] = &[
    "sh",
    "sleep",
    "cat",
    "ls",
    "mkdir",
    "rm",
    "true",
    "echo",
    "chmod",
    "chown",
    "ln",
    "mkfifo",
    "dd",
    "sync",
    "find",
    "stat",
    "sha256sum",
    "tar",
    "touch",
    "mv",
    "cp",
    "head",
    "sed",
    "grep",
];

/// Where Debian's busybox-static puts its binary.
const BUSYBOX_BIN: &str = "/bin/busybox";

/// A small image with a shell: Debian's static busybox and its applets.
/// Imported once per engine; later calls find it.
pub async fn busybox(d: &Docker) -> String {
    if d.image_inspect(BUSYBOX).await.is_ok() {
        return BUSYBOX.to_owned();
    }
    let bin = std::fs::read(BUSYBOX_BIN).unwrap_or_else(|e| {
        panic!(
            "{BUSYBOX_BIN}: {e}: install Debian's busybox-static (apt-get install busybox-static)"
        )
    });
    let mut tar = RootFs::new();
    tar.file("bin/busybox", &bin, 0o755);
    for a in APPLETS {
        tar.symlink(&format!("bin/{a}"), "busybox");
    }
    tar.dir("tmp", 0o1777);
    let changes = ["ENV PATH=/bin".to_owned(), "CMD [\"sh\"]".to_owned()];
    let (repo, tag) = BUSYBOX.split_once(':').unwrap();
    d.image_import(body::full(tar.finish()), repo, tag, &changes)
        .await
        .unwrap();
    BUSYBOX.to_owned()
}

/// A small in-memory rootfs tar (test images are a few MiB).
pub struct RootFs(tar::Builder<Vec<u8>>);

impl Default for RootFs {
    fn default() -> Self {
        Self::new()
    }
}

impl RootFs {
    pub fn new() -> Self {
        RootFs(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, 0o755, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}
