#!/usr/bin/env bash
# Serving against Seldon MLServer, in one run: the same 300-tree XGBoost model (30 FP32 features,
# bench/serving/make_model.py) served by `causeway serve --model` and by MLServer with
# mlserver-xgboost (pinned, bench/serving/requirements.txt, in .venv-serving-bench), loaded by the
# same generator (crates/causeway-gateway/examples/llm_load.rs `closed`: keep-alive connections,
# as fast as N callers go). Prints requests a second and latency per concurrency, rows a second
# for 64-row requests, the peak resident memory of both, and the ratios.
#   bench/serving/bench.sh [SECONDS=10]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-10}"
python="$(bash "$root/scripts/python-env.sh" "$root/bench/serving/requirements.txt" \
  "${CAUSEWAY_SERVING_BENCH_ENV:-$root/.venv-serving-bench}" | tail -1)"
source "$root/bench/lib.sh"

echo "training the model ..." >&2
"$python" "$root/bench/serving/make_model.py" "$work"
causeway_port="$(free_port)"; mlserver_port="$(free_port)"
"$root/target/release/causeway" serve --model "$work/bench.json" --listen "127.0.0.1:$causeway_port" \
  > "$work/causeway.log" 2>&1 & causeway_pid=$!; pids+=($causeway_pid)
cat > "$work/mlserver/settings.json" <<JSON
{"http_port": $mlserver_port, "grpc_port": $(free_port), "metrics_port": $(free_port), "host": "127.0.0.1"}
JSON
(cd "$work/mlserver" && exec "$(dirname "$python")/mlserver" start .) > "$work/mlserver.log" 2>&1 &
mlserver_pid=$!; pids+=($mlserver_pid)
wait_for "http://127.0.0.1:$causeway_port/v2/models/bench/ready"
wait_for "http://127.0.0.1:$mlserver_port/v2/models/bench/ready"

# Both answer the same scores (MLServer as FP32, Causeway as FP64).
"$python" - "$work" "$causeway_port" "$mlserver_port" <<'PYTHON'
import json, sys, urllib.request
work, ours, theirs = sys.argv[1:]
expected = json.load(open(f"{work}/expected.json"))
body = open(f"{work}/rows-64.json", "rb").read()
for name, port in (("causeway", ours), ("mlserver", theirs)):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/bench/infer", body,
                                     {"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(request))
    scores = answer["outputs"][0]["data"]
    worst = max(abs(a - b) for a, b in zip(scores, expected))
    assert len(scores) == 64 and worst < 1e-5, (name, worst, answer["outputs"][0])
PYTHON

results="$work/results.jsonl"
for target in causeway mlserver; do
  port="$causeway_port"; [ "$target" = mlserver ] && port="$mlserver_port"
  url="http://127.0.0.1:$port/v2/models/bench/infer"
  echo "measuring $target" >&2
  "$load" closed "$url" 4 2 "$work/rows-1.json" > /dev/null        # warm-up
  for concurrency in 1 8 32; do
    "$load" closed "$url" "$concurrency" "$seconds" "$work/rows-1.json" \
      | python3 -c "import json, sys; r = json.load(sys.stdin); r.update(target='$target', rows=1); print(json.dumps(r))" >> "$results"
  done
  for concurrency in 1 8; do
    "$load" closed "$url" "$concurrency" "$seconds" "$work/rows-64.json" \
      | python3 -c "import json, sys; r = json.load(sys.stdin); r.update(target='$target', rows=64); print(json.dumps(r))" >> "$results"
  done
done
read -r causeway_peak _ < <(resident "$causeway_pid")
read -r mlserver_peak _ < <(resident "$mlserver_pid")
mlserver_version="$("$python" -c 'import mlserver; print(mlserver.__version__)')"

python3 - "$results" "$causeway_peak" "$mlserver_peak" "$seconds" "$mlserver_version" <<'PYTHON'
import json, sys
rows = {(row["target"], row["rows"], row["concurrency"]): row for row in map(json.loads, open(sys.argv[1]))}
causeway_peak, mlserver_peak, seconds, version = sys.argv[2:]
for key, row in rows.items():
    if row["errors"]:
        print(f"warning: {key}: {row['errors']} errors, first: {row['first_error']}")
print(f"OIP v2 REST JSON, 300 trees x 30 FP32 features, {seconds} s per measurement; MLServer {version}")
print(f"{'':30}{'Causeway':>22}{'MLServer':>22}{'ratio':>9}")
for count, concurrencies in ((1, (1, 8, 32)), (64, (1, 8))):
    for concurrency in concurrencies:
        ours, theirs = rows[("causeway", count, concurrency)], rows[("mlserver", count, concurrency)]
        unit = "req/s" if count == 1 else "rows/s"
        a, b = ours["achieved_rate"] * count, theirs["achieved_rate"] * count
        print(f"{f'{count} row(s), concurrency {concurrency}':30}{a:>14,.0f} {unit:<7}{b:>14,.0f} {unit:<7}{a / b:8.1f}x")
        print(f"{'  p50 / p99 (ms)':30}{ours['latency_ms']['p50']:>10.2f} /{ours['latency_ms']['p99']:>7.2f}"
              f"{theirs['latency_ms']['p50']:>15.2f} /{theirs['latency_ms']['p99']:>7.2f}")
print(f"{'peak resident memory (MB)':30}{int(causeway_peak) / 1024:>14.0f}{'':8}{int(mlserver_peak) / 1024:>14.0f}")
PYTHON
