#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need on a fresh Debian machine (root):
# PostgreSQL's server binaries, so the store suite runs against a real PostgreSQL too,
# Debian's Chromium for the console's browser tests, and the programs the behaviour tests run.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
for b in ipset:ipset iptables:iptables ip6tables:iptables nft:nftables; do [ -x "/usr/sbin/${b%%:*}" ] || command -v "${b%%:*}" >/dev/null || need+=("${b#*:}"); done # internal/agent/respond
[ -f /usr/include/yara.h ] || need+=(libyara-dev) # internal/detect/malware (cgo, go-yara)
[ -f /usr/include/libdeflate.h ] || need+=(libdeflate-dev) # internal/detect/malware (cgo, linked statically)
[ -x /usr/bin/chromium ] || need+=(chromium)     # internal/console browser tests (chromedp)
for b in wget make cc git ip; do command -v $b >/dev/null || need+=("$(case $b in cc) echo gcc;; ip) echo iproute2;; *) echo $b;; esac)"); done # behaviour tests run these for real
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The tests start their own throwaway servers; the packaged cluster is not needed.
  systemctl disable --now postgresql >/dev/null 2>&1 || true
fi

go vet ./...
go test -count=1 -timeout 15m ./... "$@"
