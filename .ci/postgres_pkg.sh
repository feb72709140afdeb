#!/usr/bin/env bash
# PostgreSQL's server programs for tests/test_worker_kill.py, which starts a server of its own (initdb in a temporary
# folder, a free port) and stops it: Debian's postgresql package, installed with apt-get when missing (as root).
# Exit status 0 when initdb is there, 1 with a sentence on stderr when it cannot be installed (the test then skips).
set -uo pipefail
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && exit 0
command -v initdb >/dev/null 2>&1 && exit 0
say() { echo "postgres_pkg: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || say "PostgreSQL is not installed and installing it needs root (apt-get)."
command -v apt-get >/dev/null 2>&1 || say "PostgreSQL is not installed and this machine has no apt-get to install it."
LOG="$(mktemp)"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends postgresql >"$LOG" 2>&1; then
    apt-get update -q >>"$LOG" 2>&1
    apt-get install -y -q --no-install-recommends postgresql >>"$LOG" 2>&1 ||
        say "apt-get could not install postgresql (see $LOG)."
fi
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || say "postgresql was installed but no initdb was found."
echo "postgres_pkg: installed postgresql" >&2
