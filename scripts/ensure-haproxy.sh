#!/usr/bin/env bash
# Install Debian's haproxy (its `-c` check parses the cluster profile's load-balancer configuration) if missing.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing Debian's haproxy for the cluster-profile configuration test..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq haproxy >/dev/null
haproxy -v | head -1
