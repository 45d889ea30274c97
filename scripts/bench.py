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
writer thread with the file's sha256, the scan thread, the HTTP runtime) and
dockerd's CPU in the same interval (from /proc/PID/task/*/stat). dockerd is
shared with whatever else runs on the engine: its figure is an upper bound.

Peers (issue 27), on the realistic mix: `docker cp` to /dev/null, berth's
default and fast backups, the zstd -1 -T0, igzip -1 -T2 and pigz -1
pipelines (each `| tee FILE | sha256sum`) and restic backing up the
volume's directory into a fresh repository, each with its wall time, CPU
(the whole pipeline's) and dockerd's CPU meanwhile (docker-tar included).
Targets: berth <= 4 CPU-s per GiB of tar, dockerd's CPU for berth within
10% of its CPU for `docker cp`, the backup ahead of every peer. `just
bench` installs the peers (Debian's zstd, isal, pigz, restic).

Encryption (issue 14): per mix, a default backup with `--encrypt-to` next
to one without, alternated run by run, and `verify --deep` and `restore`
of the encrypted backup (with `--identity`) next to those of the plain one;
the ratios are printed. The age key is made here with Python's
`cryptography` package (X25519); without it these rows are left out.

Env: BENCH_MIX (synthetic, realistic, both or none: default both), BENCH_MB
(size of the large file: default 1024 synthetic, 880 realistic),
BENCH_FILES (small files, default 20000), BENCH_RUNS (default 3),
BENCH_LEVELS (default "fast default best"), BENCH_BERTH (the binary to
measure, default the release build), BENCH_TMP (where the data goes),
BENCH_RSS_GIB (e.g. "1 8": also back up volumes of these sizes and report
peak RSS of each, to show it stays flat; slow, off by default: `just
bench-rss` runs it alone), BENCH_DOWNTIME_MB (default "256 1024 4096";
empty: no downtime rows).

Downtime (issue 25): for each size, a volume of the realistic mix in a
busybox container whose main process rewrites 1 MiB of it every half
second (a few MiB changed during any pre-copy), upgraded by `berth
upgrade` to an image that says "Upgrade complete."; the downtime is the
summary's `downtime_s` (the engine's stop of the old container to the
start of the new one). Each size: the default (pre-copy, then the delta
while stopped) next to `--no-precopy` (the whole backup while stopped),
alternated run by run. Targets: <= 3 s at 1 GiB; 1 GiB within 1.3x of
256 MiB."""

import glob, json, os, random, shlex, shutil, statistics, subprocess, sys, tempfile, time

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


def paired(cmd_a, cmd_b, setup=None):
    """Medians of two commands run alternately (a, b, a, b, ...), so that a
    change of the machine's load meanwhile hits both alike; and the last
    outputs."""
    ta, tb, out = [], [], {}
    for _ in range(RUNS):
        for cmd, times in ((cmd_a, ta), (cmd_b, tb)):
            if setup:
                setup()
            dt, out[cmd] = timed(cmd)
            times.append(dt)
    return statistics.median(ta), statistics.median(tb), out[cmd_a], out[cmd_b]


def dockerd_cpu():
    """dockerd's CPU seconds so far, with its reaped children (the
    docker-tar process that writes each archive stream)."""
    pid = dockerd_pid()
    if pid is None:
        return 0.0
    f = open(f"/proc/{pid}/stat").read()
    f = f[f.rindex(")") + 2 :].split()
    return sum(int(x) for x in f[11:15]) / TICK


def sampled(cmd, every, on_tick):
    """Runs `cmd` in a shell, calling `on_tick(pid)` every `every` seconds
    until it exits; exits the bench when it fails. Returns its wall seconds
    and its rusage (its own and that of every process it waited for)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        on_tick(p.pid)
        time.sleep(every)
    dt = time.monotonic() - t
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bench: {cmd!r} failed ({code}): {p.stderr.read().decode()[-500:]}")
    return dt, ru


def costed(cmd, setup=None):
    """Medians over RUNS of one command's wall seconds, its CPU seconds
    (user + sys of it and every process it waited for: all of a shell
    pipeline) and dockerd's CPU meanwhile; and the peak RSS (MiB, VmHWM
    sampled every 20 ms) of the process itself: run a lone command as
    `exec CMD` so that it is that process (a pipeline's is its shell's)."""
    walls, cpus, dockerds, hwm = [], [], [], [0]

    def tick(pid):
        hwm[0] = max(hwm[0], peak_rss(pid))

    for _ in range(RUNS):
        if setup:
            setup()
        d0 = dockerd_cpu()
        dt, ru = sampled(cmd, 0.02, tick)
        walls.append(dt)
        dockerds.append(dockerd_cpu() - d0)
        cpus.append(ru.ru_utime + ru.ru_stime)
    rss = hwm[0] / 1024
    return statistics.median(walls), statistics.median(cpus), statistics.median(dockerds), rss


