#!/usr/bin/env bash
# Checks the GitHub Actions workflows (.github/workflows/*.yml: the release pipeline, which
# cannot run here) with actionlint: syntax, expressions and contexts, job dependencies, the
# inputs of known actions, and, when shellcheck is on PATH, the run: scripts.
# actionlint is pinned and built from source through the Go module proxy once, then cached
# outside the work tree, keyed by version (about 3 minutes cold, nothing warm). Quiet on
# success.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${TAGBINDER_TOOLS_CACHE:-$HOME/.cache/tagbinder-tools}"
ACTIONLINT_VERSION="1.7.12"
ACTIONLINT="$CACHE/actionlint-$ACTIONLINT_VERSION/bin/actionlint"

if ! "$ACTIONLINT" -version 2>/dev/null | head -n 1 | grep -qx "v$ACTIONLINT_VERSION"; then
  if ! command -v go >/dev/null; then
    echo "error: go is needed to build actionlint $ACTIONLINT_VERSION (go install through the module proxy)" >&2
    exit 1
  fi
  GOBIN="$(dirname "$ACTIONLINT")" GOFLAGS=-mod=mod \
    go install "github.com/rhysd/actionlint/cmd/actionlint@v$ACTIONLINT_VERSION"
fi

"$ACTIONLINT" -no-color -oneline .github/workflows/*.yml
