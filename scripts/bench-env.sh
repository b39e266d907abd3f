#!/usr/bin/env bash
# Creates (once) the Python environment of the MLflow comparison benchmark: the full `mlflow`
# package (its server is the anchor) and `requests`. Prints the interpreter's path last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CAUSEWAY_BENCH_ENV:-$root/.venv-bench}"
requirements="$root/bench/mlflow/requirements.txt"
stamp="$venv/.causeway-requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  echo "creating $venv with $(tr '\n' ' ' < "$requirements")" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$stamp"
fi
echo "$venv/bin/python"
