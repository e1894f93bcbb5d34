#!/usr/bin/env bash
# Makes sure a Docker engine answers and debootstrap (which the offline image
# build needs) is installed. On a fresh Debian machine, run as root, it
# installs Debian's docker.io and starts the engine; elsewhere it says what to
# install. Idempotent, and silent when everything is already there.
set -euo pipefail

readonly DEFAULT_SOCKET=/var/run/docker.sock
readonly WAIT_SECONDS=60
readonly DOCKERD_LOG=/var/log/sandbox-dockerd.log
# debootstrap and dockerd live in sbin, which a non-login shell may leave off PATH.
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "[setup] $*" >&2; }
die() { echo "[setup] error: $*" >&2; exit 1; }

# Asks the engine the way the service will (DOCKER_HOST, else the default
# socket). A Unix socket is pinged with Node's own http (fast, no CLI needed);
# anything else (tcp with TLS, ssh) goes through dockerode, like the service.
engine_answers() {
  node -e '
    const host = process.env.DOCKER_HOST || "unix://'"$DEFAULT_SOCKET"'";
    setTimeout(() => process.exit(1), 5000).unref();
    if (host.startsWith("unix://")) {
      require("node:http")
        .get({ socketPath: host.slice("unix://".length), path: "/_ping" }, (res) => process.exit(res.statusCode === 200 ? 0 : 1))
        .on("error", () => process.exit(1));
    } else {
      import("dockerode").then(({ default: Docker }) => new Docker().ping()).then(() => process.exit(0), () => process.exit(1));
    }' >/dev/null 2>&1
}

is_debian() { [[ -f /etc/debian_version ]] && command -v apt-get >/dev/null; }

# Installs Debian packages, refreshing the package lists only when apt has
# none or they turn out stale (an install that fails on them).
apt_install() {
  local out
  export DEBIAN_FRONTEND=noninteractive
  if ! compgen -G '/var/lib/apt/lists/*_Packages' >/dev/null; then
    log "apt-get update"
    apt-get update -qq >/dev/null
  fi
  log "installing $*"
  if ! out=$(apt-get install -y -qq --no-install-recommends "$@" 2>&1); then
    log "apt-get update (package lists look stale)"
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
      echo "$out" >&2
      die "could not install $*"
    }
  fi
}

missing_packages() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  echo "${missing[@]}"
}

wait_for_engine() {
  local pid=${1:-} waited=0
  until engine_answers; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      die "dockerd exited during start-up (log: $DOCKERD_LOG)"
    fi
    ((waited++ < WAIT_SECONDS)) || die "the Docker engine did not answer within ${WAIT_SECONDS}s (log: $DOCKERD_LOG)"
    sleep 1
  done
}

start_engine() {
  local socket=$1
  # Under systemd the packaged unit owns the engine; starting our own would
  # fight it over the same socket and data directory.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
    log "starting docker.service"
    systemctl start docker.service
    wait_for_engine
    return
  fi
  # A dockerd may already be on its way up (started by the package's init
  # script, or a parallel run of this script): wait for it, start no second one.
  local running
  running=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [[ -n $running ]] && kill -0 "$running" 2>/dev/null; then
    log "waiting for the running dockerd (pid $running)"
    wait_for_engine "$running"
    return
  fi
  log "starting dockerd (log: $DOCKERD_LOG)"
  mkdir -p "$(dirname "$socket")" "$(dirname "$DOCKERD_LOG")"
  # Sandboxes always run with network none, so the engine needs neither the
  # default bridge nor iptables rules; without them it also starts on hosts
  # whose kernel lacks netfilter. Containers with NetworkMode none still work.
  nohup dockerd --host "unix://$socket" --bridge=none --iptables=false >>"$DOCKERD_LOG" 2>&1 </dev/null &
  local pid=$!
  disown "$pid"
  wait_for_engine "$pid"
  log "Docker engine ready (dockerd pid $pid)"
}

main() {
  local missing
  missing=$(missing_packages)
  if engine_answers; then
    # The engine is fine; debootstrap is still needed to build images.
    if [[ -n $missing && $missing == *debootstrap* && $(id -u) == 0 ]] && is_debian; then
      apt_install debootstrap
    fi
    return 0
  fi

  local socket
  case "${DOCKER_HOST:-}" in
    "") socket=$DEFAULT_SOCKET ;;
    unix://*) socket=${DOCKER_HOST#unix://} ;;
    *) die "no Docker engine answers at DOCKER_HOST=$DOCKER_HOST; start it there, or unset DOCKER_HOST to use a local engine" ;;
  esac

  if [[ $(id -u) != 0 ]]; then
    die "no Docker engine answers at $socket. Install and start one (Debian: sudo apt-get install docker.io debootstrap), make $socket usable by $(id -un) (the docker group), or run 'sudo npm run setup' to have this script do it"
  fi
  if ! is_debian; then
    die "no Docker engine answers at $socket and this is not Debian: install Docker Engine and debootstrap with your distribution's packages, start the engine, then run this again"
  fi

  # shellcheck disable=SC2086 # a word list by design
  [[ -z $missing ]] || apt_install $missing
  start_engine "$socket"
}

main "$@"
