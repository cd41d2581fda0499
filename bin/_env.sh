# Shared by bin/run and bin/test: make .venv and install into it exactly the
# versions of requirements.lock, then the project itself, once per change of
# pyproject.toml or requirements.lock. Needs only python3 (3.11+) on the PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY' || { echo "Python 3.11 or newer is needed (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
LOCKED=requirements.lock
[ -f "$LOCKED" ] || LOCKED=""
STAMP=".venv/.installed-$(cat pyproject.toml $LOCKED | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  echo "==> installing dependencies into .venv (${LOCKED:-no lock yet: unlocked})"
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ -n "$LOCKED" ]; then
    .venv/bin/python -m pip install --quiet -r requirements.lock
    .venv/bin/python -m pip install --quiet --no-deps -e .
  fi
  # No lock, or a dependency added to pyproject.toml but not locked yet: say so, and
  # install unlocked so that the branch still runs (tests/project/test_lock.py fails
  # until bin/lock is run).
  if [ -z "$LOCKED" ] || ! .venv/bin/python bin/_lockcheck.py; then
    echo "==> requirements.lock does not cover pyproject.toml: run bin/lock." \
      "Installing the missing requirements unlocked for now." >&2
    .venv/bin/python -m pip install --quiet -e ".[dev]"
  fi
  rm -f .venv/.installed-*
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
