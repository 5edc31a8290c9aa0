#!/usr/bin/env bash
# Fails when the committed generated code differs from what
# hack/update-codegen.sh produces now. Regenerates in a scratch copy, so the
# work tree is never touched.
set -o errexit -o nounset -o pipefail

SCRIPT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

tar -C "$SCRIPT_ROOT" --exclude=./.git --exclude=./_output -cf - . | tar -C "$scratch" -xf -
# Generated files are removed first, so a stale file the generators no longer
# write is caught as well.
find "$scratch/pkg" -name 'zz_generated.*.go' -delete
for dir in clientset listers informers applyconfiguration; do
  # Emptied, not removed: the generators look for their old files there.
  rm -rf "$scratch/pkg/generated/$dir" && mkdir -p "$scratch/pkg/generated/$dir"
done
GOBIN="$SCRIPT_ROOT/_output/bin" "$scratch/hack/update-codegen.sh" >/dev/null

status=0
for path in pkg hack/api-rule-violations.list; do
  if ! diff -r -q "$SCRIPT_ROOT/$path" "$scratch/$path"; then
    status=1
  fi
done
if [ $status -ne 0 ]; then
  echo "Generated code is stale: run 'make generate' (hack/update-codegen.sh) and commit the result." >&2
  exit 1
fi
echo "Generated code is up to date."
