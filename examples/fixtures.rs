//! `just fixtures`: build the lightwave-sim fixture images and their
//! `docker save` tarballs (or find them up to date), then list them.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;

fn size(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{:>9.1} KiB", m.len() as f64 / 1024.0),
        Err(e) => format!("({e})"),
    }
}

#[tokio::main]
async fn main() {
    let d = support::engine::engine().await;
    let f = support::fixtures::ensure(&d).await;

    println!("lightwave-sim  {}", f.sim.display());
    println!("  sha256       {}", f.sim_sha256);
    println!();
    println!("images:");
    for i in [&f.old, &f.good, &f.broken] {
        println!(
            "  {:<44} {}  (LIGHTWAVE_VERSION={})",
            i.reference,
            &i.id[..19.min(i.id.len())],
            i.version
        );
    }
    println!();
    println!("docker save tarballs:");
    for t in [&f.good_tarballs, &f.broken_tarballs] {
        for p in [&t.tar, &t.tar_gz] {
            println!("  {}  {}", size(p), p.display());
        }
    }
    println!();
    if f.rebuilt.is_empty() {
        println!("everything was up to date ({:.2?})", f.elapsed);
    } else {
        println!("built in {:.2?}:", f.elapsed);
        for r in &f.rebuilt {
            println!("  {r}");
        }
    }
}
