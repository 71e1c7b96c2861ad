#!/usr/bin/env bash
# What watching executions costs: the agent's behaviour pipeline (audit source + rule engine
# with the built-in rules) runs while the host executes /bin/true RATE times a second. Prints
# the pipeline's CPU use (percent of one core, over the loaded window), peak RSS, and whether
# every execution was seen. Needs root (audit). Usage: bench/behavior.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
secs=${2:-20}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/behaviorcost" ./bench/behaviorcost
go build -o "$out/execload" ./bench/execload
# The pipeline watches one second longer on each side of the load.
"$out/behaviorcost" -duration "$((secs + 2))s" >"$out/cost.json" 2>"$out/cost.err" &
pid=$!
until grep -q ready "$out/cost.err" 2>/dev/null; do sleep 0.1; done
sleep 1
"$out/execload" -rate "$rate" -duration "${secs}s" >"$out/load.json"
wait $pid
python3 - "$out/cost.json" "$out/load.json" "$secs" <<'PY'
import json, sys
cost = json.load(open(sys.argv[1])); load = json.load(open(sys.argv[2])); secs = float(sys.argv[3])
print(f"exec load: {load['executed']} executions in {load['seconds']:.1f}s ({load['rate']:.0f}/s)")
print(f"seen: {cost['marked_execs']} of {load['executed']} executions; source lost: shed {cost['source']['shed']}, "
      f"kernel {cost['source']['kernel_lost']}, socket {cost['source']['overruns']}")
print(f"pipeline CPU: {cost['cpu_seconds']:.2f}s = {100*cost['cpu_seconds']/load['seconds']:.1f}% of one core during the load "
      f"({cost['cpu_percent_of_one_core']:.1f}% over the whole {cost['seconds']:.1f}s window); peak RSS {cost['max_rss_mb']} MB")
print(f"audit records read: {cost['source']['records']}; findings: {cost['findings']}")
PY
