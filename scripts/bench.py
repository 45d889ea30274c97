#!/usr/bin/env python3
"""berth's benchmark: backup, verify and restore against the docker CLI
doing the same work, measured in the same run on the same volume, as
ratios, on two data mixes:

- synthetic: a large file of 1 MiB blocks, alternately random and
  repeated text, and many small text files (favours the stored-block path);
- realistic: one large file made of this machine's own executables and
  shared libraries (/usr/bin, /usr/lib/x86_64-linux-gnu) and 20,000 small
  text files (C headers from /usr/include), ~900 MiB in all.

Targets (issue 15), per mix, same run: backup at the default level <= 1.25x
plain `docker cp` and >= 4x faster than `docker cp | gzip -1 | tee | sha256sum`;
peak RSS <= 32 MiB; verify >= 1 GB/s; restore (deep check, upload,
read-back) <= 2x `docker cp` uploading the same tar. Each backup also
reports where the CPU went, per thread (berth's deflate workers, the gzip
writer thread with the tar's sha256, the scan thread, the HTTP runtime) and
dockerd's CPU in the same interval (from /proc/PID/task/*/stat). dockerd is
shared with whatever else runs on the engine: its figure is an upper bound.

Env: BENCH_MIX (synthetic, realistic, both or none: default both), BENCH_MB
(size of the large file: default 1024 synthetic, 880 realistic),
BENCH_FILES (small files, default 20000), BENCH_RUNS (default 3),
BENCH_LEVELS (default "fast default best"), BENCH_BERTH (the binary to
measure, default the release build), BENCH_TMP (where the data goes),
BENCH_RSS_GIB (e.g. "1 8": also back up volumes of these sizes and report
peak RSS of each, to show it stays flat; slow, off by default: `just
bench-rss` runs it alone)."""

