#!/usr/bin/env bash
# A private PostgreSQL server for the audit store's tests: Debian's
# postgresql, a cluster in a folder of its own, listening only on a Unix
# socket in that folder (no TCP port, nothing shared with a system cluster).
#
#   postgres.sh install     installs Debian's postgresql when it is missing (as root)
#   postgres.sh start DIR   initialises DIR on first use, starts the server, prints its DATABASE_URL
#   postgres.sh stop DIR    stops it (fast shutdown)
#
# As root the server runs as the `postgres` user (PostgreSQL refuses root).
# Idempotent; silent on stdout except for the URL that `start` prints.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "[postgres] $*" >&2; }
die() { echo "[postgres] error: $*" >&2; exit 1; }

bindir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [[ -n "$dir" && -x "$dir/initdb" ]] && echo "$dir"
}

install_postgres() {
  bindir >/dev/null && return 0
  [[ $(id -u) -eq 0 ]] || die "PostgreSQL is not installed: run as root, or apt-get install postgresql"
  log "installing Debian's postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
  bindir >/dev/null || die "postgresql installed but initdb not found under /usr/lib/postgresql"
}

# Runs a server binary as the user that owns the cluster.
as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir=$1 bin
  install_postgres
  bin=$(bindir)
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
  if [[ ! -f "$dir/data/PG_VERSION" ]]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$dir/initdb.log")"
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-k $dir -c listen_addresses='' -c fsync=off -c full_page_writes=off" start >/dev/null \
    || die "the server did not start: $(tail -n 5 "$dir/server.log")"
  echo "postgresql://postgres@localhost/postgres?host=$dir"
}

stop() {
  local dir=$1 bin
  bin=$(bindir) || die "PostgreSQL is not installed"
  [[ -f "$dir/data/postmaster.pid" ]] || return 0
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case "${1:-}" in
  install) install_postgres ;;
  start) [[ -n "${2:-}" ]] || die "usage: postgres.sh start DIR"; start "$2" ;;
  stop) [[ -n "${2:-}" ]] || die "usage: postgres.sh stop DIR"; stop "$2" ;;
  *) die "usage: postgres.sh install | start DIR | stop DIR" ;;
esac
