#!/usr/bin/env python3
"""berth's benchmark: backup, verify and restore against the docker CLI
doing the same work, measured in the same run on the same volume, as
ratios. Targets (issues 4 and 5): backup at the default level >= 3x faster
than `docker cp | gzip -1 | sha256sum` and within 1.5x of plain `docker cp`;
peak RSS < 64 MiB; verify >= 1 GB/s; restore (with its read-back check)
within 2x of `docker cp` uploading the same tar.

Env: BENCH_MB (size of the large file, default 1024), BENCH_FILES (small
files, default 20000), BENCH_RUNS (default 3), BENCH_BERTH (the binary to
measure, default the release build), BENCH_TMP (where the data goes)."""

import json, os, random, resource, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.environ.get("BENCH_BERTH") or os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/berth")
NAME = "berth-bench"
IMAGE = "berth-bench/rootfs:1"
MB = int(os.environ.get("BENCH_MB", "1024"))
FILES = int(os.environ.get("BENCH_FILES", "20000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def timed(cmd):
    """Seconds of one run and the child's peak RSS in KiB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.monotonic()
    p = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"bench: {cmd!r} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return dt, rss, p.stdout


def median(cmd, setup=None):
    times, out = [], None
    for _ in range(RUNS):
        if setup:
            setup()
        dt, _, out = timed(cmd)
        times.append(dt)
    return statistics.median(times), out


def make_data(d):
    """A semi-compressible large file (1 MiB blocks: random, text, zeros)
    and many small text files."""
    rnd = random.Random(7)
    words = [bytes(rnd.choice("abcdefghijklmnopqrstuvwxyz") * rnd.randint(1, 9), "ascii") for _ in range(4096)]
    text = b" ".join(rnd.choice(words) for _ in range(300_000))[: 1 << 20]
    with open(os.path.join(d, "large.bin"), "wb") as f:
        for i in range(MB):
            f.write(os.urandom(1 << 20) if i % 2 == 0 else text[i % 1000 :] + text[: i % 1000])
    for i in range(FILES):
        sub = os.path.join(d, "small", f"{i // 1000:03d}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i}.txt"), "wb") as f:
            f.write(text[(i * 37) % 100_000 : (i * 37) % 100_000 + 200 + i % 3000])


def main():
    if not os.path.exists(BERTH):
        sys.exit("bench: build the release binary first (just bench does)")
    tmp = tempfile.mkdtemp(prefix="berth-bench-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    try:
        run(tmp)
    finally:
        subprocess.run(f"docker rm -f {NAME} >/dev/null 2>&1", shell=True)
        shutil.rmtree(tmp, ignore_errors=True)


def run(tmp):
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    print(f"making {MB} MiB + {FILES} small files ...", file=sys.stderr)
    make_data(data)
    # An image of one file (berth needs none of it) and a container with a volume.
    sh(f"docker rm -f {NAME} >/dev/null 2>&1 || true")
    rootfs = os.path.join(tmp, "rootfs")
    os.makedirs(rootfs)
    shutil.copy(BERTH, os.path.join(rootfs, "berth"))
    sh(f"tar -C {rootfs} -c . | docker import -c 'CMD [\"/berth\"]' - {IMAGE} >/dev/null")
    sh(f"docker create --name {NAME} -v /data {IMAGE} >/dev/null")
    sh(f"tar -C {tmp} -c data | docker cp - {NAME}:/")
    sh(f"docker cp {NAME}:/data - > {tmp}/data.tar")
    raw = os.path.getsize(f"{tmp}/data.tar")
    out = os.path.join(tmp, "out")

    def clean_out():
        shutil.rmtree(out, ignore_errors=True)

    rows = []
    cp, _ = median(f"docker cp {NAME}:/data - > /dev/null")
    rows.append(("docker cp C:/data - > /dev/null", cp))
    gz, _ = median(f"docker cp {NAME}:/data - | gzip -1 | sha256sum > /dev/null")
    rows.append(("docker cp | gzip -1 | sha256sum", gz))
    results = {}
    for level in ["fast", "default", "best"]:
        t, _ = median(f"{BERTH} backup {NAME} --compression {level} --out {out} --json > /dev/null", setup=clean_out)
        results[level] = t
        rows.append((f"berth backup --compression {level}", t))
    # Peak RSS of one default backup, alone.
    clean_out()
    _, rss_kib, o = timed(f"{BERTH} backup {NAME} --out {out} --json")
    bdir = json.loads(o)["dir"]
    gz_bytes = sum(p["bytes"] for p in json.loads(o)["manifest"]["paths"])
    sh("sync")
    v, o = median(f"{BERTH} verify {bdir} --json")
    vbytes = json.loads(o)["report"]["bytes"]
    vd, _ = median(f"{BERTH} verify --deep {bdir} --json")
    up, _ = median(f"docker cp - {NAME}:/ < {tmp}/data.tar")
    rs, _ = median(f"{BERTH} restore {bdir} --json > /dev/null")
    rows += [("berth verify", v), ("berth verify --deep", vd), ("docker cp - C:/ < data.tar", up), ("berth restore (exact + read-back)", rs)]

    print(f"\nvolume: {raw / 2**20:.0f} MiB tar ({FILES} small files); default-level archive {gz_bytes / 2**20:.0f} MiB; {RUNS} runs, medians\n")
    for name, t in rows:
        print(f"  {name:<40} {t:7.2f} s  {raw / t / 2**20:8.0f} MiB/s")
    d = results["default"]
    checks = [
        ("backup vs gzip pipeline (speedup, >= 3)", gz / d, gz / d >= 3),
        ("backup vs plain docker cp (ratio, <= 1.5)", d / cp, d / cp <= 1.5),
        ("backup peak RSS MiB (< 64)", rss_kib / 1024, rss_kib / 1024 < 64),
        ("verify GB/s (>= 1)", vbytes / v / 1e9, vbytes / v / 1e9 >= 1),
        ("restore vs docker cp upload (ratio, <= 2)", rs / up, rs / up <= 2),
    ]
    print()
    for name, val, ok in checks:
        print(f"  {name:<44} {val:7.2f}  {'ok' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