def peers(tmp, out, clean_out, raw):
    """What an operator would use instead, and dockerd's work for berth
    against its work for `docker cp`, all in this run: prints a table and
    returns the rows for the summary. Each tool is Debian's own package
    (`scripts/dev setup bench` installs them)."""
    src = f"docker cp {NAME}:/data -"
    mount = subprocess.run(
        ["docker", "inspect", "-f", '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Source}}{{end}}{{end}}', NAME],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    repo = os.path.join(tmp, "restic")

    def fresh_repo():
        # A new repository each run: a second backup into the same one
        # would only find every chunk already stored.
        shutil.rmtree(repo, ignore_errors=True)
        sh(f"restic init --repo {repo} >/dev/null")

    os.environ["RESTIC_PASSWORD"] = "berth-bench"
    rows = [
        ("docker cp C:/data - > /dev/null", costed(f"exec {src} > /dev/null")),
        ("berth backup (default level)", costed(f"exec {BERTH} backup {NAME} --out {out}", setup=clean_out)),
        ("berth backup --compression fast", costed(f"exec {BERTH} backup {NAME} --compression fast --out {out}", setup=clean_out)),
        ("docker cp | zstd -1 -T0 | tee | sha256sum", costed(f"{src} | zstd -q -1 -T0 | tee {tmp}/peer.zst | sha256sum > /dev/null")),
        ("docker cp | igzip -1 -T2 | tee | sha256sum", costed(f"{src} | igzip -1 -T2 -c | tee {tmp}/peer.gz | sha256sum > /dev/null")),
        ("docker cp | pigz -1 | tee | sha256sum", costed(f"{src} | pigz -1 | tee {tmp}/peer.gz | sha256sum > /dev/null")),
        (f"restic {restic_version()} backup of the volume's directory", costed(f"exec restic --repo {repo} backup -q {mount}", setup=fresh_repo)),
    ]
    for f in ("peer.zst", "peer.gz"):
        if os.path.exists(f"{tmp}/{f}"):
            os.remove(f"{tmp}/{f}")
    shutil.rmtree(repo, ignore_errors=True)
    clean_out()
    print(f"\n  peers and dockerd ({RUNS} runs each, medians; CPU is the command's and every process it waited for;")
    print("  RSS is a lone command's peak, a pipeline's shell's):")
    print(f"    {'what':<52} {'wall s':>7} {'CPU s':>7} {'dockerd':>8} {'RSS MiB':>8}")
    for name, (w, c, d, r) in rows:
        shown = "-" if "|" in name else f"{r:.1f}"
        print(f"    {name:<52} {w:7.2f} {c:7.2f} {d:8.2f} {shown:>8}")
    cp, berth = rows[0][1], rows[1][1]
    per_gib = berth[1] / (raw / 2**30)
    best_peer = min(w for _, (w, _, _, _) in rows[3:])
    return [
        ("berth CPU-s per GiB of tar (<= 4)", per_gib, per_gib <= 4),
        ("dockerd CPU for berth / for docker cp (<= 1.10)", berth[2] / cp[2], berth[2] / cp[2] <= 1.10),
        ("backup wall / fastest peer's (< 1)", berth[0] / best_peer, berth[0] < best_peer),
    ]


def restic_version():
    out = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.split()
    return out[1] if len(out) > 1 else "?"


# ------------------------------------------------------------ an age key

BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def bech32(hrp, data):
    """Bech32 (BIP 173) of `data` bytes, as age writes its keys."""
    acc, bits, five = 0, 0, []
    for b in data:
        acc, bits = (acc << 8) | b, bits + 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + five + [0] * 6
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i, g in enumerate((0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)):
            chk ^= g if (top >> i) & 1 else 0
    chk ^= 1
    return hrp + "1" + "".join(BECH32[d] for d in five + [(chk >> 5 * (5 - i)) & 31 for i in range(6)])


def age_key(tmp):
    """A fresh age identity file (0600) in `tmp` and its public key; None
    without Python's `cryptography` package."""
    try:
        from cryptography.hazmat.primitives import serialization as ser
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    except ImportError:
        return None
    k = X25519PrivateKey.generate()
    secret = k.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    public = k.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
    path = os.path.join(tmp, "bench-identity")
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(bech32("age-secret-key-", secret).upper() + "\n")
    return path, bech32("age", public)


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
    seen, helpers, hwm = {}, {}, [0]

    def tick(pid):
        seen.update(cpu_of(pid))
        helpers.update(docker_tar())
        hwm[0] = max(hwm[0], peak_rss(pid))

    dt, _ = sampled(cmd, 0.05, tick)
    hwm = hwm[0]
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
        sizes = os.environ.get("BENCH_DOWNTIME_MB", "256 1024 4096").split()
        if sizes:
            summary.append(("downtime", downtime_rows(tmp, [int(m) for m in sizes])))
        sweep = os.environ.get("BENCH_RSS_GIB", "").split()
        if sweep:
            rss_sweep(tmp, [int(g) for g in sweep])
        print("\nsummary (same run, ratios):")
        for mix, checks in summary:
            print(f"  {mix}:")
            for name, val, ok in checks:
                print(f"    {name:<48} {val:7.2f}  {'ok' if ok else 'MISSED'}")
    finally:
        subprocess.run(f"docker rm -f -v {NAME} {APP} >/dev/null 2>&1; docker volume rm {APP} >/dev/null 2>&1", shell=True)
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
    sealed = encryption_cost(tmp, out, bdir, clean_out)
    # The issue-27 rows: on the realistic mix only (the one its targets name).
    against = peers(tmp, out, clean_out, raw) if mix == "realistic" else []
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
    print("  the scan thread, which reads the socket, checks the tar and hashes each entry (BLAKE3), is a tokio-rt-worker):")
    for name, secs in sorted(threads.items(), key=lambda kv: -kv[1]):
        if secs >= 0.01:
            print(f"    {name:<32} {secs:6.2f}")
    print(f"    {'berth, all threads':<32} {sum(v for k, v in threads.items() if not k.startswith('dockerd')):6.2f}")
    print(f"    {'dockerd (all its work meanwhile)':<32} {dockerd:6.2f}")
    with open("/proc/loadavg") as f:
        print(f"  load average at the end: {f.read().split()[0]}")
    d = results.get("default", min(results.values()))
    return sealed + against + [
        ("backup vs gzip -1 pipeline (speedup, >= 4)", gz / d, gz / d >= 4),
        ("backup vs plain docker cp (ratio, <= 1.25)", d / cp, d / cp <= 1.25),
        ("backup peak RSS MiB (<= 32)", rss_kib / 1024, rss_kib / 1024 <= 32),
        ("verify GB/s (>= 1)", vbytes / v / 1e9, vbytes / v / 1e9 >= 1),
        ("restore vs docker cp upload (ratio, <= 2)", rs / up, rs / up <= 2),
        ("index MiB (next to the archive's)", idx_bytes / 2**20, True),
    ]


APP = "berth-bench-app"
WRITER = ("/bin/busybox mkdir -p /data/hot; trap 'exit 0' TERM; i=0; while :; do "
          "/bin/busybox dd if=/dev/urandom of=/data/hot/f$((i % 8)) bs=256k count=4 2>/dev/null; "
          "i=$((i + 1)); /bin/busybox sleep 0.5; done")
SAYS_DONE = "echo Upgrade complete.; trap 'exit 0' TERM; while :; do /bin/busybox sleep 1; done"


def app_images(tmp):
    """berth-bench/app:old (the writer) and the file of berth-bench/app:new."""
    rootfs = os.path.join(tmp, "app-rootfs")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for tag, script in (("old", WRITER), ("new", SAYS_DONE)):
        cmd = json.dumps(["/bin/busybox", "sh", "-c", script])
        sh(f"tar -C {rootfs} -c . | docker import -c {shlex.quote('CMD ' + cmd)} - berth-bench/app:{tag} >/dev/null")
    new = os.path.join(tmp, "app-new.tar")
    sh(f"docker save berth-bench/app:new -o {new}")
    return new


def one_upgrade(tmp, new, extra):
    """Stand the old app up on the volume and upgrade it; its downtime and
    how much the delta carried (None without a pre-copy)."""
    runs = os.path.join(tmp, "runs")
    shutil.rmtree(runs, ignore_errors=True)
    sh(f"docker rm -f {APP} >/dev/null 2>&1 || true")
    sh(f"docker run -d --name {APP} -v {APP}:/data berth-bench/app:old >/dev/null")
    time.sleep(2)
    out = subprocess.run(
        f"{BERTH} upgrade {APP} --image-file {new} --success 'Upgrade complete' "
        f"--timeout 60s --backup-root {runs} --json {extra}",
        shell=True, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"bench: the upgrade failed ({out.returncode}): {out.stderr[-2000:]}")
    s = json.loads(out.stdout)
    sh(f"docker rm -f {APP} >/dev/null")
    sh("docker images --format '{{.Repository}}:{{.Tag}}' | grep '^berth-bench/app:' "
       "| grep -v -e ':old$' -e ':new$' | xargs -r docker rmi >/dev/null 2>&1 || true")
    shutil.rmtree(runs, ignore_errors=True)
    return s["downtime_s"], s.get("delta")


def downtime_rows(tmp, sizes):
    print("\n== downtime: the pre-copy against the whole backup while stopped", file=sys.stderr)
    new = app_images(tmp)
    got = {}
    for mb in sizes:
        sh(f"docker volume rm {APP} >/dev/null 2>&1 || true")
        data = os.path.join(tmp, "data")
        shutil.rmtree(data, ignore_errors=True)
        os.makedirs(data)
        make_realistic(data, mb)
        # Into a running container: Podman mounts the volume only then.
        sh(f"docker run -d --name {APP}-fill -v {APP}:/data berth-bench/app:old /bin/busybox sleep 100000 >/dev/null")
        sh(f"tar -C {tmp} -c data | docker cp - {APP}-fill:/")
        sh(f"docker rm -f {APP}-fill >/dev/null")
        shutil.rmtree(data, ignore_errors=True)
        pre, whole, carried = [], [], []
        for _ in range(RUNS):
            d, c = one_upgrade(tmp, new, "")
            pre.append(d)
            carried.append((c or {}).get("tar_bytes", 0))
            whole.append(one_upgrade(tmp, new, "--no-precopy")[0])
        got[mb] = (statistics.median(pre), statistics.median(whole), statistics.median(carried))
    print(f"\ndowntime: {RUNS} runs each, medians (stop of the old container to start of the new)")
    engine = os.environ.get("DOCKER_HOST", "the default engine")
    print(f"  engine: {engine}")
    for mb, (p, w, c) in got.items():
        print(f"  {mb:>5} MiB: pre-copy {p:6.2f} s (delta {c / 2**20:6.1f} MiB)   whole backup stopped {w:6.2f} s   {w / p:5.1f}x shorter")
    checks = []
    if 1024 in got:
        checks.append(("downtime at 1 GiB, pre-copy, s (<= 3)", got[1024][0], got[1024][0] <= 3))
        if 256 in got:
            r = got[1024][0] / got[256][0]
            checks.append(("downtime 1 GiB / 256 MiB, pre-copy (<= 1.3)", r, r <= 1.3))
    for mb, (p, w, _) in got.items():
        checks.append((f"downtime at {mb} MiB: whole backup / pre-copy", w / p, True))
    return checks


def encryption_cost(tmp, out, plain_dir, clean_out):
    """Backup, verify --deep and restore, encrypted (age, one recipient)
    next to plain, alternated; prints the times and returns the ratios for
    the summary."""
    key = age_key(tmp)
    if key is None:
        print("\n  encryption: skipped (no Python `cryptography` package to make an age key)")
        return []
    identity, public = key
    enc = f"--encrypt-to {public}"
    plain = f"{BERTH} backup {NAME} --out {out} --json"
    sealed = f"{plain} {enc}"
    # The plain backup of the main rows, kept out of `out` (emptied before
    # each backup below); the last encrypted backup stays where it is.
    pdir = os.path.join(tmp, "plain-backup")
    shutil.rmtree(pdir, ignore_errors=True)
    shutil.copytree(plain_dir, pdir)
    bp, be, _, o = paired(plain, sealed, setup=clean_out)
    sdir = json.loads(o)["dir"]
    vp, ve, _, _ = paired(f"{BERTH} verify --deep {pdir} --json", f"{BERTH} verify --deep {sdir} --identity {identity} --json")
    rp, re_, _, _ = paired(f"{BERTH} restore {pdir} --json", f"{BERTH} restore {sdir} --identity {identity} --json")
    shutil.rmtree(pdir, ignore_errors=True)
    print(f"\n  encryption (age X25519, one recipient; plain and encrypted alternated, {RUNS} runs each, medians):")
    for name, a, b in (("backup", bp, be), ("verify --deep", vp, ve), ("restore", rp, re_)):
        print(f"    {name:<14} plain {a:7.2f} s  encrypted {b:7.2f} s  ratio {b / a:5.2f}")
    return [
        ("encrypted / plain backup (ratio)", be / bp, True),
        ("encrypted / plain verify --deep (ratio)", ve / vp, True),
        ("encrypted / plain restore (ratio)", re_ / rp, True),
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
