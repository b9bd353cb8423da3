#!/usr/bin/env bash
# Builds, or reuses, the real Kubernetes servers that the tests run against: kube-apiserver,
# kubectl and kube-controller-manager from k8s.io/kubernetes (tests/kube/go.mod), and etcd
# (tests/kube/etcd/, a program over etcd's embed package), all from the Go module proxy.
#
#   bash tests/kube/build.sh          # prints the bin directory on its last line
#
# The binaries go to ${TAGBINDER_KUBE_CACHE:-$HOME/.cache/tagbinder-kube}/<version>/bin, keyed
# by the Kubernetes version. A stamp, written only once all four are built, names the versions
# they came from; they are reused while the stamp matches and each answers --version
# (kubectl: version --client).
# Go's own caches (GOMODCACHE, GOCACHE) keep the downloads and the compiled packages.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module_version() { awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$2"; }
kube_version="$(module_version k8s.io/kubernetes "$here/go.mod")"
etcd_version="$(module_version go.etcd.io/etcd/server/v3 "$here/etcd/go.mod")"
[[ -n "$kube_version" && -n "$etcd_version" ]] || {
  echo "build.sh: cannot read the versions from $here/go.mod and $here/etcd/go.mod" >&2
  exit 1
}
cache="${TAGBINDER_KUBE_CACHE:-$HOME/.cache/tagbinder-kube}/$kube_version"
bin="$cache/bin"
stamp="$cache/stamp"
want_stamp="kubernetes $kube_version, etcd $etcd_version"

runs() {
  local b
  for b in kube-apiserver kube-controller-manager etcd; do
    "$bin/$b" --version >/dev/null 2>&1 || return 1
  done
  "$bin/kubectl" version --client >/dev/null 2>&1
}

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want_stamp" ]] && runs; then
  echo "build.sh: reusing $want_stamp in $bin" >&2
  echo "$bin"
  exit 0
fi

command -v go >/dev/null || {
  echo "build.sh: Go is needed to build the servers (Go $(awk '$1 == "go" { print $2 }' "$here/go.mod") or newer," >&2
  echo "  with GOPROXY reaching a Go module proxy); or point TAGBINDER_KUBE_BIN at a directory" >&2
  echo "  holding kube-apiserver, kubectl, kube-controller-manager and etcd." >&2
  exit 1
}

rm -f "$stamp"
mkdir -p "$bin"
export CGO_ENABLED=0 GOFLAGS=-mod=readonly
# NB: the version the binaries report (kubectl version, /version) is set as Kubernetes' own
# build does (hack/lib/version.sh); without it they say v0.0.0-master.
minor="${kube_version#v1.}"
minor="${minor%%.*}"
x=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  x+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
kube_pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl
  k8s.io/kubernetes/cmd/kube-controller-manager)

start=$SECONDS
echo "build.sh: downloading the modules of $want_stamp" >&2
(cd "$here" && nice -n 10 go list -deps "${kube_pkgs[@]}" >/dev/null)
(cd "$here/etcd" && nice -n 10 go list -deps . >/dev/null)
downloaded=$SECONDS
echo "build.sh: compiling into $bin" >&2
(cd "$here" && nice -n 10 go build -trimpath -ldflags="-s -w$x" -o "$bin/" "${kube_pkgs[@]}")
(cd "$here/etcd" && nice -n 10 go build -trimpath -ldflags="-s -w" -o "$bin/etcd" .)
runs || {
  echo "build.sh: a built binary does not answer --version" >&2
  exit 1
}
echo "$want_stamp" >"$stamp"
echo "build.sh: built $want_stamp: download $((downloaded - start)) s, compile $((SECONDS - downloaded)) s" >&2
echo "$bin"
