#!/usr/bin/env bash
# The behaviour pipeline beside its collection peer, auditd, in one run: auditd (Debian's
# package, started here, writing its log as it does by default) owns the audit socket, the
# pipeline listens on the audit multicast group as it does on hosts that run auditd, both see
# the same records from the same rules while /bin/true runs RATE times a second, and the CPU of
# each is measured over the load. auditd only writes records down; the pipeline also parses them,
# builds the process tree, reads /proc and runs every built-in rule.
# Needs root. Usage: bench/behavior-auditd.sh [RATE] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-2000}
secs=${2:-20}
command -v auditd >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends auditd >/dev/null; }
if pgrep -x auditd >/dev/null; then echo "an auditd already runs; this script starts and stops its own" >&2; exit 1; fi
out=$(mktemp -d)
stop_auditd() {
  local p; p=$(cat "$out/auditd.pid" 2>/dev/null) || return 0
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
}
trap 'stop_auditd; rm -rf "$out"' EXIT
go build -o "$out/behaviorcost" ./bench/behaviorcost
go build -o "$out/execload" ./bench/execload
log=$out/audit.log
sed -e "s|^log_file = .*|log_file = $log|" -e "s|^max_log_file = .*|max_log_file = 1000|" /etc/audit/auditd.conf >"$out/auditd.conf"
chmod 0640 "$out/auditd.conf"
auditd -c "$out" -n -s nochange >/dev/null 2>&1 &
echo $! >"$out/auditd.pid"
for _ in $(seq 50); do auditctl -s | grep -q "^pid [1-9]" && break; sleep 0.1; done
apid=$(cat "$out/auditd.pid")
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
"$out/behaviorcost" -duration "$((secs + 2))s" >"$out/cost.json" 2>"$out/cost.err" &
pid=$!
until grep -q ready "$out/cost.err" 2>/dev/null; do sleep 0.1; done
sleep 1
a0=$(ticks "$apid")
"$out/execload" -rate "$rate" -duration "${secs}s" >"$out/load.json"
a1=$(ticks "$apid")
wait $pid
stop_auditd # flushes its log
hz=$(getconf CLK_TCK)
python3 - "$out/cost.json" "$out/load.json" "$a0" "$a1" "$hz" "$log" <<'PY'
import json, sys, os
cost = json.load(open(sys.argv[1])); load = json.load(open(sys.argv[2]))
a0, a1, hz, log = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
secs = load['seconds']
auditd = (a1 - a0) / hz
marker = sum(1 for line in open(log, errors='replace') if 'type=EXECVE' in line and 'a1="execload"' in line)
print(f"exec load: {load['executed']} executions in {secs:.1f}s ({load['rate']:.0f}/s)")
print(f"auditd (collect, write log):       {auditd:.2f} CPU s = {100*auditd/secs:.1f}% of one core; logged {marker} of the executions")
print(f"palisade pipeline (multicast):     {cost['cpu_seconds']:.2f} CPU s = {100*cost['cpu_seconds']/secs:.1f}% of one core; "
      f"saw {cost['marked_execs']} (shed {cost['source']['shed']}, kernel lost {cost['source']['kernel_lost']}); {cost['findings']} findings")
if auditd > 0:
    print(f"ratio pipeline/auditd: {cost['cpu_seconds']/auditd:.2f}")
PY
