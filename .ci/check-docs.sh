#!/usr/bin/env bash
# The book under docs/: built with mdBook, its links checked with LinkChecker, and the
# README's and CONTRIBUTING's relative links checked to point at files that exist.
# Tools are pinned and cached outside the work tree, keyed by version:
#   mdBook 0.5.4 from crates.io (cargo install; about 3 minutes of compiling once);
#   LinkChecker 10.6.0 from PyPI, in a virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${TAGBINDER_TOOLS_CACHE:-$HOME/.cache/tagbinder-tools}"
MDBOOK_VERSION="0.5.4"
LINKCHECKER_VERSION="10.6.0"
MDBOOK="$CACHE/mdbook-$MDBOOK_VERSION/bin/mdbook"
LINKCHECKER_VENV="$CACHE/linkchecker-$LINKCHECKER_VERSION"

if ! "$MDBOOK" --version 2>/dev/null | grep -q "v$MDBOOK_VERSION"; then
  cargo install --quiet mdbook --version "$MDBOOK_VERSION" --locked --root "$CACHE/mdbook-$MDBOOK_VERSION"
fi
if ! "$LINKCHECKER_VENV/bin/linkchecker" --version >/dev/null 2>&1; then
  python3 -m venv "$LINKCHECKER_VENV"
  "$LINKCHECKER_VENV/bin/pip" install --quiet --disable-pip-version-check "linkchecker==$LINKCHECKER_VERSION"
fi

rm -rf target/book
"$MDBOOK" build docs 2>&1 | grep -v ' INFO ' || true
test -f target/book/index.html || { echo "error: mdbook build docs made no book" >&2; exit 1; }

# Every link inside the book (pages, anchors' files, images), nothing outside it.
"$LINKCHECKER_VENV/bin/linkchecker" --no-status --no-warnings --ignore-url '^https?://' \
  --ignore-url '^mailto:' target/book/index.html

python3 - <<'PY'
import os, re, sys
bad = []
for doc in ("README.md", "CONTRIBUTING.md", "deploy/helm/tagbinder/README.md"):
    text = open(doc, encoding="utf-8").read()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"^[a-z]+:", target):
            continue
        path = os.path.normpath(os.path.join(os.path.dirname(doc), target))
        if not os.path.exists(path):
            bad.append(f"{doc}: link to {target}: no such file")
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
PY
echo "the book built, and its links and the README's resolve"
