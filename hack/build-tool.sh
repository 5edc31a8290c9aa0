#!/usr/bin/env bash
# Builds a server that the local cluster runs beside Kubernetes, from its own
# module in hack/tools/NAME (kept apart from the project's go.mod), into a
# cache outside the work tree, and prints the binary's path. The cache is keyed
# by the server's version and a hash of the module's files, so a second call is
# instant and an edit of the module builds afresh.
#   hack/build-tool.sh coredns   CoreDNS (hack/tools/coredns/main.go), the cluster DNS
#   hack/build-tool.sh minio     the MinIO server, the cluster's S3 object store
set -euo pipefail
name=${1:?usage: $0 coredns|minio}
here=$(cd "$(dirname "$0")" && pwd)
cache=${BACKUP_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backup-operator}
case $name in
coredns) module=github.com/coredns/coredns pkg=. ;;
# MinIO is AGPL: it is built and run as a separate server only (see hack/tools/minio/go.mod).
minio) module=github.com/minio/minio pkg=github.com/minio/minio ;;
*) echo "$0: unknown tool $name (coredns, minio)" >&2; exit 2 ;;
esac
dir=$here/tools/$name
version=$(awk -v m="$module" '$1 == m { print $2 } $1 == "require" && $2 == m { print $3 }' "$dir/go.mod")
[ -n "$version" ] || { echo "$0: $module not required in $dir/go.mod" >&2; exit 1; }
sum=$(cd "$dir" && cat go.mod go.sum *.go | sha256sum | cut -c1-12)
out=$cache/$name/$version-$sum
mkdir -p "$out"
# One build at a time: test packages run in parallel and each may ask.
exec 9>"$out/.lock"
flock 9
if [ ! -x "$out/$name" ]; then
  echo "building $name $version into $out (first time only; minutes)" >&2
  (cd "$dir" && CGO_ENABLED=0 nice -n 10 go build -buildvcs=false -trimpath -ldflags "-s -w" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
fi
echo "$out/$name"
