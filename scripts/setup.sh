#!/usr/bin/env bash
# Prepares this machine to run sandboxes, for `npm start`, `npm test` and CI:
# a Docker engine that answers (installed and started on a fresh Debian
# machine) and the sandbox images built offline. Idempotent; prints nothing
# when all is already in place.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# `npm run setup` skips the dependency bootstrap that prestart/pretest do.
[[ -d node_modules/dockerode && -x node_modules/.bin/tsx ]] || node scripts/ensure-deps.mjs

bash scripts/docker-engine.sh

# Builds only images whose expected tag is missing, silently otherwise.
node_modules/.bin/tsx images/build.ts
