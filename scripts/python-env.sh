#!/usr/bin/env bash
# Creates (once, and again when its requirements change) a pinned Python environment and prints
# its interpreter's path on the last line. Safe to run repeatedly.
#   scripts/python-env.sh                          the MLflow client and the moto S3 server for the tests (.venv)
#   scripts/python-env.sh REQUIREMENTS VENV        any other pinned environment
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
requirements="${1:-$root/tests/mlflow/requirements.txt}"
venv="${2:-${CAUSEWAY_PYTHON_ENV:-$root/.venv}}"
stamp="$venv/.causeway-requirements"
# Test binaries run in parallel and may all ask at once: one of them builds, the others wait.
exec 9>"$venv.lock"
flock 9
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  echo "creating $venv with $(tr '\n' ' ' < "$requirements")" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
