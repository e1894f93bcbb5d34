#!/usr/bin/env bash
# Makes sure a Docker engine answers and debootstrap (which the offline image
# build needs) is installed. On a fresh Debian machine, run as root, it
# installs Debian's docker.io and starts the engine; elsewhere it says what to
# install. It also installs Debian's gVisor (runsc) and registers it as the
# engine runtime `runsc` (the stronger isolation tier, EXEC_RUNTIME) with an
# engine it starts itself, before the start or by a reload (SIGHUP, never a
# restart); an engine someone else runs it leaves alone and says, once, how
# to register runsc there. Idempotent, and silent when everything is already
# there.
set -euo pipefail

readonly DEFAULT_SOCKET=/var/run/docker.sock
readonly WAIT_SECONDS=60
readonly DOCKERD_LOG=/var/log/sandbox-dockerd.log
# Written when this script starts dockerd: only that engine's configuration is ours to change.
readonly MANAGED_MARKER=/var/run/sandbox-egress-dockerd.pid
readonly DAEMON_JSON=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
readonly RUNSC=/usr/bin/runsc
# Shown at most once per checkout when the engine is not ours and lacks runsc.
readonly HINT_STAMP=.data/.runsc-hint-shown
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
  [[ -x $RUNSC ]] || missing+=(runsc)
  echo "${missing[@]}"
}

# Adds (or corrects) the runsc runtime in the daemon configuration, keeping
# everything else in it. Exit status 0: the file changed; 1: already so.
# The flags: no network of its own (sandboxes have none), and leave to the
# host the Unix socket the sandbox connects to (its egress proxy).
register_runsc_in_config() {
  mkdir -p "$(dirname "$DAEMON_JSON")"
  node -e '
    const fs = require("node:fs");
    const [file, path] = process.argv.slice(1);
    let config = {};
    try { config = JSON.parse(fs.readFileSync(file, "utf8")); } catch (e) { if (e.code !== "ENOENT") throw e; }
    const wanted = { path, runtimeArgs: ["--network=none", "--host-uds=open"] };
    if (JSON.stringify(config.runtimes?.runsc) === JSON.stringify(wanted)) process.exit(1);
    config.runtimes = { ...config.runtimes, runsc: wanted };
    fs.writeFileSync(file + ".tmp", JSON.stringify(config, null, 2) + "\n");
    fs.renameSync(file + ".tmp", file);
  ' "$DAEMON_JSON" "$RUNSC"
}

# The engine's registered runtimes, one per line (empty when it cannot be asked).
engine_runtimes() {
  node -e '
    const host = process.env.DOCKER_HOST || "unix://'"$DEFAULT_SOCKET"'";
    if (!host.startsWith("unix://")) process.exit(0);
    setTimeout(() => process.exit(0), 5000).unref();
    require("node:http").get({ socketPath: host.slice("unix://".length), path: "/info" }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d)).on("end", () => {
        try { console.log(Object.keys(JSON.parse(body).Runtimes ?? {}).join("\n")); } catch {}
      });
    }).on("error", () => undefined);' 2>/dev/null
}

# The dockerd this script started, if it is the one running now.
managed_engine_pid() {
  local pid
  pid=$(cat "$MANAGED_MARKER" 2>/dev/null || true)
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $pid == "$(cat /var/run/docker.pid 2>/dev/null || true)" ]] && echo "$pid"
}

# A running engine: registers runsc if the engine is ours (reloading it),
# otherwise says once how to. Quiet when the engine already has runsc.
ensure_runsc_runtime() {
  [[ -x $RUNSC ]] || return 0
  engine_runtimes | grep -qx runsc && return 0
  local pid
  if [[ $(id -u) == 0 ]] && pid=$(managed_engine_pid); then
    register_runsc_in_config || true
    log "registering runsc with dockerd (pid $pid): reloading its configuration"
    kill -HUP "$pid"
    local waited=0
    until engine_runtimes | grep -qx runsc; do
      ((waited++ < 10)) || { log "dockerd did not pick up runsc (see $DOCKERD_LOG); sandboxes run under runc"; return 0; }
      sleep 1
    done
    return 0
  fi
  [[ -e $HINT_STAMP ]] && return 0
  log "gVisor (runsc) is installed but this Docker engine does not list it, so sandboxes run under runc. To offer the gVisor tier, add to $DAEMON_JSON:"
  log '  {"runtimes": {"runsc": {"path": "'"$RUNSC"'", "runtimeArgs": ["--network=none", "--host-uds=open"]}}}'
  log "then reload the engine (kill -HUP \$(cat /var/run/docker.pid), or systemctl reload docker). This note is shown once."
  mkdir -p "$(dirname "$HINT_STAMP")" && touch "$HINT_STAMP"
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
    # Starting it now, it starts with runsc in its configuration.
    [[ ! -x $RUNSC ]] || register_runsc_in_config || true
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
  # The engine starts with runsc already in its configuration.
  [[ ! -x $RUNSC ]] || register_runsc_in_config || true
  # Sandboxes always run with network none, so the engine needs neither the
  # default bridge nor iptables rules; without them it also starts on hosts
  # whose kernel lacks netfilter. Containers with NetworkMode none still work.
  nohup dockerd --host "unix://$socket" --bridge=none --iptables=false >>"$DOCKERD_LOG" 2>&1 </dev/null &
  local pid=$!
  disown "$pid"
  echo "$pid" >"$MANAGED_MARKER"
  wait_for_engine "$pid"
  log "Docker engine ready (dockerd pid $pid)"
}

main() {
  local missing
  missing=$(missing_packages)
  if engine_answers; then
    # The engine is fine; debootstrap is still needed to build images, runsc for the gVisor tier.
    if [[ -n $missing && $(id -u) == 0 ]] && is_debian; then
      local wanted=()
      [[ $missing != *debootstrap* ]] || wanted+=(debootstrap)
      [[ $missing != *runsc* ]] || wanted+=(runsc)
      # shellcheck disable=SC2086 # a word list by design
      [[ ${#wanted[@]} == 0 ]] || apt_install "${wanted[@]}"
    fi
    ensure_runsc_runtime
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
  ensure_runsc_runtime
}

main "$@"
