#!/usr/bin/env bash
# Compares Palisade's brute-force engine with fail2ban (fail2ban-regex and its stock sshd filter)
# and sshguard (sshg-parser) on one generated, labelled sshd log, and prints the figures for
# docs/BENCHMARKS.md: lines/s, peak RSS, matched lines, and which labelled attackers each one
# finds. Each tool works on one core: fail2ban-regex and sshg-parser are single-threaded, and
# authbench runs with GOMAXPROCS=1.
#
# Detection for fail2ban and sshguard is scored by replaying their matches through their own
# default rules: fail2ban bans at maxretry 5 within findtime 10m; sshguard blocks at
# THRESHOLD 30 within DETECTION_TIME 30m, each attack worth the dangerousness sshg-parser gives.
#
# Usage: bench/bruteforce.sh [LINES]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
SEED=${SEED:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

need=()
command -v fail2ban-regex >/dev/null || need+=(fail2ban)
sshg_parser() { for d in /usr/libexec/sshguard /usr/lib/x86_64-linux-gnu/sshguard /usr/lib/sshguard; do
  [ -x "$d/sshg-parser" ] && { echo "$d/sshg-parser"; return; }; done; }
[ -n "$(sshg_parser)" ] || need+=(sshguard)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  apt-get update -qq
  # Only the tools are wanted: keep the packages' daemons from starting and touching the
  # host's firewall.
  made=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { [ -z "$made" ] || rm -f /usr/sbin/policy-rc.d; exit 1; }
  [ -z "$made" ] || rm -f /usr/sbin/policy-rc.d
  systemctl disable --now fail2ban sshguard >/dev/null 2>&1 || true
fi
PARSER=$(sshg_parser)
F2B_FILTER=/etc/fail2ban/filter.d/sshd.conf

go build -o "$work/authloggen" ./bench/authloggen
go build -o "$work/authbench" ./bench/authbench
LOG="$work/auth.log"
"$work/authloggen" -lines "$LINES" -seed "$SEED" -out "$LOG" -truth "$work/truth.json"

# measure NAME CMD...: runs CMD under /usr/bin/time -v, records wall seconds and peak RSS (KB).
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$work/$name.time" "$@"
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' \
    "$work/$name.time" >"$work/$name.secs"
  awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/$name.time" >"$work/$name.rss"
}

echo "== fail2ban $(fail2ban-regex -V 2>/dev/null | head -1): fail2ban-regex LOG $F2B_FILTER"
measure fail2ban fail2ban-regex --print-no-missed --print-no-ignored "$LOG" "$F2B_FILTER" >"$work/f2b.out" 2>&1
grep -E '^Lines:' "$work/f2b.out"
F2B_MATCHED=$(awk '/^Lines:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^matched/) print $i }' "$work/f2b.out")
# second run, not timed: every match with its address and time, for scoring
fail2ban-regex -o row "$LOG" "$F2B_FILTER" 2>/dev/null | grep -E "^\['" >"$work/f2b.rows" || true

echo "== sshguard $(dpkg-query -W -f '${Version}' sshguard 2>/dev/null): $PARSER < LOG"
measure sshguard sh -c "'$PARSER' < '$LOG' > '$work/sshg.attacks'"
SSHG_MATCHED=$(wc -l <"$work/sshg.attacks")
echo "sshg-parser: $SSHG_MATCHED attack lines"
# not timed: the same lines marked, to give each attack its time
"$PARSER" -a <"$LOG" | grep -E '^\* ' >"$work/sshg.annotated" || true

echo "== palisade: bench/authbench -in LOG"
GOMAXPROCS=1 measure palisade "$work/authbench" -in "$LOG" -truth "$work/truth.json" >"$work/palisade.out"
grep -v '^RESULT' "$work/palisade.out"
PAL_MATCHED=$(sed -n 's/^RESULT .* matched=\([0-9]*\).*/\1/p' "$work/palisade.out")

echo
echo "== summary: $LINES lines, $(nproc) cores, $(date -u +%Y-%m-%d)"
python3 - "$work" "$LINES" "$F2B_MATCHED" "$SSHG_MATCHED" "$PAL_MATCHED" <<'PY'
import ast, json, sys
from collections import defaultdict, deque

work, lines = sys.argv[1], int(sys.argv[2])
matched = {"fail2ban": int(sys.argv[3] or 0), "sshguard": int(sys.argv[4] or 0), "palisade": int(sys.argv[5] or 0)}
truth = json.load(open(f"{work}/truth.json"))
months = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}

