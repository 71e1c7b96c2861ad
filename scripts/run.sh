#!/usr/bin/env bash
# Runs the console on the embedded default (SQLite in ./data) with a local agent enrolled to
# it. Extra arguments go to 'palisade serve'.
set -euo pipefail
cd "$(dirname "$0")/.."
# The malware engine links libyara and libdeflate (cgo): install their headers on a fresh machine.
need=()
[ -f /usr/include/yara.h ] || need+=(libyara-dev)
[ -f /usr/include/libdeflate.h ] || need+=(libdeflate-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
mkdir -p bin
go build -o bin/palisade ./cmd/palisade
go build -o bin/palisade-agent ./cmd/palisade-agent
exec bin/palisade serve --local-agent "$@"
