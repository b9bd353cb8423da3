#!/usr/bin/env bash
# Installs Debian's prometheus package (promtool, and the server that
# tests/controller_e2e/prometheus.rs runs on loopback) when promtool is missing: some 7 s on
# a warm apt cache. The package's service is neither wanted nor started (policy-rc.d).
# Quiet on success.
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: promtool is missing; install Debian's prometheus package (apt-get install prometheus)" >&2
  exit 1
fi
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends prometheus >/tmp/tagbinder-apt-prometheus.log 2>&1; then
  apt-get update >/dev/null 2>&1
  apt-get install -y --no-install-recommends prometheus >/tmp/tagbinder-apt-prometheus.log 2>&1 || {
    cat /tmp/tagbinder-apt-prometheus.log >&2
    [ -n "$created_policy" ] && rm -f "$policy"
    exit 1
  }
fi
[ -n "$created_policy" ] && rm -f "$policy"
command -v promtool >/dev/null && command -v prometheus >/dev/null
