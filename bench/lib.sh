# What the bench scripts share; sourced after they set `root`. Builds the causeway binary and the
# load generator (`$load`), makes a work directory (`$work`) removed on exit with every process
# whose PID is added to `pids`, and defines:
#   free_port            a free loopback port
#   wait_for URL         until URL answers 2xx, at most 180 s (then the servers' logs, and failure)
#   resident PID         peak and current resident kB of PID and its children (bench/resident.py)
(cd "$root" && cargo build --release --quiet -p causeway --bin causeway && \
  cargo build --release --quiet -p causeway-gateway --example llm_load)
load="$root/target/release/examples/llm_load"
work="$(mktemp -d)"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 1800); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 did not answer in 180 s; the servers' logs:" >&2; tail -n 20 "$work"/*.log >&2; return 1
}
resident() { python3 "$root/bench/resident.py" "$1"; }
