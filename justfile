# berth: run `just` for the list.

target := "x86_64-unknown-linux-gnu"
bin := "target/" + target + "/release/berth"

default:
    @just --list

# Debug build of berth and the fixture program.
build:
    cargo build --workspace

# The static release binary (crt-static, LTO, stripped); prints size and ldd,
# and fails when the size is more than 2% off the README's figure.
static:
    cargo build --release -p berth
    @ls -l {{bin}} | awk '{printf "%s: %.2f MiB\n", $9, $5/1048576}'
    @ldd {{bin}} 2>&1 || true
    scripts/check-size {{bin}}

# The static binary, its manual pages (berth.1, berth-COMMAND.1) and its bash, zsh
# and fish completions under PREFIX, all generated from the clap definitions by
# the binary just built (`berth man`, `berth completions SHELL`).
install PREFIX="/usr/local": static
    install -Dm755 {{bin}} {{PREFIX}}/bin/berth
    install -d {{PREFIX}}/share/man/man1 {{PREFIX}}/share/bash-completion/completions {{PREFIX}}/share/zsh/site-functions {{PREFIX}}/share/fish/vendor_completions.d
    {{bin}} man --dir {{PREFIX}}/share/man/man1
    {{bin}} completions bash > {{PREFIX}}/share/bash-completion/completions/berth
    {{bin}} completions zsh > {{PREFIX}}/share/zsh/site-functions/_berth
    {{bin}} completions fish > {{PREFIX}}/share/fish/vendor_completions.d/berth.fish
    @echo "installed berth, its manual pages and completions under {{PREFIX}}"

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

# The engine matrix: the engine-dependent tests on Docker 26.1 and 28.5 and
# Podman 5, each started on its own socket when it does not answer
# (BERTH_ENGINES picks, BERTH_SWEEP sets the crash moments; see the script).
test-engines:
    scripts/test-engines

# Every test that needs no engine: unit tests of the library and the CLI, the
# fixture program's tests (tests/sim.rs) and tests/offline.rs (completions, man
# pages, exit statuses, connection errors). Seconds once built.
test-unit:
    cargo build -q -p lightwave-sim
    cargo nextest run --workspace --lib --bins --test offline --test sim

# The main job on a built-in demo appliance.
demo: docker-up
    cargo build -q --release -p berth
    cargo run -q --release -p berth --example demo

# Backup/verify/restore benchmark on two data mixes (synthetic, realistic):
# ratios against docker cp and the gzip -1 pipeline measured in the same run,
# index size, peak RSS, CPU per thread. BENCH_MIX, BENCH_RUNS, ...: see the script.
bench:
    scripts/dev setup bench
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
