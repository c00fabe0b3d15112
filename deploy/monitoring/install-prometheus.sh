#!/usr/bin/env bash
# Installs Debian's prometheus package (prometheus and promtool) if either is
# missing: the alert rule tests run promtool, and one end-to-end test starts a
# real Prometheus on loopback. The package's own service is not wanted.
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus
$sudo systemctl disable --now prometheus 2>/dev/null || true
