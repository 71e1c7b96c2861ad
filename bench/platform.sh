#!/usr/bin/env bash
# Measures the platform on this machine and prints the figures for docs/BENCHMARKS.md:
#   - findings ingested per second through the real agent protocol (gRPC, mutual TLS), into
#     SQLite and into PostgreSQL;
#   - simulated agents held by one console, with the console's memory and CPU;
#   - the idle cost of a real agent.
# Usage: bench/platform.sh [AGENTS_TO_HOLD]   (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
HOLD=${1:-10000}
work=$(mktemp -d)
chmod 755 "$work"  # PostgreSQL runs as its own user and must reach its directory
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

BIN="$PWD/bin"
go build -o bin/palisade ./cmd/palisade
go build -o bin/palisade-agent ./cmd/palisade-agent
go build -o bin/loadgen ./bench/loadgen

# console DIR DATABASE: starts a console, sets CPID, waits until it serves.
console() {
  local dir=$1 db=$2
  mkdir -p "$dir"
  (cd "$dir" && exec "$BIN/palisade" serve --data-dir data --database "$db" \
     --api-listen 127.0.0.1:18443 --agent-listen 127.0.0.1:18444 >out.log 2>err.log) &
  CPID=$!
  pids+=("$CPID")
  for _ in $(seq 100); do [ -f "$dir/data/cli.json" ] && grep -q "console serving" "$dir/err.log" && return; sleep 0.1; done
  echo "console did not start"; cat "$dir/err.log"; exit 1
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

echo "== findings/s into SQLite (8 agents, batches of 500, 20 s)"
console "$work/sqlite" ""
bin/loadgen -cli "$work/sqlite/data/cli.json" -agent-addr 127.0.0.1:18444 -agents 8 -mode findings -duration 20s -console-pid "$CPID" | tail -1
stop "$CPID"

echo "== findings/s into PostgreSQL (8 agents, batches of 500, 20 s)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pgdir="$work/pg"; mkdir -p "$pgdir"; chown postgres "$pgdir"
runuser -u postgres -- "$PGBIN/initdb" -D "$pgdir/data" -U postgres -A trust >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -o "-p 15432 -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w start >/dev/null
trap 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true; cleanup' EXIT
console "$work/postgres" "postgres://postgres@127.0.0.1:15432/postgres?sslmode=disable"
bin/loadgen -cli "$work/postgres/data/cli.json" -agent-addr 127.0.0.1:18444 -agents 8 -mode findings -duration 20s -console-pid "$CPID" | tail -1
stop "$CPID"

echo "== $HOLD agents held by one console (SQLite), heartbeats every 15 s, 60 s"
console "$work/hold" ""
bin/loadgen -cli "$work/hold/data/cli.json" -agent-addr 127.0.0.1:18444 -agents "$HOLD" -mode hold -duration 60s -console-pid "$CPID" | tail -3

echo "== idle cost of a real agent over 60 s"
tok=$(PALISADE_DATA_DIR="$work/hold/data" bin/palisade token create 2>/dev/null)
pin=$(awk '/CA pin/ {print $3}' "$work/hold/out.log")
bin/palisade-agent enroll --server 127.0.0.1:18444 --token "$tok" --ca-pin "$pin" --data-dir "$work/agent" >/dev/null
bin/palisade-agent run --data-dir "$work/agent" 2>"$work/agent.log" &
APID=$!; pids+=("$APID")
sleep 5
a=$(awk '{print $14+$15}' /proc/$APID/stat); sleep 60; b=$(awk '{print $14+$15}' /proc/$APID/stat)
awk -v a="$a" -v b="$b" -v rss="$(awk '/VmRSS/ {print $2}' /proc/$APID/status)" \
  'BEGIN { printf "RESULT agent-idle cpu_pct=%.3f rss_mb=%.1f\n", (b-a)/60, rss/1024 }'
