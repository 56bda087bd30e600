#!/usr/bin/env bash
# The web client's steps for make and CI: install (npm ci when the lockfile changed),
# build (into runtime/web/dist/app, embedded by the next go build) and test (Vitest).
# Usage: hack/web.sh install|build|test|build-if-possible
# build-if-possible is for `make run`: without Node it warns and leaves the binary to
# serve a page that says how to build the client.
set -euo pipefail
cd "$(dirname "$0")/../runtime/web"

min_node_major=20

have_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || return 1
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt "$min_node_major" ]; then
    echo "web: Node.js $(node --version) is too old; the client needs $min_node_major or newer" >&2
    return 1
  fi
}

install() {
  # npm ci wipes node_modules; skip it while the installed tree matches the lockfile.
  if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
    return 0
  fi
  npm ci --no-audit --no-fund --loglevel=error
}

case "${1:-}" in
  install) have_node; install ;;
  build) have_node; install; npm run --silent build ;;
  test) shift; have_node; install; npm test --silent -- "$@" ;;
  build-if-possible)
    if ! have_node; then
      echo "web: Node.js/npm not found: serving without the web client (install Node.js $min_node_major+ and rerun)" >&2
      exit 0
    fi
    install
    npm run --silent build
    ;;
  *) echo "usage: hack/web.sh install|build|test|build-if-possible" >&2; exit 2 ;;
esac
