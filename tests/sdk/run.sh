#!/usr/bin/env bash
# The official SDKs as clients of `tagbinder emulator` (tests/sdk/run_sdk_tests.py).
#
#   bash tests/sdk/run.sh [path/to/tagbinder]     # default: target/debug/tagbinder
#
# Creates target/sdk-venv (reused while tests/sdk/requirements.txt is unchanged) with the
# pinned SDKs, and target/sdk-venv/jdcloud2 with jdcloud-sdk-core 1.3.3 installed apart, as
# spec/README.md does (both SDK versions ship a `jdcloud_sdk` package). Exits
# non-zero when a test fails; the last line reads `N passed, N failed`.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary="${1:-target/debug/tagbinder}"
venv=target/sdk-venv
stamp="$venv/.requirements"

if [ ! -x "$binary" ]; then
  echo "error: $binary is missing; build it first (cargo build --locked)" >&2
  exit 1
fi

if [ ! -f "$stamp" ] || ! cmp -s tests/sdk/requirements.txt "$stamp"; then
  # NB: Debian splits venv/ensurepip out of python3; CI runs as root on a fresh machine.
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv
    else
      echo "error: python3 has no venv/ensurepip module; install python3-venv" >&2
      exit 1
    fi
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    --target "$venv/jdcloud2" jdcloud-sdk-core==1.3.3
  cp tests/sdk/requirements.txt "$stamp"
fi

exec "$venv/bin/python" tests/sdk/run_sdk_tests.py --binary "$binary" --jdcloud2-sdk "$venv/jdcloud2"
