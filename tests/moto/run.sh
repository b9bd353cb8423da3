#!/usr/bin/env bash
# tagbinder against moto's server (tests/moto/run_moto.py).
#
#   bash tests/moto/run.sh [path/to/tagbinder]     # default: target/debug/tagbinder
#
# Creates target/moto-venv (reused while tests/moto/requirements.txt is unchanged) with the
# pinned moto[server] and boto3. Exits non-zero when a check fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

binary="${1:-target/debug/tagbinder}"
venv=target/moto-venv
stamp="$venv/.requirements"

if [ ! -x "$binary" ]; then
  echo "error: $binary is missing; build it first (cargo build --locked)" >&2
  exit 1
fi

if [ ! -f "$stamp" ] || ! cmp -s tests/moto/requirements.txt "$stamp"; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/moto/requirements.txt
  cp tests/moto/requirements.txt "$stamp"
fi

exec "$venv/bin/python" tests/moto/run_moto.py --binary "$(realpath "$binary")"
