#!/usr/bin/env bash
# Creates (once) the Python environment the compatibility tests use: the official MLflow client,
# pinned. Prints the interpreter's path on its last line. Safe to run repeatedly.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CAUSEWAY_PYTHON_ENV:-$root/.venv}"
requirements="$root/tests/mlflow/requirements.txt"
stamp="$venv/.causeway-requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  echo "creating $venv with $(tr '\n' ' ' < "$requirements")" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
