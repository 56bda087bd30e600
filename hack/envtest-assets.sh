#!/usr/bin/env bash
# Prints a directory holding kube-apiserver and etcd (and, with --with-sim, the
# simulated-cluster binaries kube-controller-manager, kube-scheduler and kwok) for envtest.
#
# Order of preference, so that a machine with no internet still gets a control plane:
#   1. $KUBEBUILDER_ASSETS when it already holds the binaries;
#   2. the cache ${XDG_CACHE_HOME:-$HOME/.cache}/parley/envtest/<versions>;
#   3. setup-envtest (only works where its download bucket is reachable);
#   4. building from Go modules (k8s.io/kubernetes with its staging replaces, etcd server).
# Progress goes to stderr; the directory is the only thing on stdout.
set -euo pipefail

K8S_VERSION="${PARLEY_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${PARLEY_ETCD_VERSION:-3.6.16}"
KWOK_VERSION="${PARLEY_KWOK_VERSION:-0.8.0}"
STAGING_VERSION="v0.${K8S_VERSION#1.}"

with_sim=0
for arg in "$@"; do
  case "$arg" in
    --with-sim) with_sim=1 ;;
    -h|--help)
      sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
      exit 0 ;;
    *) echo "envtest-assets: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { echo "envtest-assets: $*" >&2; }

core_bins=(kube-apiserver etcd)
sim_bins=(kube-controller-manager kube-scheduler kwok)

has_bins() {
  local dir="$1"; shift
  local b
  for b in "$@"; do [ -x "$dir/$b" ] || return 1; done
}

want=("${core_bins[@]}")
[ "$with_sim" = 1 ] && want+=("${sim_bins[@]}")

if [ -n "${KUBEBUILDER_ASSETS:-}" ] && has_bins "$KUBEBUILDER_ASSETS" "${want[@]}"; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/parley/envtest/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}-kwok-${KWOK_VERSION}"
mkdir -p "$cache"
if has_bins "$cache" "${want[@]}"; then
  echo "$cache"
  exit 0
fi

# One builder at a time: parallel test packages may all ask at once.
exec 9>"$cache/.lock"
flock 9
if has_bins "$cache" "${want[@]}"; then
  echo "$cache"
  exit 0
fi

if ! has_bins "$cache" "${core_bins[@]}" && [ "${PARLEY_ENVTEST_NO_DOWNLOAD:-}" != 1 ]; then
  log "trying setup-envtest for ${K8S_VERSION}"
  tmp=$(mktemp -d)
  if dir=$(timeout 120 go run sigs.k8s.io/controller-runtime/tools/setup-envtest@release-0.22 \
        use "${K8S_VERSION}" --bin-dir "$tmp" -p path 2>/dev/null) && has_bins "$dir" "${core_bins[@]}"; then
    cp "$dir/kube-apiserver" "$dir/etcd" "$cache/"
    log "setup-envtest provided the binaries"
  else
    log "setup-envtest unavailable here; building from Go modules"
  fi
  rm -rf "$tmp"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

build_kubernetes() {
  local mod="$work/kubernetes"
  mkdir -p "$mod"
  (
    cd "$mod"
    go mod init parley.local/envtest-kubernetes >/dev/null 2>&1
    # k8s.io/kubernetes requires its staging modules at v0.0.0; map each to the release.
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "replace ("
      # sample-cli-plugin and sample-controller are not published at the release version.
      sed -n '/^replace (/,/^)/p' "$gomod" | awk '$1 ~ /^k8s\.io\// {print $1}' |
        grep -vE '^k8s\.io/(sample-cli-plugin|sample-controller)$' |
        while read -r m; do echo "	$m => $m ${STAGING_VERSION}"; done
      echo ")"
    } >>go.mod
    # Ask for the command packages themselves so go.sum covers everything they import.
    local pkgs=() b
    for b in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$b@v${K8S_VERSION}"); done
    go get "${pkgs[@]}" >/dev/null 2>&1 || go get "${pkgs[@]}"
    local pkg="k8s.io/component-base/version"
    local ld="-s -w -X $pkg.gitVersion=v${K8S_VERSION} -X $pkg.gitMajor=${K8S_VERSION%%.*}"
    local minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
    ld="$ld -X $pkg.gitMinor=${minor} -X $pkg.gitTreeState=clean"
    for b in "$@"; do
      log "building $b v${K8S_VERSION} (a few minutes cold)"
      go build -ldflags "$ld" -o "$cache/$b.tmp" "k8s.io/kubernetes/cmd/$b"
      mv "$cache/$b.tmp" "$cache/$b"
    done
  )
}

build_etcd() {
  local mod="$work/etcd"
  mkdir -p "$mod"
  (
    cd "$mod"
    go mod init parley.local/envtest-etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}" >/dev/null 2>&1 || go get "go.etcd.io/etcd/server/v3@v${ETCD_VERSION}"
    log "building etcd v${ETCD_VERSION}"
    go build -ldflags "-s -w" -o "$cache/etcd.tmp" go.etcd.io/etcd/server/v3
    mv "$cache/etcd.tmp" "$cache/etcd"
  )
}

build_kwok() {
  local mod="$work/kwok"
  mkdir -p "$mod"
  (
    cd "$mod"
    go mod init parley.local/envtest-kwok >/dev/null 2>&1
    go get "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}" >/dev/null 2>&1 || go get "sigs.k8s.io/kwok/cmd/kwok@v${KWOK_VERSION}"
    log "building kwok v${KWOK_VERSION}"
    go build -ldflags "-s -w" -o "$cache/kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
    mv "$cache/kwok.tmp" "$cache/kwok"
    # kwok refuses to start without stages: keep the ones its module ships.
    local src
    src=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
    mkdir -p "$cache/kwok-stages"
    local s
    for s in node-initialize node-heartbeat pod-ready pod-complete pod-delete; do
      find "$src/kustomize/stage" -name "$s.yaml" -exec cp {} "$cache/kwok-stages/" \;
    done
  )
}

k8s_missing=()
[ -x "$cache/kube-apiserver" ] || k8s_missing+=(kube-apiserver)
if [ "$with_sim" = 1 ]; then
  [ -x "$cache/kube-controller-manager" ] || k8s_missing+=(kube-controller-manager)
  [ -x "$cache/kube-scheduler" ] || k8s_missing+=(kube-scheduler)
fi
[ -x "$cache/etcd" ] || build_etcd
[ "${#k8s_missing[@]}" -eq 0 ] || build_kubernetes "${k8s_missing[@]}"
if [ "$with_sim" = 1 ] && [ ! -x "$cache/kwok" ]; then build_kwok; fi

has_bins "$cache" "${want[@]}" || { log "binaries missing after build"; exit 1; }
echo "$cache"
