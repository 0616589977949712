#!/usr/bin/env bash
# Install Debian's redis-server (the shared state store: `eventpulse up` and the tests start it) if it is not there yet.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian's redis-server (shared rate limits, idempotency memory, query cache)..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
redis-server --version
