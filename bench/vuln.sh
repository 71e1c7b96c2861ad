#!/usr/bin/env bash
# Compares Palisade's vulnerability matching with osv-scanner v2.2.1 in offline mode on the same
# inventory and the same OSV data, and prints the time and peak memory of each and how their
# findings differ.
#
# Data: osv.dev is not reachable from the reference machine, so bench/vulnbench writes the
# synthetic full-size Debian and Ubuntu archives of internal/detect/vuln/osvgen, laid out as
# osv-scanner's offline database (DIR/db/osv-scanner/<Ecosystem>/all.zip), and a Debian 12 host
# of PACKAGES packages (DIR/root/etc/os-release, DIR/root/var/lib/dpkg/status).
#
# Palisade: `vulnbench match` collects the inventory with the agent's collector, loads the
# archives and matches (load time and match time are printed separately).
# osv-scanner: `scan source --offline-vulnerabilities --local-db-path DIR/db --lockfile
# dpkg-status:STATUS`; it reads the os-release of the machine it runs on (Debian 12 here, as the
# synthetic host), and loads only the ecosystems the scanned packages belong to (Debian).
# Both are timed by /usr/bin/time -v; findings are compared as sorted "source version advisory"
# lines (osv-scanner reports Debian packages by source name).
#
# Usage: bench/vuln.sh [PACKAGES]   (default 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=${1:-3000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -x /usr/bin/time ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }

echo "== building bench/vulnbench and osv-scanner v2.2.1 (from the Go module proxy)"
go build -o "$work/vulnbench" ./bench/vulnbench
OSV=${OSV_SCANNER:-}
if [ -z "$OSV" ]; then
  # The proxy serves the modules but the checksum database does not know osv-scanner's scalibr
  # pseudo-version; osv-scanner's own go.sum still pins it.
  GOBIN="$work" GONOSUMDB=github.com/google/osv-scalibr go install github.com/google/osv-scanner/v2/cmd/osv-scanner@v2.2.1
  OSV="$work/osv-scanner"
fi
"$OSV" --version 2>&1 | head -1 || true

echo "== generating the corpus and a host of $PACKAGES packages"
"$work/vulnbench" gen -dir "$work" -packages "$PACKAGES"
ls -l "$work"/db/osv-scanner/*/all.zip | awk '{print "   ", $5, $9}'

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.err" || true
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$work/$name.err" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$work/$name.err" | awk '{print $NF}')
  printf '%-34s wall %-9s peak RSS %6d MiB\n' "$name" "$wall" $((rss / 1024))
}

echo "== Palisade"
measure palisade-debian "$work/vulnbench" match -db "$work/db/osv-scanner" -ecosystems Debian -root "$work/root"
grep '^palisade:' "$work/palisade-debian.err" | sed 's/^/    /'
measure palisade-debian+ubuntu "$work/vulnbench" match -db "$work/db/osv-scanner" -ecosystems Debian,Ubuntu -root "$work/root"
grep '^palisade:' "$work/palisade-debian+ubuntu.err" | sed 's/^/    /'

echo "== osv-scanner (offline)"
measure osv-scanner "$OSV" scan source --offline-vulnerabilities --local-db-path "$work/db" \
  --lockfile "dpkg-status:$work/root/var/lib/dpkg/status" --format json --output "$work/osv.json" --all-vulns
tail -3 "$work/osv-scanner.err" | grep -v '^\s' | sed 's/^/    /' || true

python3 - "$work/osv.json" >"$work/osv.lines" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
out = set()
for r in d.get("results", []):
    for p in r.get("packages", []):
        pk = p["package"]
        for v in p.get("vulnerabilities", []):
            out.add(f'{pk["name"]} {pk["version"]} {v["id"]}')
print("\n".join(sorted(out)))
PY
sort -u "$work/palisade-debian.out" >"$work/pal.lines"
echo "== findings (source version advisory)"
echo "    palisade:    $(grep -c . "$work/pal.lines")"
echo "    osv-scanner: $(grep -c . "$work/osv.lines")"
echo "    both:        $(comm -12 "$work/pal.lines" "$work/osv.lines" | grep -c . || true)"
echo "    only palisade (first 10):"; comm -23 "$work/pal.lines" "$work/osv.lines" | head -10 | sed 's/^/      /'
echo "    only osv-scanner (first 10):"; comm -13 "$work/pal.lines" "$work/osv.lines" | head -10 | sed 's/^/      /'
