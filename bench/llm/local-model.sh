#!/usr/bin/env bash
# The embedded model's speed against llama.cpp on the same file, prompt and thread count, in one
# run: SmolLM2-135M-Instruct (Q4_1, scripts/llm-models.sh), one thread each, greedy, the prompt
# "Write a long story about a cat." as ChatML. Prints medians of RUNS runs and the ratios.
#   bench/llm/local-model.sh [RUNS=5] [TOKENS=64]
# llama.cpp comes from npm (node-llama-cpp's prebuilt linux-x64 build, pinned), installed once
# into ~/.cache/causeway/bench/llama-cpp.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
runs="${1:-5}"
tokens="${2:-64}"
model="$("$root/scripts/llm-models.sh" | tail -1)"
reference="${HOME:-/tmp}/.cache/causeway/bench/llama-cpp"
if [ ! -d "$reference/node_modules/@node-llama-cpp/linux-x64" ]; then
  mkdir -p "$reference"
  (cd "$reference" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm i --silent --no-audit --no-fund --omit=optional \
    node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 >&2)
fi
cp "$root/bench/llm/llama_cpp.mjs" "$reference/llama_cpp.mjs"
(cd "$root" && cargo build --release --quiet -p causeway-llm --example generation_speed)
ours="$("$root/target/release/examples/generation_speed" "$model" "$runs" "$tokens")"
prompt="$(echo "$ours" | head -1)"
theirs="$(cd "$reference" && node llama_cpp.mjs "$model" "$runs" "$tokens" "$prompt")"
python3 - "$ours" "$theirs" <<'PYTHON'
import json, statistics, sys
ours = [json.loads(line) for line in sys.argv[1].splitlines()[1:]]
theirs = [json.loads(line) for line in sys.argv[2].splitlines()]
def median(rows, key): return statistics.median(row[key] for row in rows)
a_rate, b_rate = median(ours, "tokens_per_second"), median(theirs, "tokens_per_second")
a_first, b_first = median(ours, "first_token_ms"), median(theirs, "first_token_ms")
print(f"SmolLM2-135M-Instruct Q4_1, one thread, {len(ours)} runs, medians")
print(f"{'':24}{'Causeway':>12}{'llama.cpp':>12}{'ratio':>9}")
print(f"{'tokens/s after the first':24}{a_rate:12.1f}{b_rate:12.1f}{a_rate / b_rate:8.2f}x")
print(f"{'first token (ms)':24}{a_first:12.0f}{b_first:12.0f}{a_first / b_first:8.2f}x")
PYTHON
