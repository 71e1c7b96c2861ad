#!/usr/bin/env bash
# Runs the console on the embedded default (SQLite in ./data) with a local agent enrolled to
# it. Extra arguments go to 'palisade serve'.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/palisade ./cmd/palisade
go build -o bin/palisade-agent ./cmd/palisade-agent
exec bin/palisade serve --local-agent "$@"
