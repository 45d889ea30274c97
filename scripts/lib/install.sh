# shellcheck shell=bash
# Sourced by scripts/dev, scripts/docker-up, scripts/podman-up and
# scripts/ansible-up: the one copy of berth's install logic.
#
#   missing PKG...        prints the packages among PKG whose command is not here
#   need [--no-recommends] PKG...
#                         installs the missing ones with apt-get, saying each;
#                         quiet when all are there; without apt-get or root it
#                         changes nothing and stops with the list to install
#   missing_cargo TOOL... / need_cargo TOOL...
#                         the same for cargo tools (cargo install --locked)
#   refuse WHAT...        the one message for a machine berth cannot set up
#
# A package counts as there when its command answers (not by dpkg's record),
# so an engine installed some other way (docker-ce, a newer podman) is used
# as it is and never replaced.

# The command (or file) each package provides.
berth_probe() {
    case "$1" in
    gcc) command -v cc ;;
    libtool) command -v libtoolize ;;
    docker.io) command -v dockerd ;;
    isal) command -v igzip ;;
    busybox-static) [ -x /bin/busybox ] && echo /bin/busybox ;;
    python3-venv) /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null && echo venv ;;
    *) command -v "$1" ;;
    esac
}

missing() {
    local p
    for p in "$@"; do
        berth_probe "$p" >/dev/null 2>&1 || echo "$p"
    done
}

refuse() {
    local why=$1
    shift
    {
        echo "berth: cannot set this machine up ($why). Install these, then run the command again:"
        printf '  %s\n' "$@"
    } >&2
    exit 1
}

# Why apt-get cannot install here, or nothing when it can.
berth_cannot_apt() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "no apt-get: not Debian or Ubuntu"
    elif [ "$(id -u)" != 0 ]; then
        echo "not root"
    fi
}

BERTH_APT_UPDATED=${BERTH_APT_UPDATED:-}
need() {
    local opts=() pkgs
    if [ "${1:-}" = --no-recommends ]; then
        opts+=(--no-install-recommends)
        shift
    fi
    mapfile -t pkgs < <(missing "$@")
    [ ${#pkgs[@]} -gt 0 ] || return 0
    local why
    why=$(berth_cannot_apt)
    [ -z "$why" ] || refuse "$why" "${pkgs[@]/#/apt package }"
    echo "berth: installing ${pkgs[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$BERTH_APT_UPDATED" ]; then
        apt-get update -qq
        BERTH_APT_UPDATED=1
    fi
    apt-get install -y -qq "${opts[@]}" "${pkgs[@]}" >/dev/null
    mapfile -t pkgs < <(missing "$@")
    [ ${#pkgs[@]} -eq 0 ] || refuse "apt-get installed them, but these still do not answer" "${pkgs[@]}"
}

berth_cargo_has() {
    case "$1" in
    cargo-nextest) cargo nextest --version >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
    esac
}

missing_cargo() {
    local t
    for t in "$@"; do
        berth_cargo_has "$t" || echo "$t"
    done
}

need_cargo() {
    local t
    command -v cargo >/dev/null 2>&1 || refuse "no cargo" "Rust 1.89 or newer with cargo (rustup: https://rustup.rs)"
    for t in $(missing_cargo "$@"); do
        echo "berth: installing $t (cargo install --locked $t)" >&2
        cargo install --locked --quiet "$t"
    done
}
