#!/usr/bin/env bash
# Builds the local control plane's binaries from the Go module proxy into a cache keyed by version,
# and reuses them when present. Prints the cache's bin folder on the last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=/dev/null
source "$here/versions.env"
key="k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}_helm-${HELM_VERSION}"
cache=${MULTIGRES_E2E_CACHE:-$HOME/.cache/multigres-operator}
bin="$cache/$key/bin"
want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)
missing=()
for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$bin"; exit 0; fi

mkdir -p "$bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local
ldflags="-s -w"
log() { echo "[build-binaries] $(date +%T) $*" >&2; }

build_kubernetes() {
  log "kubernetes $KUBERNETES_VERSION (staging modules $KUBERNETES_STAGING_VERSION)"
  mkdir -p "$work/k8s" && cd "$work/k8s"
  go mod init local/k8s-wrapper >/dev/null 2>&1
  gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  # k8s.io/kubernetes replaces each staging module with a local folder; pin each to its published version.
  grep -oE 'k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" | awk '{print $1}' | sort -u |
    while read -r m; do echo "replace $m => $m $KUBERNETES_STAGING_VERSION"; done >>go.mod
  cat >tools.go <<GO
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go get "k8s.io/kubernetes@$KUBERNETES_VERSION" >&2
  go mod tidy >&2
  ver="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    log "go build $c"
    go build -trimpath -ldflags "$ldflags $ver" -o "$bin/$c" "k8s.io/kubernetes/cmd/$c"
  done
}

build_etcd() {
  log "etcd $ETCD_VERSION"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  go mod init local/etcd-wrapper >/dev/null 2>&1
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go mod tidy >&2
  go build -trimpath -ldflags "$ldflags" -o "$bin/etcd" go.etcd.io/etcd/server/v3
}

go_install() { # name module@version package
  log "$1 ${2#*@}"
  GOBIN="$bin" go install -trimpath -ldflags "$ldflags" "$3@${2#*@}"
}

for m in "${missing[@]}"; do
  case $m in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl) [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] && [ -x "$bin/kube-scheduler" ] && [ -x "$bin/kube-controller-manager" ] || build_kubernetes ;;
    etcd) build_etcd ;;
    kwok) go_install kwok "sigs.k8s.io/kwok@$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok ;;
    helm) go_install helm "helm.sh/helm/v3@$HELM_VERSION" helm.sh/helm/v3/cmd/helm ;;
  esac
done
log "done: $bin"
echo "$bin"