def stamp(line):
    # "Dec  4 20:01:02 ..." or "2026-12-04T20:01:02.000000+00:00 ..."; seconds of the year are enough
    if line[:4].isdigit():
        d, t = line[5:10], line[11:19]
        mon, day = int(d[:2]), int(d[3:5])
    else:
        mon, day, t = months[line[:3]], int(line[4:6]), line[7:15]
    h, m, s = int(t[:2]), int(t[3:5]), int(t[6:8])
    return ((mon * 31 + day) * 24 + h) * 3600 + m * 60 + s

# fail2ban: maxretry 5 within findtime 600 s
f2b = set()
win = defaultdict(deque)
for row in open(f"{work}/f2b.rows"):
    row = row.strip().rstrip(",")
    try:
        ip, t = ast.literal_eval(row.split("\t{")[0].rstrip(",") + "]")[:2]
    except Exception:
        continue
    q = win[ip]
    q.append(float(t))
    while q and q[-1] - q[0] > 600:
        q.popleft()
    if len(q) >= 5:
        f2b.add(ip)

# sshguard: cumulated dangerousness >= 30 within 1800 s of the first attack
sshg = set()
first, danger = {}, defaultdict(int)
for ann, atk in zip(open(f"{work}/sshg.annotated"), open(f"{work}/sshg.attacks")):
    parts = atk.split()
    if len(parts) < 4:
        continue
    ip, d, t = parts[1], int(parts[3]), stamp(ann[2:])
    if ip not in first or t - first[ip] > 1800:
        first[ip], danger[ip] = t, 0
    danger[ip] += d
    if danger[ip] >= 30:
        sshg.add(ip)

attackers = truth["attackers"]
labelled = {s for a in attackers for s in a.get("sources", [])}
benign = set(truth["benign_sources"])
out = {}
for name, banned in (("fail2ban", f2b), ("sshguard", sshg)):
    ipkinds = [a for a in attackers if a["kind"] in ("guesser", "enumerator", "succeeder")]
    found = sum(1 for a in ipkinds if a["sources"][0] in banned)
    spray = [s for a in attackers if a["kind"] == "sprayer" for s in a["sources"]]
    out[name] = dict(ip_found=found, ip_total=len(ipkinds), spray=f"{sum(s in banned for s in spray)}/{len(spray)} sources banned",
                     benign=len(banned & benign), bots=len(banned - labelled - benign), banned=len(banned))
pal = open(f"{work}/palisade.out").read()

def secs(n): return float(open(f"{work}/{n}.secs").read())
def rss(n): return int(open(f"{work}/{n}.rss").read()) / 1024
print()
print(f"{'tool':10} {'lines/s':>12} {'peak RSS':>10} {'matched lines':>14} {'IP attackers banned':>20} {'sprayers':>24} {'benign banned':>14} {'background banned':>18}")
for n in ("fail2ban", "sshguard"):
    o = out[n]
    print(f"{n:10} {lines/secs(n):12,.0f} {rss(n):8.1f}MB {matched[n]:14,} {o['ip_found']:>9}/{o['ip_total']:<10} {o['spray']:>24} {o['benign']:>14} {o['bots']:>18}")
import re
m = re.search(r"found (.*); benign reported (\d+); background addresses reported (\d+)", pal)
kinds = dict(re.findall(r"(\w+) (\d+/\d+)", m.group(1))) if m else {}
ipf = sum(int(kinds.get(k, "0/0").split("/")[0]) for k in ("guesser", "enumerator", "succeeder"))
ipt = sum(int(kinds.get(k, "0/0").split("/")[1]) for k in ("guesser", "enumerator", "succeeder"))
print(f"{'palisade':10} {lines/secs('palisade'):12,.0f} {rss('palisade'):8.1f}MB {matched['palisade']:14,} {ipf:>9}/{ipt:<10} {kinds.get('sprayer','-')+' campaigns':>24} {m.group(2) if m else '?':>14} {m.group(3) if m else '?':>18}")
print()
for n in ("fail2ban", "sshguard"):
    print(f"palisade vs {n}: {secs(n)/secs('palisade'):.1f}x the lines/s, {rss('palisade')/rss(n):.2f}x the peak RSS")
print("(palisade also reported: the succeeders' logins as bruteforce.succeeded, each spraying campaign as bruteforce.distributed)")
PY
