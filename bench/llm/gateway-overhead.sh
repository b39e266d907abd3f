#!/usr/bin/env bash
# What the LLM gateway adds to a call, against LiteLLM's proxy, in one run: one mock OpenAI
# upstream on loopback (crates/causeway-gateway/examples/llm_load.rs, answering at once), called
# directly, through `causeway gateway --dir` (a route, a price, every call on the ledger) and
# through LiteLLM's proxy (pinned, from PyPI, one model with a price, its defaults otherwise).
# Overhead is the gateway's latency percentile less the direct call's at the same rate.
#   bench/llm/gateway-overhead.sh [SECONDS=30] [RATES="20 50"]
# Whole answers at each rate (LiteLLM's proxy sustains about 70 a second here: 80 queue up) and
# from one caller back to back for 10 s (every thread awake: what the gateway's own work costs);
# streams at the first rate; the maximum rate is 32 callers as fast as they can go for 10 s.
# LiteLLM is installed once into ~/.cache/causeway/bench/litellm-venv.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-30}"
rates="${2:-20 50}"
stream_rate="${rates%% *}"
cache="${HOME:-/tmp}/.cache/causeway/bench"
venv="$cache/litellm-venv"
litellm_version="1.106.12" # the newest whose proxy extra resolves from the registry here
if [ ! -x "$venv/bin/litellm" ] || ! "$venv/bin/pip" show litellm 2>/dev/null | grep -q "^Version: $litellm_version$"; then
  mkdir -p "$cache"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "litellm[proxy]==$litellm_version" >&2
fi
source "$root/bench/lib.sh"

upstream_port="$(free_port)"; causeway_port="$(free_port)"; litellm_port="$(free_port)"
"$load" upstream "127.0.0.1:$upstream_port" > "$work/upstream.log" & pids+=($!)

mkdir -p "$work/project"
cat > "$work/project/causeway.toml" <<TOML
[[gateway.providers]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:$upstream_port/v1"

[[gateway.routes]]
name = "bench"
targets = [{ provider = "mock" }]

[[gateway.prices]]
model = "bench"
input = "0.15"
output = "0.60"
TOML
"$root/target/release/causeway" gateway --dir "$work/project" --listen "127.0.0.1:$causeway_port" \
  > "$work/causeway.log" 2>&1 & causeway_pid=$!; pids+=($causeway_pid)

cat > "$work/litellm.yaml" <<YAML
model_list:
  - model_name: bench
    litellm_params:
      model: openai/bench
      api_base: http://127.0.0.1:$upstream_port/v1
      api_key: sk-upstream
    model_info:
      input_cost_per_token: 0.00000015
      output_cost_per_token: 0.0000006
litellm_settings:
  telemetry: false
general_settings:
  master_key: sk-bench-master-key-0123456789abcdef
YAML
LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/litellm" --config "$work/litellm.yaml" --host 127.0.0.1 \
  --port "$litellm_port" > "$work/litellm.log" 2>&1 & litellm_pid=$!; pids+=($litellm_pid)

wait_for "http://127.0.0.1:$causeway_port/health"
wait_for "http://127.0.0.1:$litellm_port/health/liveliness"

targets=(direct "http://127.0.0.1:$upstream_port/v1/chat/completions"
         causeway "http://127.0.0.1:$causeway_port/v1/chat/completions"
         litellm "http://127.0.0.1:$litellm_port/v1/chat/completions")
results="$work/results.jsonl"
measure() { # NAME MODE ARGS…: one JSON line tagged with the target and the measurement
  local name="$1" what="$2"; shift 2
  "$load" "$@" | python3 -c "import json, sys; row = json.load(sys.stdin); row.update(target='$name', what='$what'); print(json.dumps(row))" >> "$results"
}

for index in 0 2 4; do
  name="${targets[$index]}"; url="${targets[$((index + 1))]}"
  echo "measuring $name" >&2
  "$load" open "$url" "$stream_rate" 5 > /dev/null                      # warm-up
  for rate in $rates; do measure "$name" "whole $rate" open "$url" "$rate" "$seconds"; done
  measure "$name" stream open "$url" "$stream_rate" "$seconds" stream
  case "$name" in
    causeway) read -r _ causeway_steady < <(resident "$causeway_pid") ;;
    litellm) read -r _ litellm_steady < <(resident "$litellm_pid") ;;
  esac
  measure "$name" "back to back" closed "$url" 1 10
  measure "$name" max closed "$url" 32 10
done
read -r causeway_peak _ < <(resident "$causeway_pid")
read -r litellm_peak _ < <(resident "$litellm_pid")

python3 - "$results" "$rates" "$stream_rate" "$seconds" "$causeway_peak" "$litellm_peak" "$litellm_version" \
  "$causeway_steady" "$litellm_steady" <<'PYTHON'
import json, sys
rows = {(row["target"], row["what"]): row for row in map(json.loads, open(sys.argv[1]))}
rates, stream_rate, seconds, causeway_peak, litellm_peak, version, causeway_steady, litellm_steady = sys.argv[2:]
for key, row in rows.items():
    if row["errors"]:
        print(f"warning: {key[0]} {key[1]}: {row['errors']} errors, first: {row['first_error']}")
def overhead(target, what, metric, quantile):
    return rows[(target, what)][metric][quantile] - rows[("direct", what)][metric][quantile]
print(f"LLM gateway overhead on loopback, one mock upstream, {seconds} s per measurement "
      f"(causeway gateway --dir with the ledger on; LiteLLM proxy {version})")
print(f"{'milliseconds added':34}{'Causeway':>10}{'LiteLLM':>10}{'ratio':>9}")
measured = [(f"whole answer at {rate} req/s", f"whole {rate}", "latency_ms") for rate in rates.split()]
measured += [("back to back, one caller", "back to back", "latency_ms"),
             (f"first token at {stream_rate} req/s", "stream", "first_token_ms")]
for label, what, metric in measured:
    for quantile in ("p50", "p99"):
        ours, theirs = overhead("causeway", what, metric, quantile), overhead("litellm", what, metric, quantile)
        print(f"{label + ' ' + quantile:34}{ours:10.3f}{theirs:10.3f}{theirs / ours:8.0f}x")
for rate in rates.split():
    direct = rows[("direct", f"whole {rate}")]["latency_ms"]
    print(f"{f'the direct call at {rate} req/s, p50 p99':34}{direct['p50']:10.3f}{direct['p99']:10.3f}")
ours, theirs, ceiling = (rows[(target, "max")] for target in ("causeway", "litellm", "direct"))
print(f"{'maximum rate, 32 callers (req/s)':34}{ours['achieved_rate']:10.0f}{theirs['achieved_rate']:10.0f}"
      f"{ours['achieved_rate'] / theirs['achieved_rate']:8.0f}x")
print(f"{'  p99 at that rate (ms)':34}{ours['latency_ms']['p99']:10.2f}{theirs['latency_ms']['p99']:10.2f}")
print(f"{'  the upstream alone (req/s)':34}{ceiling['achieved_rate']:10.0f}")
print(f"{'resident after the fixed rates (MB)':34}{int(causeway_steady) / 1024:10.0f}{int(litellm_steady) / 1024:10.0f}"
      f"{int(litellm_steady) / int(causeway_steady):8.0f}x")
print(f"{'peak resident, maximum rate (MB)':34}{int(causeway_peak) / 1024:10.0f}{int(litellm_peak) / 1024:10.0f}"
      f"{int(litellm_peak) / int(causeway_peak):8.0f}x")
PYTHON
