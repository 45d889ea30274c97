# berth: run `just` for the list.

target := "x86_64-unknown-linux-gnu"
bin := "target/" + target + "/release/berth"

default:
    @just --list

# Debug build of berth and the fixture program.
build:
    cargo build --workspace

# The static release binary (crt-static, LTO, stripped); prints size and ldd.
static:
    cargo build --release -p berth
    @ls -l {{bin}} | awk '{printf "%s: %.2f MiB\n", $9, $5/1048576}'
    @ldd {{bin}} 2>&1 || true

# Start a Docker engine in the background if none answers on the socket.
docker-up:
    scripts/docker-up

# The fixture images (lightwave-sim 6.6.0, 6.7.0, 6.8.0-broken) and their docker save tarballs.
fixtures: docker-up
    cargo run -q -p berth --example fixtures

# The whole test suite against the real engine (the command CI runs).
test: docker-up
    cargo build -q --release -p lightwave-sim
    cargo nextest run --workspace --no-fail-fast

# The tests that need no engine (unit tests of the library and the fixture program): seconds, for quick iteration.
test-unit:
    cargo nextest run --workspace --lib --bins

# The main job on a built-in demo appliance.
demo: docker-up
    cargo build -q --release -p berth
    cargo run -q --release -p berth --example demo

# Backup/verify/restore benchmark on two data mixes (synthetic, realistic):
# ratios against docker cp and the gzip -1 pipeline measured in the same run,
# index size, peak RSS, CPU per thread. BENCH_MIX, BENCH_RUNS, ...: see the script.
bench: docker-up
    cargo build -q --release -p berth
    scripts/bench.py

# Peak RSS of a backup of a 1 GiB and an 8 GiB volume (slow: writes 9 GiB).
bench-rss: docker-up
    cargo build -q --release -p berth
    BENCH_MIX=none BENCH_RSS_GIB="1 8" scripts/bench.py

# CPU time and size of each deflate back end (ISA-L, zlib-rs) on this machine's executables, libraries and headers.
bench-deflate:
    cargo test -q --release -p berth --lib archive::deflate -- --ignored --nocapture

fmt:
    cargo fmt --all

lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
