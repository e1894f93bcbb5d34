#!/usr/bin/env bash
# Debian's chromium for the console's browser tests (playwright-core drives
# it; no browser is ever downloaded from anywhere else).
#
#   chromium.sh install   installs Debian's chromium when it is missing (as root)
#
# Idempotent; silent when chromium is already there.
set -euo pipefail

log() { echo "[chromium] $*" >&2; }
die() { echo "[chromium] error: $*" >&2; exit 1; }

install_chromium() {
  [[ -x /usr/bin/chromium ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "chromium is not installed: run as root, or apt-get install chromium"
  log "installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium >&2
  [[ -x /usr/bin/chromium ]] || die "chromium installed but /usr/bin/chromium is missing"
}

case "${1:-}" in
  install) install_chromium ;;
  *) die "usage: chromium.sh install" ;;
esac
