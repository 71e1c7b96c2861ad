#!/usr/bin/env bash
# Regenerates docs/screenshots/*.png: runs the browser end-to-end tests (a real console, a real
# agent, a real malware detection; an agent's package inventory matched against OSV test data)
# with PALISADE_SCREENSHOTS set, which makes them save the main pages as they go. Needs Debian's chromium (installed here when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
mkdir -p docs/screenshots bin
go build -o bin/palisade-agent ./cmd/palisade-agent # served by the console on the onboarding page
PALISADE_AGENT_BINARY="$PWD/bin/palisade-agent" PALISADE_SCREENSHOTS="$PWD/docs/screenshots" go test -count=1 -run 'TestBrowser(OperatorDay|Vulnerabilities)$' ./internal/console
ls -l docs/screenshots