import glob, json, os, random, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERTH = os.environ.get("BENCH_BERTH") or os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/berth")
NAME = "berth-bench"
IMAGE = "berth-bench/rootfs:1"
FILES = int(os.environ.get("BENCH_FILES", "20000"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LEVELS = os.environ.get("BENCH_LEVELS", "fast default best").split()
MIX = os.environ.get("BENCH_MIX", "both")
MIXES = {"both": ["synthetic", "realistic"], "none": []}.get(MIX, [MIX])
TICK = os.sysconf("SC_CLK_TCK")


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


def timed(cmd):
    """Seconds of one run and its output."""
    t = time.monotonic()
    p = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    dt = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"bench: {cmd!r} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return dt, p.stdout


def median(cmd, setup=None):
    times, out = [], None
    for _ in range(RUNS):
        if setup:
            setup()
        dt, out = timed(cmd)
        times.append(dt)
    return statistics.median(times), out


# ----------------------------------------------------------------- the data

def text_block():
    rnd = random.Random(7)
    words = [bytes(rnd.choice("abcdefghijklmnopqrstuvwxyz") * rnd.randint(1, 9), "ascii") for _ in range(4096)]
    return b" ".join(rnd.choice(words) for _ in range(300_000))[: 1 << 20]


def make_synthetic(d, mb):
    """A semi-compressible large file (1 MiB blocks: random, text) and many
    small text files."""
    text = text_block()
    with open(os.path.join(d, "large.bin"), "wb") as f:
        for i in range(mb):
            f.write(os.urandom(1 << 20) if i % 2 == 0 else text[i % 1000 :] + text[: i % 1000])
    for i in range(FILES):
        write_small(d, i, text[(i * 37) % 100_000 : (i * 37) % 100_000 + 200 + i % 3000])


def write_small(d, i, data):
    sub = os.path.join(d, "small", f"{i // 1000:03d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"f{i}.txt"), "wb") as f:
        f.write(data)


def machine_files(dirs, pattern="*"):
    out = []
    for top in dirs:
        for p in sorted(glob.glob(os.path.join(top, "**", pattern), recursive=True)):
            if os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return out


def make_realistic(d, mb):
    """One large file of this machine's executables and libraries (repeated
    if they are fewer than `mb` MiB) and small text files cut from its C
    headers."""
    bins = machine_files(["/usr/bin", "/usr/lib/x86_64-linux-gnu"])
    want = mb << 20
    with open(os.path.join(d, "large.bin"), "wb") as f:
        while f.tell() < want:
            for p in bins:
                with open(p, "rb") as src:
                    f.write(src.read(want - f.tell()))
                if f.tell() >= want:
                    break
    headers = machine_files(["/usr/include"], "*.h")
    text = bytearray()
    for p in headers:
        if len(text) > 64 << 20:
            break
        with open(p, "rb") as src:
            text += src.read()
    for i in range(FILES):
        at = (i * 7919 * 37) % max(1, len(text) - 20_000)
        write_small(d, i, bytes(text[at : at + 300 + (i * 131) % 7000]))


def make_sized(d, gib):
    """`gib` GiB for the RSS sweep: the synthetic large file alone."""
    text = text_block()
    with open(os.path.join(d, "large.bin"), "wb") as f:
        for i in range(gib << 10):
            f.write(os.urandom(1 << 20) if i % 2 == 0 else text)


# ------------------------------------------------------- where the CPU goes

def cpu_of(pid):
    """utime + stime in seconds, per thread name, of a live process."""
    out = {}
    for stat in glob.glob(f"/proc/{pid}/task/*/stat"):
        try:
            s = open(stat).read()
        except OSError:
            continue
        name = s[s.index("(") + 1 : s.rindex(")")]
        f = s[s.rindex(")") + 2 :].split()
        out[stat] = (name, (int(f[11]) + int(f[12])) / TICK)
    return out


def by_name(per_thread):
    totals = {}
    for name, secs in per_thread.values():
        # berth-gzip-0, berth-gzip-1: one group.
        key = "berth-gzip (deflate workers)" if name.startswith("berth-gzip-") and name[11:].isdigit() else name
        totals[key] = totals.get(key, 0.0) + secs
    return totals


def dockerd_pid():
    try:
        return int(open("/var/run/docker.pid").read().strip())
    except (OSError, ValueError):
        return None


def profile(cmd):
    """Runs `cmd` (`exec berth ...`), sampling its threads' CPU times and
    peak RSS every 50 ms until it exits; returns (seconds, CPU seconds per
    thread group, dockerd CPU seconds meanwhile, berth's peak RSS in KiB)."""
    dpid = dockerd_pid()
    d0 = sum(s for _, s in cpu_of(dpid).values()) if dpid else 0.0
    t = time.monotonic()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen, helpers, hwm = {}, {}, 0
    while True:
        pid, status, _ = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        seen.update(cpu_of(p.pid))
        helpers.update(docker_tar())
        hwm = max(hwm, peak_rss(p.pid))
        time.sleep(0.05)
    dt = time.monotonic() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"bench: {cmd!r} failed ({p.returncode})")
    d1 = sum(s for _, s in cpu_of(dpid).values()) if dpid else 0.0
    threads = by_name(seen)
    # dockerd writes the tar stream in a child process (re-executed as
    # docker-tar), not in a thread of its own: sampled separately. Others'
    # docker-tar processes running meanwhile count too (an upper bound).
    threads["dockerd's docker-tar process"] = sum(helpers.values())
    return dt, threads, d1 - d0, hwm


def peak_rss(pid):
    """VmHWM (KiB) of a live process. Not wait4's ru_maxrss: that counts the
    forked Python (this script, with its data) before the exec of berth."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def docker_tar():
    """CPU seconds of each live docker-tar process."""
    out = {}
    for proc in glob.glob("/proc/[0-9]*"):
        try:
            # Re-executed through /proc/self/exe: only argv[0] names it.
            if not open(f"{proc}/cmdline", "rb").read().startswith(b"docker-tar\0"):
                continue
            s = open(f"{proc}/stat").read()
        except OSError:
            continue
        f = s[s.rindex(")") + 2 :].split()
        out[proc] = (int(f[11]) + int(f[12])) / TICK
    return out


# ------------------------------------------------------------------ the run

def main():
    if not os.path.exists(BERTH):
        sys.exit("bench: build the release binary first (just bench does)")
    tmp = tempfile.mkdtemp(prefix="berth-bench-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    try:
        summary = []
        for mix in MIXES:
            summary.append((mix, run_mix(tmp, mix)))
        sweep = os.environ.get("BENCH_RSS_GIB", "").split()
        if sweep:
            rss_sweep(tmp, [int(g) for g in sweep])
        print("\nsummary (same run, ratios):")
        for mix, checks in summary:
            print(f"  {mix}:")
            for name, val, ok in checks:
                print(f"    {name:<48} {val:7.2f}  {'ok' if ok else 'MISSED'}")
    finally:
        subprocess.run(f"docker rm -f -v {NAME} >/dev/null 2>&1", shell=True)
        shutil.rmtree(tmp, ignore_errors=True)


def load_volume(tmp, make, *args):
    """A fresh container (an image of one file: berth needs none of it) with
    a volume at /data holding what `make` writes; the volume's tar path."""
    data = os.path.join(tmp, "data")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    make(data, *args)
    sh(f"docker rm -f -v {NAME} >/dev/null 2>&1 || true")
    rootfs = os.path.join(tmp, "rootfs")
    if not os.path.isdir(rootfs):
        os.makedirs(rootfs)
        shutil.copy(BERTH, os.path.join(rootfs, "berth"))
        sh(f"tar -C {rootfs} -c . | docker import -c 'CMD [\"/berth\"]' - {IMAGE} >/dev/null")
    sh(f"docker create --name {NAME} -v /data {IMAGE} >/dev/null")
    sh(f"tar -C {tmp} -c data | docker cp - {NAME}:/")
    shutil.rmtree(data, ignore_errors=True)
    sh(f"docker cp {NAME}:/data - > {tmp}/data.tar")
    return f"{tmp}/data.tar"


def run_mix(tmp, mix):
    mb = int(os.environ.get("BENCH_MB", "1024" if mix == "synthetic" else "880"))
    print(f"\n== {mix}: making {mb} MiB + {FILES} small files ...", file=sys.stderr)
    tar = load_volume(tmp, make_synthetic if mix == "synthetic" else make_realistic, mb)
    raw = os.path.getsize(tar)
    out = os.path.join(tmp, "out")

    def clean_out():
        shutil.rmtree(out, ignore_errors=True)

    rows = []
    cp, _ = median(f"docker cp {NAME}:/data - > /dev/null")
    rows.append(("docker cp C:/data - > /dev/null", cp))
    gz, _ = median(f"docker cp {NAME}:/data - | gzip -1 | tee {tmp}/pipe.gz | sha256sum > /dev/null")
    gz_size = os.path.getsize(f"{tmp}/pipe.gz")
    os.remove(f"{tmp}/pipe.gz")
    rows.append(("docker cp | gzip -1 | tee | sha256sum", gz))
    results, sizes = {}, {}
    for level in LEVELS:
        t, o = median(f"{BERTH} backup {NAME} --compression {level} --out {out} --json", setup=clean_out)
        results[level] = t
        sizes[level] = sum(p["bytes"] for p in json.loads(o)["manifest"]["paths"])
        rows.append((f"berth backup --compression {level}", t))
    clean_out()
    _, o = timed(f"{BERTH} backup {NAME} --out {out} --json")
    report = json.loads(o)
    bdir = report["dir"]
    gz_bytes = sum(p["bytes"] for p in report["manifest"]["paths"])
    idx_bytes = sum(p.get("index_bytes", 0) for p in report["manifest"]["paths"])
    entries = sum(p["entries"] for p in report["manifest"]["paths"])
    sh("sync")
    v, o = median(f"{BERTH} verify {bdir} --json")
    vbytes = json.loads(o)["report"]["bytes"]
    vd, _ = median(f"{BERTH} verify --deep {bdir} --json")
    up, _ = median(f"docker cp - {NAME}:/ < {tar}")
    rs, _ = median(f"{BERTH} restore {bdir} --json > /dev/null")
    rows += [("berth verify", v), ("berth verify --deep", vd), ("docker cp - C:/ < data.tar", up), ("berth restore (deep check, upload, read-back)", rs)]
    pdir = os.path.join(tmp, "profile")
    shutil.rmtree(pdir, ignore_errors=True)
    # One more default backup: its peak RSS and where its CPU goes.
    pt, threads, dockerd, rss_kib = profile(f"exec {BERTH} backup {NAME} --out {pdir} --json")
    shutil.rmtree(pdir, ignore_errors=True)

    print(f"\n{mix}: volume {raw / 2**20:.0f} MiB tar, {entries} entries; {RUNS} runs, medians")
    print(f"  default-level archive {gz_bytes / 2**20:.1f} MiB ({gz_bytes / raw:.1%}), index {idx_bytes / 2**20:.2f} MiB; gzip -1 pipeline {gz_size / 2**20:.1f} MiB")
    for level in LEVELS:
        print(f"  --compression {level:<8} archive {sizes[level] / 2**20:8.1f} MiB")
    print()
    for name, t in rows:
        print(f"  {name:<46} {t:7.2f} s  {raw / t / 2**20:8.0f} MiB/s")
    print(f"\n  CPU seconds of one default backup ({pt:.2f} s wall; the machine has {os.cpu_count()} cores;")
    print("  the scan thread (tar check, index, entry sha256) and the HTTP body are tokio-rt-worker threads):")
    for name, secs in sorted(threads.items(), key=lambda kv: -kv[1]):
        if secs >= 0.01:
            print(f"    {name:<32} {secs:6.2f}")
    print(f"    {'berth, all threads':<32} {sum(v for k, v in threads.items() if not k.startswith('dockerd')):6.2f}")
    print(f"    {'dockerd (all its work meanwhile)':<32} {dockerd:6.2f}")
    with open("/proc/loadavg") as f:
        print(f"  load average at the end: {f.read().split()[0]}")
    d = results.get("default", min(results.values()))
    return [
        ("backup vs gzip -1 pipeline (speedup, >= 4)", gz / d, gz / d >= 4),
        ("backup vs plain docker cp (ratio, <= 1.25)", d / cp, d / cp <= 1.25),
        ("backup peak RSS MiB (<= 32)", rss_kib / 1024, rss_kib / 1024 <= 32),
        ("verify GB/s (>= 1)", vbytes / v / 1e9, vbytes / v / 1e9 >= 1),
        ("restore vs docker cp upload (ratio, <= 2)", rs / up, rs / up <= 2),
        ("index MiB (next to the archive's)", idx_bytes / 2**20, True),
    ]


def rss_sweep(tmp, gibs):
    """Peak RSS of a default backup of volumes of each size: it must not
    grow with the volume."""
    print("\nRSS sweep (default level, one run each):")
    out = os.path.join(tmp, "out")
    for g in gibs:
        load_volume(tmp, make_sized, g)
        os.remove(f"{tmp}/data.tar")
        shutil.rmtree(out, ignore_errors=True)
        t, _, _, rss_kib = profile(f"exec {BERTH} backup {NAME} --out {out} --json")
        shutil.rmtree(out, ignore_errors=True)
        print(f"  {g:3d} GiB: {t:7.2f} s, peak RSS {rss_kib / 1024:6.1f} MiB")


if __name__ == "__main__":
    main()
