#!/usr/bin/env bash
# Runs the console on the embedded default (SQLite in ./data) with a local agent enrolled to
# it. Extra arguments go to 'palisade serve'.
set -euo pipefail
cd "$(dirname "$0")/.."
# The malware engine links libyara (cgo): install its headers on a fresh machine.
if [ ! -f /usr/include/yara.h ]; then
  echo "installing libyara-dev"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libyara-dev >/dev/null
fi
mkdir -p bin
go build -o bin/palisade ./cmd/palisade
go build -o bin/palisade-agent ./cmd/palisade-agent
exec bin/palisade serve --local-agent "$@"
