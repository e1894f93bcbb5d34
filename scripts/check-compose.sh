#!/usr/bin/env bash
# Validates docker-compose.yml without building or pulling anything: the
# compose tool parses it, interpolates the variables and checks it against
# the compose schema (`config -q`). Uses `docker compose` (v2) when present,
# else `docker-compose`; on a fresh Debian machine, run as root, it installs
# Debian's docker-compose package (bookworm ships v1, which reads the same
# file). Also checks that the file refuses to render without the control
# secret, so a deployment can never come up with an empty one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { echo "[compose] $*" >&2; }
die() { echo "[compose] error: $*" >&2; exit 1; }

compose=()
find_compose() {
  if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
  fi
}

find_compose
if [[ ${#compose[@]} -eq 0 ]]; then
  if [[ -f /etc/debian_version && $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    log "installing docker-compose"
    if ! apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1; then
      apt-get update -qq >/dev/null
      apt-get install -y -qq --no-install-recommends docker-compose >/dev/null || die "could not install docker-compose"
    fi
    find_compose
  fi
  [[ ${#compose[@]} -gt 0 ]] || die "no compose tool: install Docker Compose (docker compose) or docker-compose"
fi

# Any 32 characters render the file; a real deployment sets its own secret.
placeholder=$(printf 'x%.0s' {1..32})
EGRESS_CONTROL_SECRET=$placeholder "${compose[@]}" -f docker-compose.yml config -q \
  || die "docker-compose.yml is invalid"
if env -u EGRESS_CONTROL_SECRET "${compose[@]}" -f docker-compose.yml config -q >/dev/null 2>&1; then
  die "docker-compose.yml renders without EGRESS_CONTROL_SECRET"
fi
log "docker-compose.yml is valid (${compose[*]})"
