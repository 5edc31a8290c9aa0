#!/usr/bin/env bash
# Prints the path of a promtool for the alerting rules' tests
# (artifacts/monitoring): $PROMTOOL when set, the one on PATH, or else
# Debian's, unpacked from the prometheus package into a cache outside the
# work tree (first time only, about 20 MB). Unpacked, not installed:
# installing the package would start a Prometheus server and add a system
# user, and the tests need neither.
set -euo pipefail
if [ -n "${PROMTOOL:-}" ]; then
  echo "$PROMTOOL"
  exit 0
fi
if command -v promtool; then
  exit 0
fi
cache=${BACKUP_OPERATOR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/backup-operator}/promtool
if [ ! -x "$cache/promtool" ]; then
  echo "unpacking promtool from Debian's prometheus package into $cache (first time only)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  chmod 755 "$tmp" # apt's download user writes here
  # The package lists may be missing or stale on a fresh machine.
  if ! (cd "$tmp" && apt-get download -qq prometheus) >/dev/null 2>&1; then
    apt-get update -qq >&2
    (cd "$tmp" && apt-get download -qq prometheus) >&2
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p "$cache"
  cp "$tmp/root/usr/bin/promtool" "$cache/promtool.tmp"
  mv "$cache/promtool.tmp" "$cache/promtool"
fi
echo "$cache/promtool"
