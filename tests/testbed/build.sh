#!/usr/bin/env bash
# Build the test bed's Go components from the Go module proxy, cached by version.
#
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   kwok, kwokctl                                                     (sigs.k8s.io/kwok)
#   kube-state-metrics                                                (k8s.io/kube-state-metrics/v2)
#
# Each component is a small Go module under go/<component>/ whose go.mod and go.sum pin
# every dependency. Binaries land in $OCTOLLM_TESTBED_CACHE/bin/<component>-<version>-<hash>/
# where <hash> covers the module files and this script, so a changed pin rebuilds and an
# unchanged one is a no-op. GOMODCACHE and GOCACHE live in the same cache folder.
#
# Prints the bin folder of each component as KEY=path lines on stdout (for up.sh).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${OCTOLLM_TESTBED_CACHE:-$HOME/.cache/octollm-testbed}
P=${OCTOLLM_BUILD_JOBS:-2}

K8S_VERSION=1.36.3
ETCD_VERSION=3.6.14
KWOK_VERSION=0.8.0
KSM_VERSION=2.20.0

export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gobuild"
export GOFLAGS="-modcacherw -trimpath -mod=readonly" CGO_ENABLED=0
# Never fetch another toolchain behind our back: every module here declares go 1.26.0.
export GOTOOLCHAIN=local
mkdir -p "$CACHE/bin" "$CACHE/logs"

if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: 'go' is not on PATH; install Go >= 1.26 (https://go.dev/dl) and retry" >&2
  exit 2
fi

log() { printf '[testbed-build] %s\n' "$*" >&2; }

# stamp <component> <version>: the cache folder for that component's current pins
stamp() {
  local comp=$1 ver=$2 h
  h=$(cat "$HERE/go/$comp"/go.mod "$HERE/go/$comp"/go.sum "$HERE/go/$comp"/*.go "$0" 2>/dev/null \
      | sha256sum | cut -c1-10)
  printf '%s/bin/%s-%s-%s' "$CACHE" "$comp" "$ver" "$h"
}

# build <component> <version> <ldflags> <binary...> -- <package...>
build() {
  local comp=$1 ver=$2 ldflags=$3; shift 3
  local bins=() pkgs=() dest tmp start
  while [ "$1" != "--" ]; do bins+=("$1"); shift; done; shift
  pkgs=("$@")
  dest=$(stamp "$comp" "$ver")
  local ok=1
  for b in "${bins[@]}"; do [ -x "$dest/$b" ] || ok=0; done
  if [ $ok = 1 ]; then
    log "$comp $ver: cached in $dest"
  else
    log "$comp $ver: building ${bins[*]} (-p $P) ..."
    start=$(date +%s)
    tmp="$dest.tmp.$$"
    rm -rf "$tmp"; mkdir -p "$tmp"
    local timer=()
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "%e s wall, %M KiB max RSS" -o "$CACHE/logs/$comp.time")
    ( cd "$HERE/go/$comp" && "${timer[@]}" go build -p "$P" -ldflags "-s -w $ldflags" -o "$tmp/" "${pkgs[@]}" ) \
      >"$CACHE/logs/$comp.log" 2>&1 || {
        log "$comp: build failed; last lines of $CACHE/logs/$comp.log:"; tail -20 "$CACHE/logs/$comp.log" >&2; exit 1; }
    rm -rf "$dest"; mv "$tmp" "$dest"
    log "$comp $ver: built in $(( $(date +%s) - start )) s $( [ -f "$CACHE/logs/$comp.time" ] && cat "$CACHE/logs/$comp.time")"
  fi
  printf '%s\n' "$dest"
}

# Version ldflags so /version reports the real release instead of v0.0.0-master.
kminor=$(echo "$K8S_VERSION" | cut -d. -f2)
kld=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kld+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kminor"
  kld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=2026-01-01T00:00:00Z"
done

K8S_BIN=$(build k8s "$K8S_VERSION" "$kld" kube-apiserver kube-controller-manager kube-scheduler kubectl -- \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
ETCD_BIN=$(build etcd "$ETCD_VERSION" "" etcd -- .)
KWOK_BIN=$(build kwok "$KWOK_VERSION" \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$K8S_VERSION" \
  kwok kwokctl -- sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl)
KSM_BIN=$(build ksm "$KSM_VERSION" \
  "-X github.com/prometheus/common/version.Version=v$KSM_VERSION -X github.com/prometheus/common/version.Branch=release-2.20 -X k8s.io/kube-state-metrics/v2/pkg/app.ClientGoVersion=v0.36.3" \
  kube-state-metrics -- k8s.io/kube-state-metrics/v2)

# kwok's own Stage manifests ship in its module zip; cert-manager's CRDs in cert-manager's.
KWOK_SRC=$(cd "$HERE/go/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
CM_VERSION=1.21.2
CM_SRC=$(cd "$HERE/go/kwok" && go mod download -json "github.com/cert-manager/cert-manager@v$CM_VERSION" \
  | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -f "$CM_SRC/deploy/crds/cert-manager.io_certificates.yaml" ] || {
  log "cert-manager v$CM_VERSION CRDs not found under $CM_SRC/deploy/crds"; exit 1; }

cat <<EOF
K8S_BIN=$K8S_BIN
ETCD_BIN=$ETCD_BIN
KWOK_BIN=$KWOK_BIN
KSM_BIN=$KSM_BIN
KWOK_SRC=$KWOK_SRC
CERT_MANAGER_CRDS=$CM_SRC/deploy/crds
EOF
