#!/usr/bin/env bash
# The MLflow comparison benchmark's environment: the full `mlflow` package (its server is the
# anchor) and `requests`, in .venv-bench. Prints the interpreter's path last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec bash "$root/scripts/python-env.sh" "$root/bench/mlflow/requirements.txt" "${CAUSEWAY_BENCH_ENV:-$root/.venv-bench}"
